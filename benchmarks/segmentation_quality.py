"""Segmentation quality on CoNSeP (256-px tiles) or held-out MoNuSeg images, segmenters side by side.

Segmenters: ``hvnet`` (multi-task U-Net + HoVer-Net post-processing, ``method: hvnet``),
``hvnet-fine`` (the same with its full-resolution branch, ``method: hvnet-fine``; 40x data
as it is, the sample slide's 20x tiles enlarged to its 0.25 µm/px) and the watershed with each foreground (``cnn``: the small U-Net, ``classifier``,
``haematoxylin``).

Scores detection F1 (centroids matched one-to-one within 6 px by the Hungarian algorithm,
counts pooled over tiles; also within 3 µm, HoVer-Net's 12 px at 40x), AJI and PQ (mean over tiles), and speed on 1024² tiles of the
bundled sample slide: MP/s of ``segment`` and cells/s of ``cells_from_labels`` per core,
from this process's CPU time (``time.process_time``, OpenCV on one thread) so that other
jobs on the machine distort it less than wall-clock time would; wall-clock is printed too. OpenCV and torch run on one thread each here.

    .venv/bin/python benchmarks/segmentation_quality.py                  # CoNSeP test, cnn vs hvnet
    .venv/bin/python benchmarks/segmentation_quality.py --segmenters cnn classifier
    .venv/bin/python benchmarks/segmentation_quality.py --split train    # the tuning split
    .venv/bin/python benchmarks/segmentation_quality.py --split monuseg-heldout
    .venv/bin/python benchmarks/segmentation_quality.py --segmenters hvnet hvnet-fine --split monuseg-heldout
    .venv/bin/python benchmarks/segmentation_quality.py --set peak_min_distance_um=3
    .venv/bin/python benchmarks/segmentation_quality.py --through-extract  # as `wsicell extract` does it

``--through-extract`` scores what a user gets: each image is written as a PNG and extracted
by ``wsicell extract``'s library call with its defaults (working resolution 0.5 µm/px,
tissue detection, tiles), and the stored outlines (32-point polygons, level-0 px) are drawn
back at the image's resolution and scored like the rest. Without it, ``segment()`` runs on
each image at its own resolution.

Data: ../shared/data/consep-tiles (see its README). The tiles are the 1000² 40x (0.25 µm/px)
images cut 4 x 4 and resized 250 -> 256 px, so 0.25 / 1.024 = 0.244 µm/px.
``test-images``: the test tiles put back into their 14 images (1024², cut nuclei joined
across the seams, ``wsicell.evaluate.reassemble``): per image, as published CoNSeP figures
are, with no tile edges. ``monuseg-heldout``: the 4 MoNuSeg images (liver, breast, kidney, prostate; 1000², 0.2527
µm/px) that ``train_hvnet`` never trains on but selects its epoch and thresholds on (so they
are validation, not test, for ``hvnet``); DQ/PQ/AJI are means over the 4 images.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON

import wsicell
from wsicell.io.slide import open_slide
from wsicell.segment import SegmentConfig, cells_from_labels, make_segmenter
from wsicell.segment.metrics import Detection, aji, centroids_of, match_centroids, panoptic

ROOT = Path(__file__).resolve().parents[1]
CONSEP = ROOT.parent / "shared" / "data" / "consep-tiles"
CONSEP_MPP = 0.25 / 1.024
MONUSEG = ROOT.parent / "shared" / "data" / "monuseg-train"
MONUSEG_MPP = 0.2527
SEGMENTERS = ("hvnet", "hvnet-fine", "cnn", "classifier", "haematoxylin")
RADIUS_PX = 6.0
HOVERNET_RADIUS_UM = 3.0
"""HoVer-Net's detection radius: 12 px at 40x (its compute_stats.py), i.e. 3 µm."""


