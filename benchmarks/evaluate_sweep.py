"""The configuration sweep behind configs/ccrl-cpu-fast.yaml (docs/results.md, "Model selection").

    .venv/bin/python benchmarks/evaluate_sweep.py                     # every variant below
    .venv/bin/python benchmarks/evaluate_sweep.py LS05 T02            # some of them

Each variant is the fast CPU config plus a few settings, trained once (seed 0) on CoNSeP's
train split; every epoch checkpoint is embedded with 1 view and with 8 views (rotations and
mirror images) and clustered (cosine k-means, k = 4) on the TRAIN split, whose labels choose
the configuration, and on the test split, reported only. Runs are reused from
benchmarks/_work/sweep/runs; results are appended to benchmarks/_work/sweep/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from record import save  # benchmarks/record.py: the figures as JSON

ROOT = Path(__file__).resolve().parents[1]

VARIANTS: dict[str, dict] = {
    "fast": {},  # the fast config as it was before the sweep (whole-crop local view 20-100 %)
    "LS05": {"local_scale": (0.5, 1.0)},  # the local view keeps 50-100 % of the crop  <- chosen
    "T02": {"temperature": 0.2},
    "J8": {"temperature": 0.2, "jitter": (0.8, 0.8, 0.8, 0.2), "grayscale_p": 0.4, "bn_splits": 8},
    "C32": {"temperature": 0.2, "crop_size": 32, "bn_splits": 8},
    "W64C32": {"local_scale": (0.5, 1.0), "width": 64, "crop_size": 32, "threads": 2},
    "NLG10": {"epochs": 10, "local_global": False},
    "M999-10": {"epochs": 10, "momentum": 0.999},
    "L20": {"epochs": 20, "warmup_epochs": 2, "temperature": 0.2, "local_scale": (0.5, 1.0)},
    "S20": {"epochs": 20, "warmup_epochs": 2, "temperature": 0.2, "local_scale": (0.5, 1.0), "bn_splits": 8},
    "S20d": {"epochs": 20, "warmup_epochs": 2, "bn_splits": 8},
    "CJ1-10": {"epochs": 10, "local_scale": (0.5, 1.0), "jitter": (0.1, 0.1, 0.1, 0.02), "grayscale_p": 0.0},
    "CJ0-10": {"epochs": 10, "local_scale": (0.5, 1.0), "jitter_p": 0.0, "grayscale_p": 0.0},
}
BASE = {"local_scale": (0.2, 1.0)}  # the pre-sweep fast config (its other settings are in the file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=list(VARIANTS), help=f"some of {', '.join(VARIANTS)}")
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "data" / "consep-tiles")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "_work" / "sweep")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from wsicell.config import load_config
    from wsicell.evaluate.dataset import build_split_store, load_split
    from wsicell.evaluate.protocol import cluster_and_score, embed, ensure_trained
    from wsicell.train.config import TrainConfig
    from wsicell.train.run_dir import RunDir

    torch.set_num_threads(args.threads)
    stores = {s: build_split_store(dataset=args.dataset, split=s, out=args.out / "cells" / f"{s}.zarr", progress=False)
              for s in ("train", "test")}  # fmt: skip
    cells = {s: load_split(p) for s, p in stores.items()}
    print(f"{'variant':8s} {'epoch':>5s} {'min':>5s} {'views':>5s} | TRAIN AMI   ARI purity | test AMI   ARI purity")
    rows = []
    for name in args.variants:
        settings = {"threads": args.threads, **BASE, **VARIANTS[name]}
        config = load_config(TrainConfig, ROOT / "configs" / "ccrl-cpu-fast.yaml", **settings)
        torch.set_num_threads(config.threads)
        run = args.out / "runs" / name
        ensure_trained(store=stores["train"], run=run, config=config, progress=False, log=lambda m: None)
        ckpts = RunDir(run).epoch_checkpoints()
        step = max(1, len(ckpts) // 5)  # at most ~5 checkpoints per run
        for epoch, ckpt in ckpts[step - 1 :: step]:
            for views in (1, 8):
                s = {split: cluster_and_score(embed(ckpt, c, encoder="momentum", views=views), c.labels, seed=0, spherical=True)
                     for split, c in cells.items()}  # fmt: skip
                minutes = RunDir(run).training_seconds(upto_epoch=epoch) / 60
                row = {"variant": name, "epoch": epoch, "train_minutes": round(minutes, 2), "views": views,
                       **{f"{split}_{m}": round(100 * getattr(v, m), 1) for split, v in s.items() for m in ("ami", "ari", "purity")},
                       "load": round(os.getloadavg()[0], 1), "time": time.strftime("%H:%M:%S")}  # fmt: skip
                with open(args.out / "results.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                rows.append(row)
                tr, te = s["train"], s["test"]
                print(f"{name:8s} {epoch:5d} {minutes:5.1f} {views:5d} | {100 * tr.ami:9.1f} {100 * tr.ari:5.1f} {100 * tr.purity:6.1f} "
                      f"| {100 * te.ami:8.1f} {100 * te.ari:5.1f} {100 * te.purity:6.1f}", flush=True)  # fmt: skip
    save("evaluate_sweep", rows, notes={"variants": args.variants, "threads": args.threads},
         title="CPU training sweep: TRAIN and test AMI / ARI / purity (%) per checkpoint")


if __name__ == "__main__":
    main()
