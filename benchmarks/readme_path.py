"""The README's CPU path, run as a user runs it, on CoNSeP tiles as fields of view.

Each tile of a CoNSeP split is written as a PNG (shrunk by ``--scale`` first: 0.5 makes the
40x tiles 20x fields of view), then the README's commands run on them in a subprocess, with
their defaults:

    wsicell extract fields/*.png --store cells.zarr --slide-mpp MPP
    wsicell train --store cells.zarr --out run --set seed=S     # the CPU default
    wsicell embed --store cells.zarr --model run
    wsicell cluster --store cells.zarr -k 4 [--context-radius 20]

Each stored nucleus is matched one-to-one to a labelled nucleus within 3 µm (as
``wsicell evaluate --nuclei segmented`` matches: ``wsicell.segment.metrics.centroid_pairs``)
and takes its type; AMI / ARI / purity (%) over the matched
nuclei, per seed, without and with the context. The labels choose nothing: this is the
transductive setting of the labelled 20x set kept outside the project, where the same path
trains on the images it maps. ``--split train`` runs it on the train split (for choices).

    .venv/bin/python benchmarks/readme_path.py                       # test, 20x, seeds 0 1 2
    .venv/bin/python benchmarks/readme_path.py --extract-args="--segmenter hvnet-fine"
    .venv/bin/python benchmarks/readme_path.py --train-args="--config configs/cpu-untrained.yaml" --cluster-args="--morphology-weight 1"
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON

from wsicell.evaluate.metrics import score_clusters
from wsicell.segment.metrics import centroid_pairs
from wsicell.store import CellStore

ROOT = Path(__file__).resolve().parents[1]
CONSEP = ROOT.parent / "shared" / "data" / "consep-tiles"
CONSEP_MPP = 0.25 / 1.024  # the tiles: 1000² 40x images cut 4 x 4 and resized 250 -> 256 px
MATCH_UM = 3.0
WORK = ROOT / "benchmarks" / "_work"


def write_fields(split: str, scale: float, folder: Path) -> list[Path]:
    """The split's tiles as PNGs shrunk by ``scale`` (cached in ``folder``)."""
    source = CONSEP / split
    if not source.is_dir():
        sys.exit(f"{source}: CoNSeP tiles not found (see ../shared/data/README.md)")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for jpg in sorted(source.glob("*.jpg")):
        png = folder / f"{jpg.stem}.png"
        if not png.is_file():
            image = cv2.imread(str(jpg))
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            cv2.imwrite(str(png), cv2.resize(image, size, interpolation=cv2.INTER_AREA) if scale != 1 else image)
        paths.append(png)
    return paths


def wsicell(*args: str) -> None:
    command = [sys.executable, "-m", "wsicell", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{shlex.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def matched_types(store: Path, split: str, *, scale: float, mpp: float) -> tuple[np.ndarray, np.ndarray]:
    """(true type, cluster) of every stored nucleus matched to a labelled one within 3 µm."""
    types, clusters = [], []
    for cells in CellStore.open(store).slides():
        labels = np.load(CONSEP / split / f"{Path(cells.path).stem}.npz")
        centroid = labels["centroid"] * scale  # tile px -> field px (= the store's level 0)
        rows, cols = centroid_pairs(cells.array("centroid")[:], centroid, radius=MATCH_UM / mpp)
        types.append(labels["type"][cols])
        clusters.append(cells.array("cluster")[:][rows])
    return np.concatenate(types), np.concatenate(clusters)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="test", choices=["train", "test"])
    parser.add_argument("--scale", type=float, default=0.5, help="shrink the 40x tiles by this (0.5: 20x fields)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--extract-args", default="", help="more `wsicell extract` options, e.g. '--segmenter hvnet-fine'")
    parser.add_argument("--train-args", default="", help="more `wsicell train` options, e.g. '--config configs/cpu-untrained.yaml'")
    parser.add_argument("--cluster-args", default="", help="more `wsicell cluster` options, e.g. '--morphology-weight 1'")
    parser.add_argument("--context-radius", type=float, default=20.0)
    args = parser.parse_args()

    mpp = CONSEP_MPP / args.scale
    fields = write_fields(args.split, args.scale, WORK / f"fields-consep-{args.split}-x{args.scale:g}")
    WORK.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="readme-path-", dir=WORK) as tmp:  # runs side by side do not collide
        run_path(args, fields, mpp, Path(tmp))