def load_monuseg_heldout() -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, RGB image, instance map, centroids) of the MoNuSeg images train_hvnet holds out."""
    from wsicell.segment.metrics import centroids_of
    from wsicell.segment.train_hvnet import VAL_MONUSEG

    out = []
    for name in VAL_MONUSEG.split(","):
        if not (MONUSEG / f"{name}.npz").is_file():
            sys.exit(f"{MONUSEG}: MoNuSeg images not found (see ../shared/data/README.md)")
        image = cv2.cvtColor(cv2.imread(str(MONUSEG / f"{name}.jpg")), cv2.COLOR_BGR2RGB)
        inst = np.load(MONUSEG / f"{name}.npz")["inst"]
        out.append((name, image, inst, centroids_of(inst)))  # same pixel-index convention as the predictions
    return out


def config_of(segmenter: str, overrides: dict) -> SegmentConfig:
    if segmenter in ("hvnet", "hvnet-fine"):
        return SegmentConfig(**{"method": segmenter, **overrides})
    return SegmentConfig(**{"method": "watershed", "foreground": segmenter, **overrides})


def load_tiles(split: str, limit: int | None = None) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, RGB image, instance map, centroids) of each tile of a split."""
    if split == "monuseg-heldout":
        return load_monuseg_heldout()[:limit]
    if split.endswith("-images"):  # the tiles put back into their 1024² images, cut nuclei joined
        from wsicell.evaluate.reassemble import reassemble

        if not CONSEP.is_dir():
            sys.exit(f"{CONSEP}: CoNSeP tiles not found (see ../shared/data/README.md)")
        images = reassemble(CONSEP, split.removesuffix("-images"))[:limit]
        return [(name, image, inst, centroids_of(inst)) for name, image, inst in images]
    folder = CONSEP / split
    if not folder.is_dir():
        sys.exit(f"{folder}: CoNSeP tiles not found (see ../shared/data/README.md)")
    names = sorted(p.stem for p in folder.glob("*.npz"))[:limit]
    out = []
    for name in names:
        image = cv2.cvtColor(cv2.imread(str(folder / f"{name}.jpg")), cv2.COLOR_BGR2RGB)
        data = np.load(folder / f"{name}.npz")
        out.append((name, image, data["inst"], data["centroid"]))
    return out


