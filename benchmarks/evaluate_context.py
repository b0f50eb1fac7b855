"""Choosing the tissue context (radius, weight) on the TRAIN split's labels.

Every given run is embedded once (8 views, as `wsicell embed`); its train and test cells
are clustered (cosine k-means, k = 4) plain and with each context setting of the grid
(cluster/context.py; neighbours within one tile). The mean TRAIN-label AMI over the runs
chooses; the test scores are printed beside it, reported only.

    .venv/bin/python benchmarks/evaluate_context.py RUN [RUN ...] [--random-seeds 1]
    .venv/bin/python benchmarks/evaluate_context.py RUN [RUN ...] --random-seeds 3 --image-ami

``--image-ami`` instead asks whether clusters follow the source image: AMI of the k-means
clusters (seed i for the i-th run / random seed; plain and 20 µm / weight 1) against the
cell's label and against its source image, on both splits.

RUN: training run folders (or checkpoints) of the fast config, e.g. the three seeds of
`wsicell evaluate --out DIR` (DIR/runs/ccrl-seed0 ...). The split stores are DIR/cells
(built by `wsicell evaluate`), given with --cells. Results are appended to
benchmarks/_work/context/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from record import save  # benchmarks/record.py: the figures as JSON

ROOT = Path(__file__).resolve().parents[1]
GRID = [(0.0, 1.0)] + [(r, w) for r in (10.0, 20.0, 30.0) for w in (0.5, 1.0, 2.0)]
"""(radius µm, weight) settings tried; radius 0 = no context. Also used by evaluate_holdout.py."""


def score_grid(cells, x: np.ndarray, grid: list[tuple[float, float]] = GRID) -> dict[str, list[float]]:
    """AMI / ARI / purity (%) of cosine k-means of ``x`` (one row per cell of the labelled
    ``cells``), plain and with each context setting of ``grid``; keys "radius,weight"."""
    from wsicell.cluster.context import Context
    from wsicell.evaluate.protocol import Scoring

    out = {}
    for radius, weight in grid:
        context = Context(radius_um=radius, weight=weight)
        scoring = Scoring(cells, context if context.enabled else None)
        rows = scoring.rows("x", "ccrl")
        scoring.add(rows, x, seed=0, spherical=True)
        s = rows[-1].scores[0]
        out[f"{radius:g},{weight:g}"] = [round(100 * s.ami, 1), round(100 * s.ari, 1), round(100 * s.purity, 1)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--cells", type=Path, required=True, help="Folder with train.zarr and test.zarr split stores.")
    parser.add_argument("--random-seeds", type=int, default=1, help="Also score this many random-init encoders.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-ami", action="store_true", help="AMI of clusters vs source image (no grid)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "_work" / "context")
    args = parser.parse_args()

    import torch

    from wsicell.embed import embed_crops, load_encoder
    from wsicell.evaluate.baselines import random_encoder
    from wsicell.evaluate.dataset import load_split
    from wsicell.evaluate.protocol import embed

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    cells = {s: load_split(args.cells / f"{s}.zarr") for s in ("train", "test")}
    reps: dict[str, dict[str, np.ndarray]] = {}
    for run in args.runs:
        reps[run.name] = {s: embed(run, c, encoder="momentum") for s, c in cells.items()}
    if args.random_seeds:
        _, config = load_encoder(args.runs[0], encoder="momentum", device="cpu")
        for seed in range(args.random_seeds):
            model = random_encoder(stem=config.stem, width=config.width, seed=seed)
            reps[f"random-seed{seed}"] = {
                s: embed_crops(model, c.crops, crop_size=config.crop_size, views=config.embed_views)
                for s, c in cells.items()
            }

    if args.image_ami:
        image_ami(cells, reps)
        return
    print(f"{'radius':>6s} {'weight':>6s} | mean TRAIN AMI (runs) | mean test AMI / ARI / purity (runs) | random-init test AMI")
    grids = {name: {split: score_grid(c, x[split]) for split, c in cells.items()} for name, x in reps.items()}
    table = []
    for radius, weight in GRID:
        key = f"{radius:g},{weight:g}"
        scores = {name: {split: g[key] for split, g in by_split.items()} for name, by_split in grids.items()}
        trained = [n for n in reps if not n.startswith("random")]
        train_ami = float(np.mean([scores[n]["train"][0] for n in trained]))
        test = np.mean([scores[n]["test"] for n in trained], axis=0)
        random_test = [scores[n]["test"][0] for n in reps if n.startswith("random")]
        record = {"radius_um": radius, "weight": weight, "train_ami_mean": round(train_ami, 2),
                  "test_mean": [round(v, 2) for v in test], "scores": scores, "time": time.strftime("%H:%M:%S")}  # fmt: skip
        table.append(record)
        with open(args.out / "results.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"{radius:6g} {weight:6g} | {train_ami:21.1f} | {test[0]:14.1f} / {test[1]:4.1f} / {test[2]:4.1f} | "
              f"{', '.join(f'{v:.1f}' for v in random_test)}", flush=True)  # fmt: skip
    best = max((r for r in table if r["radius_um"] > 0), key=lambda r: r["train_ami_mean"])
    print(f"\nchosen on TRAIN labels: radius {best['radius_um']:g} µm, weight {best['weight']:g} "
          f"(mean TRAIN AMI {best['train_ami_mean']:.1f}); its test mean AMI / ARI / purity: "
          f"{' / '.join(f'{v:.1f}' for v in best['test_mean'])}")  # fmt: skip
    save("evaluate_context", [{k: v for k, v in r.items() if k != "scores"} for r in table],
         notes={"runs": [r.name for r in args.runs], "random_seeds": args.random_seeds,
                "chosen": {"radius_um": best["radius_um"], "weight": best["weight"]}},
         title="tissue context grid: mean TRAIN AMI and test AMI / ARI / purity (%)")  # fmt: skip


def image_ami(cells: dict, reps: dict[str, dict[str, np.ndarray]]) -> None:
    """Per representation and split: AMI (%) of the clusters against the label and against
    the source image, plain and with 20 µm / weight 1 context (protocol's k-means)."""
    from sklearn.metrics import adjusted_mutual_info_score as ami

    from wsicell.cluster.context import Context, context_embeddings
    from wsicell.evaluate.kmeans import kmeans
    from wsicell.evaluate.protocol import KMEANS_RESTARTS

    context = Context(radius_um=20.0, weight=1.0)
    print("representation | split | seed | AMI label / image (plain) | AMI label / image (20 µm, w 1)")
    seeds: dict[str, int] = {}
    for name, by_split in reps.items():
        kind = "random" if name.startswith("random") else "trained"
        seed = seeds[kind] = seeds.get(kind, -1) + 1
        for split, c in cells.items():
            x = by_split[split]
            xc = context_embeddings(x, c.centroid, mpp=c.mpp, context=context, groups=c.tile)
            out = []
            for z in (x, xc):
                clusters, _ = kmeans(z, k=len(np.unique(c.labels)), seed=seed, restarts=KMEANS_RESTARTS, spherical=True)
                out.append(f"{100 * ami(c.labels, clusters):.1f} / {100 * ami(c.source, clusters):.1f}")
            print(f"{name} | {split} | {seed} | {out[0]} | {out[1]}", flush=True)


if __name__ == "__main__":
    main()