def run_path(args: argparse.Namespace, fields: list[Path], mpp: float, work: Path) -> None:
    store, run = work / "cells.zarr", work / "run"
    t0 = time.perf_counter()
    wsicell("extract", *map(str, fields), "--store", str(store), "--slide-mpp", f"{mpp:.6g}", "-q",
            *shlex.split(args.extract_args))  # fmt: skip
    extract_s = time.perf_counter() - t0
    rows = []
    for seed in args.seeds:
        shutil.rmtree(run, ignore_errors=True)
        t0 = time.perf_counter()
        wsicell("train", "--store", str(store), "--out", str(run), "--set", f"seed={seed}", *shlex.split(args.train_args))
        train_s = time.perf_counter() - t0
        wsicell("embed", "--store", str(store), "--model", str(run))
        row = {"seed": seed, "train_s": round(train_s, 1)}
        for name, extra in (("no_context", []), ("context", ["--context-radius", f"{args.context_radius:g}"])):
            wsicell("cluster", "--store", str(store), "-k", "4", *extra, *shlex.split(args.cluster_args))
            types, clusters = matched_types(store, args.split, scale=args.scale, mpp=mpp)
            s = score_clusters(labels=types, clusters=clusters)
            row |= {f"{name}_ami": round(100 * s.ami, 1), f"{name}_ari": round(100 * s.ari, 1),
                    f"{name}_purity": round(100 * s.purity, 1)}  # fmt: skip
        row["matched"] = len(types)
        rows.append(row)
        print(f"seed {seed}: matched {len(types)} labelled nuclei; AMI / ARI / purity "
              f"{row['no_context_ami']} / {row['no_context_ari']} / {row['no_context_purity']}, with context "
              f"{row['context_ami']} / {row['context_ari']} / {row['context_purity']} (training {train_s:.0f} s)",
              flush=True)  # fmt: skip
    n_true = sum(len(np.load(CONSEP / args.split / f"{f.stem}.npz")["type"]) for f in fields)
    means = {k: round(float(np.mean([r[k] for r in rows])), 1) for k in rows[0] if k.endswith(("_ami", "_ari", "_purity"))}
    stds = {k: round(float(np.std([r[k] for r in rows])), 1) for k in means}
    where = f"CoNSeP {args.split} as {len(fields)} fields of view at {mpp:.3f} µm/px"
    print(f"\n{where}; {rows[0]['matched']} of {n_true} labelled nuclei matched within {MATCH_UM:g} µm; "
          f"extraction {extract_s:.0f} s wall")  # fmt: skip
    print(f"  wsicell cluster -k 4:                       AMI {means['no_context_ami']} ± {stds['no_context_ami']}  "
          f"ARI {means['no_context_ari']}  purity {means['no_context_purity']}")  # fmt: skip
    print(f"  wsicell cluster -k 4 --context-radius {args.context_radius:g}:  AMI {means['context_ami']} ± "
          f"{stds['context_ami']}  ARI {means['context_ari']}  purity {means['context_purity']}")  # fmt: skip
    name = f"readme_path-{args.split}-x{args.scale:g}" + "".join(
        "-" + a.lstrip("-").replace("/", "_") for a in shlex.split(" ".join((args.extract_args, args.train_args, args.cluster_args)))
    )
    save(name, rows, notes={"where": where, "true": n_true, "extraction_s": round(extract_s, 1), "mean": means,
                            "std": stds, "extract_args": args.extract_args, "train_args": args.train_args,
                            "cluster_args": args.cluster_args},
         title=f"the README's CPU path on {where}")  # fmt: skip


if __name__ == "__main__":
    main()
