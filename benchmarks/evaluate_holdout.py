"""Model selection by held-out images of the train split (docs/results.md, "Tissue context").

Scores on the train split's own labels measure how well a model clusters the images it was
trained on; the protocol asks how well it clusters *new* images. This script mimics that
inside the train split: its source images are cut into two folds, each configuration is
trained (without labels) on one fold and scored on the other, both ways, and the mean over
the folds chooses. The test split is never read.

    .venv/bin/python benchmarks/evaluate_holdout.py                  # every variant below
    .venv/bin/python benchmarks/evaluate_holdout.py fast NLG         # some of them

Runs and fold stores are kept in benchmarks/_work/holdout; results are appended to
benchmarks/_work/holdout/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VARIANTS: dict[str, dict] = {
    "fast": {},  # configs/ccrl-cpu-fast.yaml as it is
    "NLG": {"local_global": False},  # the paper's "w/o local-global"
    "NPRED": {"predictor": False},  # the paper's "w/o predictor"
    "T02": {"temperature": 0.2},
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
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--context-radius", type=float, default=20.0)
    args = parser.parse_args()

    import torch

    from wsicell.cluster.context import Context
    from wsicell.config import load_config
    from wsicell.evaluate.dataset import build_split_store, load_split
    from wsicell.evaluate.protocol import Scoring, embed, ensure_trained
    from wsicell.train.config import TrainConfig

    folds = fold_datasets(args.dataset, args.out)
    print(f"{'variant':8s} {'fold':>4s} | held-out AMI   ARI purity | + context AMI   ARI purity")
    for name in args.variants:
        for k, fold in enumerate(folds):
            stores = {s: build_split_store(dataset=fold, split=s, out=fold / "cells" / f"{s}.zarr", progress=False)
                      for s in ("train", "test")}  # fmt: skip
            held_out = load_split(stores["test"])
            config = load_config(TrainConfig, ROOT / "configs" / "ccrl-cpu-fast.yaml", seed=args.seed, **VARIANTS[name])
            torch.set_num_threads(config.threads)
            run = args.out / "runs" / f"{name}-fold{k}-seed{args.seed}"
            ensure_trained(store=stores["train"], run=run, config=config, progress=False, log=lambda m: None)
            scoring = Scoring(held_out, Context(radius_um=args.context_radius))
            rows = scoring.rows(name, "ccrl")
            scoring.add(rows, embed(run, held_out.crops, encoder="momentum"), seed=0, spherical=True)
            plain, ctx = (r.scores[0] for r in rows)
            record = {
                "variant": name, "fold": k, "seed": args.seed, "n_held_out": len(held_out),
                **{f"{m}": round(100 * getattr(plain, m), 1) for m in ("ami", "ari", "purity")},
                **{f"context_{m}": round(100 * getattr(ctx, m), 1) for m in ("ami", "ari", "purity")},
                "load": round(os.getloadavg()[0], 1), "time": time.strftime("%H:%M:%S"),
            }  # fmt: skip
            with open(args.out / "results.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"{name:8s} {k:4d} | {100 * plain.ami:12.1f} {100 * plain.ari:5.1f} {100 * plain.purity:6.1f} | "
                  f"{100 * ctx.ami:13.1f} {100 * ctx.ari:5.1f} {100 * ctx.purity:6.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
