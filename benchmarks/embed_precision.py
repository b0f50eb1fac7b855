"""Does bf16 embedding change the evaluation? fp32 vs bf16 autocast features of one model on
CoNSeP's test cells: their cosine similarity, and the protocol's k-means scores of each.

    .venv/bin/python benchmarks/embed_precision.py [--config configs/cpu-untrained.yaml] [--seeds 3]

The model is the config's seeded initial weights (epochs 0: the CPU default of `wsicell
train`); the crops are embedded as `wsicell embed` does (the config's views). This is the
measurement behind `precision: auto` being the default of `wsicell embed` as of every other
command (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from record import save

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "data" / "consep-tiles")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "cpu-untrained.yaml")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "_work" / "embed-precision")
    args = parser.parse_args()

    import numpy as np
    import torch

    from wsicell.embed import embed_crops
    from wsicell.evaluate.dataset import build_split_store, load_split
    from wsicell.evaluate.scoring import cluster_and_score
    from wsicell.train.config import train_config
    from wsicell.train.methods.registry import build_method

    torch.set_num_threads(1)
    store = build_split_store(dataset=args.dataset, split="test", out=args.out / "test.zarr", crop_size=32, progress=False)
    cells = load_split(store)
    config = train_config(args.config)
    torch.manual_seed(config.seed)
    model = build_method(config).encoder("momentum").eval()
    x, seconds = {}, {}
    for precision in ("fp32", "bf16"):
        t0 = time.perf_counter()
        x[precision] = embed_crops(model, cells.crops, crop_size=config.crop_size, precision=precision, views=config.embed_views)
        seconds[precision] = time.perf_counter() - t0
    a, b = x["fp32"], x["bf16"]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    print(f"{len(cells)} test cells, {args.config.name}, {config.embed_views} views; load {os.getloadavg()[0]:.1f}")
    print(f"cosine similarity bf16 vs fp32: min {cos.min():.5f}, mean {cos.mean():.5f}")
    print("| seed | precision | AMI | ARI | purity | accuracy | embed s |\n|---|---|---|---|---|---|---|")
    rows = []
    for seed in range(args.seeds):
        for precision in ("fp32", "bf16"):
            s = cluster_and_score(x[precision], cells.labels, seed=seed, spherical=True)
            row = {"seed": seed, "precision": precision, **{m: round(100 * getattr(s, m), 2) for m in ("ami", "ari", "purity", "accuracy")},
                   "embed_s": round(seconds[precision], 1)}  # fmt: skip
            rows.append(row)
            print(f"| {seed} | {precision} | {row['ami']:.2f} | {row['ari']:.2f} | {row['purity']:.2f} | {row['accuracy']:.2f} | {row['embed_s']} |")
    diff = max(abs(r["ami"] - q["ami"]) for r, q in zip(rows[::2], rows[1::2], strict=True))
    print(f"largest AMI difference bf16 - fp32 over seeds: {diff:.2f} points")
    save("embed_precision", rows, notes={"cells": len(cells), "config": args.config.name, "views": config.embed_views,
                                         "cosine_min": round(float(cos.min()), 5), "cosine_mean": round(float(cos.mean()), 5),
                                         "max_ami_difference_points": round(diff, 2)},
         title="fp32 vs bf16 embedding: feature agreement and CoNSeP k-means scores (%)")  # fmt: skip


if __name__ == "__main__":
    main()