def score(config: SegmentConfig, tiles: list, *, mpp: float = CONSEP_MPP, downsample: float = 1.0) -> dict[str, float]:
    """Scores against the instance maps; with ``downsample`` < 1 the image is first shrunk by
    that factor (e.g. 0.5: a 40x image seen as 20x) and the labels are scaled back (nearest)."""
    segmenter = make_segmenter(config)
    preds = []
    seconds = 0.0
    for _name, image, _inst, _centroid in tiles:
        if downsample != 1.0:
            size = (round(image.shape[1] * downsample), round(image.shape[0] * downsample))
            small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        t0 = time.process_time()
        if downsample != 1.0:
            pred = segmenter.segment(small, mpp=mpp * image.shape[1] / size[0])
            pred = cv2.resize(pred, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        else:
            pred = segmenter.segment(image, mpp=mpp)
        seconds += time.process_time() - t0
        preds.append(pred)
    return scores(tiles, preds, mpp=mpp, seconds=seconds)


def scores(tiles: list, preds: list[np.ndarray], *, mpp: float, seconds: float) -> dict[str, float]:
    """Detection, AJI and PQ of predicted instance maps against the tiles' labels."""
    detection = Detection(0, 0, 0)
    detection_3um = Detection(0, 0, 0)
    ajis, pqs, dqs, sqs = [], [], [], []
    for (_name, _image, inst, centroid), pred in zip(tiles, preds, strict=True):
        found = centroids_of(pred)
        detection = detection + match_centroids(found, centroid, radius=RADIUS_PX)
        detection_3um = detection_3um + match_centroids(found, centroid, radius=HOVERNET_RADIUS_UM / mpp)
        ajis.append(aji(inst, pred))
        p = panoptic(inst, pred)
        pqs.append(p.pq)
        dqs.append(p.dq)
        sqs.append(p.sq)
    return {
        "f1": detection.f1,
        "precision": detection.precision,
        "recall": detection.recall,
        "f1_3um": detection_3um.f1,
        "aji": float(np.mean(ajis)),
        "pq": float(np.mean(pqs)),
        "dq": float(np.mean(dqs)),
        "sq": float(np.mean(sqs)),
        "tiles": len(tiles),
        "true": detection.tp + detection.fn,
        "pred": detection.tp + detection.fp,
        "mp_per_s": sum(t[1].shape[0] * t[1].shape[1] for t in tiles) / 1e6 / seconds,
    }


def speed(config: SegmentConfig, *, repeats: int = 2) -> dict[str, float]:
    """Medians over 1024² tiles of the sample slide at its native mpp: segment() MP/s (CPU
    time and wall clock) and cells_from_labels() cells/s (CPU time)."""
    segmenter = make_segmenter(config)
    with open_slide(wsicell.SAMPLE_SLIDE) as slide:
        corners = ((0, 0), (1024, 1024), (1100, 1900))
        tiles = [slide.read((x, y, x + 1024, y + 1024), slide.mpp) for x, y in corners]
        mpp = slide.mpp
    cpu, wall, cells = [], [], []
    for _ in range(repeats):
        for tile in tiles:
            c0, w0 = time.process_time(), time.perf_counter()
            labels = segmenter.segment(tile, mpp=mpp)
            c1, w1 = time.process_time(), time.perf_counter()
            batch = cells_from_labels(tile, labels, mpp=mpp, origin=(0, 0), scale=1.0)
            c2 = time.process_time()
            cpu.append(tile.shape[0] * tile.shape[1] / 1e6 / max(c1 - c0, 1e-9))
            wall.append(tile.shape[0] * tile.shape[1] / 1e6 / max(w1 - w0, 1e-9))
            cells.append(len(batch) / max(c2 - c1, 1e-9))
    return {"cpu": float(np.median(cpu)), "wall": float(np.median(wall)), "cells": float(np.median(cells))}


def score_extracted(config: SegmentConfig, tiles: list, *, mpp: float) -> dict[str, float]:
    """Scores of the nuclei ``wsicell extract`` stores for each image (see the module's docstring)."""
    import tempfile

    from wsicell.extract import ExtractConfig, extract_slides
    from wsicell.store import CellStore

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, image, _inst, _centroid in tiles:
            paths.append(Path(tmp) / f"{name}.png")
            cv2.imwrite(str(paths[-1]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        t0 = time.process_time()
        report = extract_slides(paths, store=Path(tmp) / "cells.zarr", config=ExtractConfig(segment=config),
                                slide_mpp=mpp, workers=1, progress=False)  # fmt: skip
        seconds = time.process_time() - t0
        if not report.ok:
            sys.exit(f"extraction failed: {report}")
        store = CellStore.open(Path(tmp) / "cells.zarr")
        contours = {Path(s.path).stem: s.array("contour")[:] for s in store.slides()}
    preds = []
    for name, image, _inst, _centroid in tiles:
        pred = np.zeros(image.shape[:2], np.int32)
        for i, contour in enumerate(contours[name], 1):  # level-0 px, pixel edges at integers
            cv2.fillPoly(pred, [np.round((contour - 0.5) * 16).astype(np.int32).reshape(-1, 1, 2)], i, shift=4)
        preds.append(pred)
    return scores(tiles, preds, mpp=mpp, seconds=seconds)


def parse_set(items: list[str]) -> dict[str, object]:
    fields = {f.name: f for f in dataclasses.fields(SegmentConfig)}
    out: dict[str, object] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in fields:
            sys.exit(f"--set {item}: unknown setting; known: {', '.join(fields)}")
        text = key in ("method", "foreground", "weights", "tiatoolbox_model", "precision", "runtime")
        out[key] = value if text else int(value) if fields[key].type == "int" else float(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="test", choices=["train", "test", "test-images", "monuseg-heldout"])
    parser.add_argument("--limit", type=int, default=None, help="first N tiles only")
    parser.add_argument(
        "--segmenters", nargs="+", default=["cnn", "hvnet"], choices=SEGMENTERS,
        help="segmenters to score side by side (hvnet, or a watershed foreground)",
    )  # fmt: skip
    parser.add_argument("--downsample", type=float, default=1.0,
                        help="shrink the images by this factor first (0.5: 40x data seen as 20x)")
    parser.add_argument("--through-extract", action="store_true",
                        help="score the outlines `wsicell extract` stores (its defaults: 0.5 µm/px, tissue, tiles)")
    parser.add_argument("--no-speed", action="store_true", help="skip the sample-slide speed measurement")
    parser.add_argument("--set", nargs="*", default=[], help="SegmentConfig overrides, key=value (all segmenters)")
    parser.add_argument("--tag", default="",
                        help="added to the results file's name, e.g. the segmenter when two runs share a split and settings")  # fmt: skip
    args = parser.parse_args()
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    overrides = parse_set(args.set)
    tiles = load_tiles(args.split, args.limit)
    mpp = MONUSEG_MPP if args.split == "monuseg-heldout" else CONSEP_MPP
    dataset = {"monuseg-heldout": "MoNuSeg held-out images",
               "test-images": "CoNSeP test, its tiles put back into the 14 images"}.get(
        args.split, f"CoNSeP (256-px tiles) {args.split}")  # fmt: skip
    if args.downsample != 1.0:
        dataset += f", shrunk x{args.downsample} before segmenting"
    if args.through_extract:
        if args.downsample != 1.0:
            sys.exit("--through-extract works at extraction's own 0.5 µm/px; leave out --downsample")
        dataset += ", through wsicell extract"
    rows = []
    for name in args.segmenters:
        config = config_of(name, overrides)
        load = os.getloadavg()
        r = score_extracted(config, tiles, mpp=mpp) if args.through_extract else score(config, tiles, mpp=mpp, downsample=args.downsample)
        mps = {"cpu": float("nan"), "wall": float("nan"), "cells": float("nan")} if args.no_speed else speed(config)
        rows.append((name, r, mps))
        print(f"config: {config}")
        print(f"load average (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}  (2-core shared machine: timings are noisy)")
        print(f"{dataset}: {r['tiles']} tiles, {r['true']} true nuclei, {r['pred']} predicted")
        print(f"  detection F1 {r['f1']:.3f}  (precision {r['precision']:.3f}, recall {r['recall']:.3f}; 6 px Hungarian)")
        print(f"  detection F1 at HoVer-Net's radius (12 px at 40x = 3 µm): {r['f1_3um']:.3f}")
        print(f"  AJI {r['aji']:.3f}   PQ {r['pq']:.3f} (DQ {r['dq']:.3f} x SQ {r['sq']:.3f})   [means over tiles]")
        print(f"  {'extraction' if args.through_extract else 'segment()'} on these tiles: {r['mp_per_s']:.2f} MP/s per core (CPU time)")
        print(
            f"speed on 1024² sample-slide tiles (0.499 µm/px): segment() {mps['cpu']:.2f} MP/s per core "
            f"(CPU time; {mps['wall']:.2f} MP/s wall clock), cells_from_labels() {mps['cells']:.0f} cells/s per core"
        )
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    print(f"\nside by side, {dataset}; speed on 1024² sample-slide tiles:")
    print(f"  {'segmenter':34} {'F1':>6} {'prec':>6} {'recall':>6} {'AJI':>6} {'DQ':>6} {'PQ':>6} {'F1 3µm':>6} {'MP/s/core':>9} {'wall':>6}")
    for name, r, mps in rows:
        labels = {"hvnet": "hvnet (HV U-Net + HoVer-Net post)", "hvnet-fine": "hvnet-fine (+ 0.25 µm/px branch)"}
        label = labels.get(name, "watershed, " + name)
        print(
            f"  {label:34} {r['f1']:6.3f} {r['precision']:6.3f} {r['recall']:6.3f} "
            f"{r['aji']:6.3f} {r['dq']:6.3f} {r['pq']:6.3f} {r['f1_3um']:6.3f} {mps['cpu']:9.2f} {mps['wall']:6.2f}"
        )
    if args.split == "monuseg-heldout":
        print("  target                             DQ >= 0.75, PQ >= 0.55")
    else:
        print(f"  {'HoVer-Net, original CoNSeP (paper)':34} {0.748:6.3f} {'':6} {'':6} {0.546:6.3f} {'':6} {0.517:6.3f}"
              "   (different tiles; for scale only)")  # fmt: skip
        print("  target                             F1 >= 0.75, PQ >= 0.50")
    figures = [
        {"segmenter": name, **{k: round(r[k], 3) for k in ("f1", "precision", "recall", "f1_3um", "aji", "dq", "sq", "pq")},
         "tiles": r["tiles"], "true": r["true"], "pred": r["pred"], "mp_per_s_per_core": round(mps["cpu"], 2),
         "mp_per_s_wall": round(mps["wall"], 2), "cells_per_s_per_core": round(mps["cells"], 0)}
        for name, r, mps in rows
    ]  # fmt: skip
    name = f"segmentation_quality-{args.split}" + ("" if args.downsample == 1.0 else f"-x{args.downsample:g}")
    name += "-extract" if args.through_extract else ""
    name += f"-{args.tag}" if args.tag else ""
    name += "".join(f"-{item}" for item in args.set)  # settings tried apart from the defaults
    save(name, figures, notes={"dataset": dataset, "limit": args.limit, "set": args.set, "through_extract": args.through_extract}, title=f"nucleus segmentation, {dataset}")


if __name__ == "__main__":
    main()
