"""Fit the annotator filter of an HV method (``annotator_filter.py``) on the labelled training images.

    python -m wsicell.segment.train_annotator_filter --consep DIR --monuseg DIR --segmenter hvnet-fine --flips 4
    python -m wsicell.segment.train_annotator_filter --consep DIR --monuseg DIR --segmenter hvnet

The method's shipped network (``--flips`` test-time flips) segments the outlined training
images: CoNSeP train without the held-out images (``VAL_CONSEP``) and the MoNuSeg images with
outlines except the held-out ones (``VAL_MONUSEG``); each instance it finds is described
(``annotator_filter.describe``) and labelled by whether a labelled nucleus lies within 3 µm
(one to one). A logistic regression (standardised, C 0.1, the two datasets weighted equally)
is fitted and written to ``FILTER_PATHS[method]`` (or ``--out``). About a minute for
``hvnet``, a few for ``hvnet-fine`` with 4 flips, on one CPU core. The held-out images are
scored by ``benchmarks/segment_annotator_filter.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from wsicell.progress import track
from wsicell.segment.annotator_filter import FILTER_PATHS, AnnotatorFilter, describe
from wsicell.segment.config import SegmentConfig
from wsicell.segment.hv_segmenter import HVNetSegmenter
from wsicell.segment.metrics import centroid_pairs, instance_centroids
from wsicell.segment.train_hvnet import MPP, VAL_CONSEP, VAL_MONUSEG, load

MATCH_UM = 3.0
"""A predicted nucleus is "annotated" when a labelled one lies within this (HoVer-Net's radius)."""


def segmenter_of(method: str, flips: int) -> HVNetSegmenter:
    """The HV method's segmenter with its default settings and no filter (torch fp32)."""
    return HVNetSegmenter(SegmentConfig(method=method, hv_flips=flips, precision="fp32", runtime="torch"))


def predicted_nuclei(segmenter: HVNetSegmenter, image: np.ndarray, inst: np.ndarray, *, mpp: float) -> dict | None:
    """The segmenter's instances of one labelled image: labels, ids, descriptions (n x D) and
    which have a labelled nucleus within 3 µm."""
    labels, maps = segmenter.segment_with_features(image, mpp=mpp)
    ids, x = describe(image, labels, maps, mpp=mpp)
    if len(ids) == 0:
        return None
    centre = instance_centroids(labels)[ids - 1] - 0.5
    truth = instance_centroids(inst)
    found, _ = centroid_pairs(centre, truth[np.isfinite(truth[:, 0])] - 0.5, radius=MATCH_UM / mpp)
    annotated = np.zeros(len(ids), bool)
    annotated[found] = True
    return {"labels": labels, "ids": ids, "x": x, "annotated": annotated, "inst": inst}


def labelled_images(consep: Path, monuseg: Path) -> dict[str, list[tuple[str, str, np.ndarray, np.ndarray]]]:
    """{"train": [...], "held-out": [...]} of (dataset key, name, RGB image, instance map): the
    outlined images (MoNuSeg images with a foreground mask only are left out)."""
    held = {"consep": {f"train_{n}" for n in VAL_CONSEP.split(",")}, "monuseg": set(VAL_MONUSEG.split(","))}
    out: dict[str, list] = {"train": [], "held-out": []}
    for key, folder in (("consep", consep), ("monuseg", monuseg)):
        for name, image, inst, _ in load(folder):
            if inst is None:
                continue
            source = name.rsplit("_", 1)[0] if key == "consep" else name
            out["held-out" if source in held[key] else "train"].append((key, name, image, inst))
    return out


def fit(items: list[tuple[str, dict]]) -> AnnotatorFilter:
    """The logistic regression on (dataset key, predicted nuclei) pairs, datasets weighted equally."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([n["x"] for _, n in items])
    y = np.concatenate([n["annotated"] for _, n in items])
    per_set = {key: sum(len(n["ids"]) for k, n in items if k == key) for key, _ in items}
    weight = np.concatenate([np.full(len(n["ids"]), len(x) / per_set[key]) for key, n in items])
    mean, scale = x.mean(0), x.std(0)
    scale[scale == 0] = 1
    regression = LogisticRegression(C=0.1, max_iter=3000).fit((x - mean) / scale, y, sample_weight=weight)
    return AnnotatorFilter(mean=mean, scale=scale, coef=regression.coef_[0], intercept=float(regression.intercept_[0]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segmenter", choices=sorted(FILTER_PATHS), default="hvnet")
    parser.add_argument("--flips", type=int, choices=[1, 2, 4], default=1, help="test-time flips of the network [1]")
    parser.add_argument("--consep", required=True, type=Path, help="CoNSeP train tiles folder (as train_hvnet)")
    parser.add_argument("--monuseg", required=True, type=Path, help="MoNuSeg training images folder (as train_hvnet)")
    parser.add_argument("--out", type=Path, help="output .npz [the shipped filter of --segmenter]")
    args = parser.parse_args()
    for folder in (args.consep, args.monuseg):
        if not folder.is_dir():
            raise SystemExit(f"{folder}: not a folder (the labelled training images)")
    segmenter = segmenter_of(args.segmenter, args.flips)
    items = []
    for key, _, image, inst in track(labelled_images(args.consep, args.monuseg)["train"], label="images", unit="images"):
        found = predicted_nuclei(segmenter, image, inst, mpp=MPP[key])
        if found is not None:
            items.append((key, found))
    if len({key for key, _ in items}) < 2:
        raise SystemExit(f"{args.consep}, {args.monuseg}: need outlined images with nuclei from both datasets to fit on")
    keep = fit(items)
    out = args.out or FILTER_PATHS[args.segmenter]
    keep.save(out)
    annotated = np.concatenate([n["annotated"] for _, n in items]).mean()
    print(f"wrote {out}: {sum(len(n['ids']) for _, n in items)} nuclei of {len(items)} images, "
          f"{100 * annotated:.1f} % annotated, {len(keep.coef)} inputs")  # fmt: skip


if __name__ == "__main__":
    main()
