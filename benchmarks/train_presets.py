"""What `wsicell train` costs on a CPU, per preset, side by side: seconds per 10,000 cells.

Trains each CPU preset as shipped (its epochs, one thread unless --threads) on a store of
REAL nucleus crops (the sample slide extracted once, its crops copied into ``--copies``
slide groups, ~2,600 cells each) and prints wall and CPU seconds per 10,000 cells: the CPU
default (the nucleus segmenter's encoder, no training), the untrained ResNet (no training)
and the two trained presets:

    .venv/bin/python benchmarks/train_presets.py [--copies 4] [--threads 1]

The machine is shared: the load average is printed next to every figure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import torch
from record import save  # benchmarks/record.py: the figures as JSON
from train_throughput import WORK, real_crops_store

from wsicell.config import load_config
from wsicell.store import CellStore
from wsicell.train.config import TrainConfig
from wsicell.train.loop import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRESETS = ("nucleus-untrained", "cpu-untrained", "stain-distill-cpu-fast", "ccrl-cpu-fast")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=4, help="slide groups of the sample's crops [4]")
    ap.add_argument("--threads", type=int, default=1, help="torch threads [1, as the presets]")
    args = ap.parse_args()
    store, _ = real_crops_store(args.copies)
    cells = CellStore.open(store).total_cells()
    print(f"{cells} real crops ({args.copies} copies of the sample slide's), {args.threads} thread(s)")
    print(f"{'preset':<24s} {'method':<14s} {'epochs':>6s} {'wall s':>7s} {'CPU s':>7s} {'wall s / 10k cells':>19s} {'load':>5s}")
    rows = []
    for name in PRESETS:
        config = load_config(TrainConfig, CONFIGS / f"{name}.yaml", threads=args.threads, checkpoint_every=0)
        out = WORK / f"train-preset-{name}"
        shutil.rmtree(out, ignore_errors=True)
        torch.manual_seed(0)
        wall, cpu = time.perf_counter(), time.process_time()
        train(store=store, out=out, config=config, progress=False)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        load = os.getloadavg()[0]
        row = {"preset": name, "method": config.method, "epochs": config.epochs, "cells": cells, "wall_s": round(wall, 1),
               "cpu_s": round(cpu, 1), "wall_s_per_10k_cells": round(wall * 1e4 / cells, 1), "load": round(load, 1)}  # fmt: skip
        rows.append(row)
        print(f"{name:<24s} {config.method:<14s} {config.epochs:>6d} {wall:>7.1f} {cpu:>7.1f} {row['wall_s_per_10k_cells']:>19.1f} {load:>5.1f}")
        shutil.rmtree(out, ignore_errors=True)
    save("train_presets", rows, title="wsicell train on a CPU: the presets' cost per 10,000 cells")


if __name__ == "__main__":
    main()
