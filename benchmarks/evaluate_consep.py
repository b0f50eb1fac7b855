"""The CCRL paper's CoNSeP table, reproduced with `wsicell evaluate`'s protocol.

    .venv/bin/python benchmarks/evaluate_consep.py                 # the documented run
    .venv/bin/python benchmarks/evaluate_consep.py --seeds 1 --no-ablations   # quicker

Trains the fast CPU configuration once per seed (and the ablations), scores the baselines,
prints the table beside the paper's rows and whether each of AMI / ARI / purity beats the
paper's CCRL, with the load average (the reference machine is shared: times are noisy).
Results and runs go to benchmarks/_work/evaluate (reused when run again).

    .venv/bin/python benchmarks/evaluate_consep.py --select RUN [RUN ...]

scores choices on the TRAIN split's labels only (never the test labels): each run's (and a
random-init encoder's) embeddings clustered by cosine k-means, Euclidean k-means on raw and
on standardised features. This is how the clustering metric and the configuration were chosen.
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
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "data" / "consep-tiles")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "ccrl-cpu-fast.yaml")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--baselines", default="all")
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--ablation-seeds", type=int, default=None, help="train ablations for the first N seeds only")
    parser.add_argument("--no-curve", action="store_true", help="skip scoring every epoch checkpoint")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--context-radius", type=float, default=20.0, help="tissue context rows (µm; 0 = none)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "_work" / "evaluate")
    parser.add_argument("--select", type=Path, nargs="*", help="runs / checkpoints to compare on the train split's labels")
    args = parser.parse_args()

    import torch

    from wsicell.cli.evaluate import parse_baselines
    from wsicell.cluster.context import Context
    from wsicell.config import load_config
    from wsicell.evaluate.protocol import run_protocol
    from wsicell.evaluate.report import PAPER_CCRL, markdown
    from wsicell.train.config import TrainConfig

    torch.set_num_threads(args.threads)
    config = load_config(TrainConfig, args.config, threads=args.threads)
    if args.select is not None:
        select(args, config)
        return
    started = time.time()
    results = run_protocol(
        dataset=args.dataset, out=args.out, config=config, seeds=list(range(args.seeds)),
        baselines=parse_baselines(args.baselines), ablations=not args.no_ablations,
        ablation_seeds=args.ablation_seeds, with_curve=not args.no_curve, progress=False,
        context=Context(radius_um=args.context_radius),
        log=lambda m: print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {m}", flush=True),
    )  # fmt: skip
    print()
    print(markdown(results))
    for main_row in [r for r in results["rows"] if r["kind"] == "ccrl"]:
        print(f"{main_row['name']} versus the paper's CCRL on CoNSeP:")
        for metric, paper in PAPER_CCRL.items():
            ours = 100 * main_row["mean"][metric]
            verdict = "beats" if ours > paper else "misses"
            print(f"  {metric:7s} ours {ours:5.1f} ± {100 * main_row['std'][metric]:.1f}   paper {paper:5.1f}   {verdict} by {ours - paper:+.1f}")
    print(f"total {time.time() - started:.0f} s, load average {os.getloadavg()}")
    save("evaluate_consep", [
        {"name": r["name"], "kind": r["kind"], **{f"{m}": round(100 * r["mean"][m], 1) for m in ("ami", "ari", "purity", "accuracy")},
         **{f"{m}_std": round(100 * r["std"][m], 1) for m in ("ami", "ari", "purity", "accuracy")}}
        for r in results["rows"]
    ], notes={"config": args.config.name, "seeds": args.seeds, "n_test": results["n_test"], "k": results["k"],
              "curve": results["curve"], "paper_ccrl": PAPER_CCRL, "seconds": round(time.time() - started)},
       title="the CCRL paper's CoNSeP protocol (AMI, ARI, purity, accuracy in %)")  # fmt: skip


def select(args: argparse.Namespace, config) -> None:
    """Clustering choices scored against the TRAIN labels (model selection without test labels)."""
    from wsicell.embed import embed_crops
    from wsicell.evaluate.baselines import random_encoder, standardise
    from wsicell.evaluate.dataset import build_split_store, load_split
    from wsicell.evaluate.protocol import cluster_and_score, embed

    store = build_split_store(dataset=args.dataset, split="train", out=args.out / "cells" / "train.zarr", progress=False)
    cells = load_split(store)
    random_init = random_encoder(stem=config.stem, width=config.width, seed=0)
    candidates = {"random-init": embed_crops(random_init, cells.crops, crop_size=config.crop_size, views=config.embed_views)}
    for run in args.select:  # a run directory (its last.pt) or a checkpoint file
        name = f"{run.parent.parent.name}/{run.parent.name}/{run.stem}" if run.is_file() else f"{run.parent.parent.name}/{run.name}"
        candidates[name] = embed(run, cells.crops, encoder="momentum")
    print(f"train split: {len(cells)} cells; load {os.getloadavg()[0]:.1f}")
    rows = []
    for name, x in candidates.items():
        for label, data, spherical in (("cosine", x, True), ("euclidean", x, False), ("standardised", standardise(x), False)):
            s = cluster_and_score(data, cells.labels, seed=0, spherical=spherical)
            print(f"  {name:48s} {label:12s} AMI {100 * s.ami:5.1f}  ARI {100 * s.ari:5.1f}  purity {100 * s.purity:5.1f}", flush=True)
            rows.append({"representation": name, "clustering": label, "ami": round(100 * s.ami, 1), "ari": round(100 * s.ari, 1),
                         "purity": round(100 * s.purity, 1)})  # fmt: skip
    save("evaluate_consep-select", rows, notes={"cells": len(cells)}, title="clustering choices scored on the train labels")


if __name__ == "__main__":
    main()
