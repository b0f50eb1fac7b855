"""Model selection by held-out images of the train split (docs/results.md, "Tissue context").

Scores on the train split's own labels measure how well a model clusters the images it was
trained on; the protocol asks how well it clusters *new* images. This script mimics that
inside the train split: its source images are cut into two folds, each configuration is
trained (without labels) on one fold and scored on the other, both ways, and the mean over
the folds chooses. The test split is never read.

    .venv/bin/python benchmarks/evaluate_holdout.py                  # every variant below
    .venv/bin/python benchmarks/evaluate_holdout.py fast NLG         # some of them

Each held-out fold is clustered plain and with every tissue-context setting of GRID (the
held-out images are new to the model, as the test images are, so this also chooses the
context's radius and weight). Runs and fold stores are kept in benchmarks/_work/holdout;
results are appended to benchmarks/_work/holdout/results.jsonl, and the summary (mean over
folds and seeds of every variant x context setting) is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from evaluate_context import GRID, score_grid  # benchmarks/ is the script's folder

ROOT = Path(__file__).resolve().parents[1]

VARIANTS: dict[str, dict] = {
    "fast": {},  # configs/ccrl-cpu-fast.yaml as it is
    "NLG": {"local_global": False},  # the paper's "w/o local-global"
    "NPRED": {"predictor": False},  # the paper's "w/o predictor"
    "T02": {"temperature": 0.2},
    "CP32": {"stem": "cifar_pool", "crop_size": 32, "threads": 2},  # 3x3 stem + max-pool, 32-px crops
}


def fold_datasets(dataset: Path, out: Path) -> list[Path]:
    """Two datasets of symlinks: fold k trains on half of the train split's images and is
    scored on the other half (by source image, so no image is on both sides)."""
    from wsicell.evaluate.dataset import list_tiles, source_of

    tiles = list_tiles(dataset, "train")
    sources = sorted({source_of(t.name) for t in tiles})
    halves = [set(sources[0::2]), set(sources[1::2])]
    folds = []
    for k, held_out in enumerate(halves):
        root = out / f"fold{k}"
        for split in ("train", "test"):
            (root / split).mkdir(parents=True, exist_ok=True)
        for t in tiles:
            split = "test" if source_of(t.name) in held_out else "train"
            for path in (t.image, t.npz):
                link = root / split / path.name
                if not link.exists():
                    link.symlink_to(path.resolve())
        folds.append(root)
    return folds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=list(VARIANTS), help=f"some of {', '.join(VARIANTS)}")
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "data" / "consep-tiles")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "_work" / "holdout")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--summary", action="store_true", help="only print the summary of results.jsonl")
    args = parser.parse_args()
    if not args.summary:
        run_folds(args)
    summary(args.out / "results.jsonl")


def run_folds(args: argparse.Namespace) -> None:

    import torch

    from wsicell.config import load_config
    from wsicell.evaluate.dataset import build_split_store, load_split
    from wsicell.evaluate.protocol import embed, ensure_trained
    from wsicell.train.config import TrainConfig

    folds = fold_datasets(args.dataset, args.out)
    print(f"{'variant':8s} {'fold':>4s} {'seed':>4s} | held-out AMI   ARI purity | + context (20 µm) AMI   ARI purity")
    for name, seed, (k, fold) in ((n, s, f) for n in args.variants for s in args.seeds for f in enumerate(folds)):
        stores = {s: build_split_store(dataset=fold, split=s, out=fold / "cells" / f"{s}.zarr", progress=False)
                  for s in ("train", "test")}  # fmt: skip
        held_out = load_split(stores["test"])
        config = load_config(TrainConfig, ROOT / "configs" / "ccrl-cpu-fast.yaml", seed=seed, **VARIANTS[name])
        torch.set_num_threads(config.threads)
        run = args.out / "runs" / f"{name}-fold{k}-seed{seed}"
        ensure_trained(store=stores["train"], run=run, config=config, progress=False, log=lambda m: None)
        grid = score_grid(held_out, embed(run, held_out.crops, encoder="momentum"))
        record = {
            "variant": name, "fold": k, "seed": seed, "n_held_out": len(held_out), "grid": grid,
            "load": round(os.getloadavg()[0], 1), "time": time.strftime("%H:%M:%S"),
        }  # fmt: skip
        with open(args.out / "results.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        plain, ctx = grid["0,1"], grid["20,1"]
        print(f"{name:8s} {k:4d} {seed:4d} | {plain[0]:12.1f} {plain[1]:5.1f} {plain[2]:6.1f} | "
              f"{ctx[0]:20.1f} {ctx[1]:5.1f} {ctx[2]:6.1f}", flush=True)  # fmt: skip


def summary(path: Path) -> None:
    """Mean over (fold, seed) of every variant x context setting; the best held-out AMI chooses."""
    import numpy as np

    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    latest = {(r["variant"], r["fold"], r["seed"]): r for r in records if "grid" in r}  # the last of each
    by_variant: dict[str, list[dict]] = {}
    for (variant, _, _), r in sorted(latest.items()):
        by_variant.setdefault(variant, []).append(r)
    print("\nheld-out AMI / ARI / purity, mean over folds x seeds (n = runs scored)")
    print("| variant | n | " + " | ".join(f"R {key.split(',')[0]}, w {key.split(',')[1]}" for key in (f"{r:g},{w:g}" for r, w in GRID)) + " |")
    print("|---|---|" + "---|" * len(GRID))
    best = None
    for variant, rs in by_variant.items():
        cells = []
        for r, w in GRID:
            key = f"{r:g},{w:g}"
            m = np.mean([x["grid"][key] for x in rs], axis=0)
            cells.append(f"{m[0]:.1f} / {m[1]:.1f} / {m[2]:.1f}")
            if best is None or m[0] > best[0]:
                best = (m[0], variant, key, len(rs))
        print(f"| {variant} | {len(rs)} | " + " | ".join(cells) + " |")
    if best is not None:
        print(f"\nbest held-out AMI: {best[0]:.1f} = {best[1]} with context (R, w) = ({best[2]}) over {best[3]} runs")


if __name__ == "__main__":
    main()
