"""Trained runs of any method through the CoNSeP protocol, plus the linear probe.

For each run directory: embeddings of the train and test splits with the run's encoder
(``wsicell.embed.load_encoder``), cosine k-means with k = number of classes on the test
split over several seeds -> AMI / ARI / purity / Hungarian accuracy (mean ± std, the same
functions as ``wsicell evaluate``), and the linear probe (logistic regression fitted on the
train embeddings, macro F1 on test). Prints one row per run with its training time (sum
of the epochs in metrics.jsonl) and the machine load. Train the runs first, e.g.

    wsicell train --store OUT/cells/train.zarr --config configs/simclr.yaml --out OUT/runs/simclr
    .venv/bin/python benchmarks/methods_consep.py OUT/runs/ccrl OUT/runs/simclr OUT/runs/sslp --cells OUT/cells
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON

from wsicell.evaluate.dataset import build_split_store, load_split
from wsicell.evaluate.linear import linear_probe
from wsicell.evaluate.metrics import mean_std
from wsicell.evaluate.protocol import cluster_and_score, embed
from wsicell.train.run_dir import RunDir

ROOT = Path(__file__).resolve().parents[1]


def score_run(run: Path, *, train, test, seeds: int) -> dict:
    encoder = "momentum"
    train_x = embed(run, train, encoder=encoder)
    test_x = embed(run, test, encoder=encoder)
    scores = [cluster_and_score(test_x, test.labels, seed=s, spherical=True) for s in range(seeds)]
    probe = linear_probe(train_x=train_x, train_y=train.labels, test_x=test_x, test_y=test.labels)
    config = RunDir(run).read_config() or {}
    return {
        "run": str(run), "method": config.get("method"), "epochs": RunDir(run).epochs_done(),
        "train_seconds": round(RunDir(run).training_seconds(), 1),
        "kmeans": {m: [round(100 * v, 2) for v in ms] for m, ms in mean_std(scores).items()},
        "linear": {"macro_f1": round(100 * probe.macro_f1, 2), "accuracy": round(100 * probe.accuracy, 2)},
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run directories (none: only build the split stores)")
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "data" / "consep-tiles")
    parser.add_argument("--cells", type=Path, default=ROOT / "out" / "methods" / "cells")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    train = load_split(build_split_store(dataset=args.dataset, split="train", out=args.cells / "train.zarr", progress=False))
    test = load_split(build_split_store(dataset=args.dataset, split="test", out=args.cells / "test.zarr", progress=False))
    if not args.runs:
        print(f"split stores ready in {args.cells}")
        return
    rows = [score_run(run, train=train, test=test, seeds=args.seeds) for run in args.runs]
    print(f"CoNSeP (256-px tiles): {len(train.labels)} train / {len(test.labels)} test cells, k = {len(np.unique(test.labels))}, "
          f"{args.seeds} k-means seeds; load average {os.getloadavg()[0]:.1f} (2 shared cores: times are noisy)")  # fmt: skip
    print("| method | epochs | train time | AMI | ARI | purity | accuracy | linear macro F1 | linear acc. |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        k = r["kmeans"]
        cells = " | ".join(f"{k[m][0]:.1f} ± {k[m][1]:.1f}" for m in ("ami", "ari", "purity", "accuracy"))
        print(f"| {r['method']} | {r['epochs']} | {r['train_seconds'] / 60:.0f} min | {cells} | "
              f"{r['linear']['macro_f1']:.1f} | {r['linear']['accuracy']:.1f} |")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    save("methods_consep", [{**r, "run": Path(r["run"]).name} for r in rows], notes={"seeds": args.seeds, "n_train": len(train.labels), "n_test": len(test.labels)},
         title="CCRL, SimCLR and SSLP on CoNSeP: k-means and linear evaluation")


if __name__ == "__main__":
    main()
