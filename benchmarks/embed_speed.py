"""Embedding throughput: cells per second of `wsicell embed` for 1, 4 and 8 views, fp32 and bf16.

    .venv/bin/python benchmarks/embed_speed.py                    # fast CPU config, 20,000 crops
    .venv/bin/python benchmarks/embed_speed.py --config configs/ccrl.yaml --cells 4096

An untrained model of the config (weights do not change the cost) embeds random 32-px uint8
crops, as the store holds them, with ``wsicell.embed.embed_crops``; prints cells/s per
setting and what 1 million cells would take.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from record import save  # benchmarks/record.py: the figures as JSON

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "ccrl-cpu-fast.yaml")
    parser.add_argument("--cells", type=int, default=20_000)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    import numpy as np
    import torch

    from wsicell.config import load_config
    from wsicell.embed import embed_crops
    from wsicell.train.backbone import embedding_module
    from wsicell.train.config import TrainConfig
    from wsicell.train.methods.registry import build_method

    config = load_config(TrainConfig, args.config)
    model = embedding_module(build_method(config).encoder("momentum"), config.embed_stages).eval()
    model.crop_size = config.crop_size  # type: ignore[assignment]
    crops = np.random.default_rng(0).integers(0, 256, size=(args.cells, 32, 32, 3), dtype=np.uint8)
    net = "nucleus encoder" if config.backbone == "nucleus" else f"stem {config.stem}, width {config.width}"
    print(f"{args.config.name}: {net}, stages {list(config.embed_stages)}, crop {config.crop_size} px; {args.cells} cells; "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'threads':>7s} {'views':>5s} {'precision':>9s} {'cells/s':>9s} {'1M cells':>9s}")
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for views in (1, 4, 8):
            for precision in ("fp32", "bf16"):
                embed_crops(model, crops[:512], views=views, precision=precision)  # warm-up
                started = time.perf_counter()
                embed_crops(model, crops, views=views, precision=precision)
                rate = args.cells / (time.perf_counter() - started)
                print(f"{threads:7d} {views:5d} {precision:>9s} {rate:9.0f} {1e6 / rate / 60:7.1f} min", flush=True)
                rows.append({"threads": threads, "views": views, "precision": precision, "cells_per_s": round(rate),
                             "minutes_per_million": round(1e6 / rate / 60, 1)})  # fmt: skip
    save("embed_speed", rows, notes={"config": args.config.name, "backbone": config.backbone, "stem": config.stem,
                                     "width": config.width, "embed_stages": list(config.embed_stages),
                                     "crop_size": config.crop_size, "cells": args.cells},
         title="embedding throughput (cells/s) by threads, views and precision")  # fmt: skip


if __name__ == "__main__":
    main()
