"""Model selection by held-out images of the train split (docs/results.md, "Tissue context").

Scores on the train split's own labels measure how well a model clusters the images it was
trained on; the protocol asks how well it clusters *new* images. This script mimics that
inside the train split: its source images are cut into two folds, each configuration is
trained (without labels) on one fold and scored on the other, both ways, and the mean over
the folds chooses. The test split is never read.

    .venv/bin/python benchmarks/evaluate_holdout.py                  # every variant below
    .venv/bin/python benchmarks/evaluate_holdout.py fast NLG         # some of them
    .venv/bin/python benchmarks/evaluate_holdout.py fast --curve     # held-out AMI per epoch

Each held-out fold is clustered plain and with every tissue-context setting of GRID (the
held-out images are new to the model, as the test images are, so this also chooses the
context's radius and weight). Runs and fold stores are kept in benchmarks/_work/holdout;
results are appended to benchmarks/_work/holdout/results.jsonl, and the summary (mean over
folds and seeds of every variant x context setting) is printed at the end.

``--curve`` scores the per-epoch checkpoints of already trained runs instead, with epoch 0
= a random-init encoder of the same architecture and seed (does training help on images the
model never saw, and from which epoch?); results in benchmarks/_work/holdout/curve.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from evaluate_context import GRID, score_grid  # benchmarks/ is the script's folder
from record import save  # benchmarks/record.py: the figures as JSON

ROOT = Path(__file__).resolve().parents[1]

VARIANTS: dict[str, dict] = {
    "fast": {},  # configs/ccrl-cpu-fast.yaml as it is
    "NLG": {"local_global": False},  # the paper's "w/o local-global"
    "NPRED": {"predictor": False},  # the paper's "w/o predictor"
    "T02": {"temperature": 0.2},
    "CP32": {"stem": "cifar_pool", "crop_size": 32, "threads": 2},  # 3x3 stem + max-pool, 32-px crops
    "NB": {"blur_p": 0.0},  # no Gaussian blur: sharpness tells a small (upsampled) nucleus from a large one
    "NG": {"grayscale_p": 0.0},  # no random grayscale: keep the stain's colour
    "NBG": {"blur_p": 0.0, "grayscale_p": 0.0},
    "E8": {"epochs": 8},  # a longer cosine schedule
    "E12": {"epochs": 12},
    "Q1024": {"queue_size": 1024},  # fewer negatives: fewer same-type cells pushed apart
    "Q16384": {"queue_size": 16384},  # nearly every train cell a negative
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
    parser.add_argument("--curve", action="store_true", help="score every epoch's checkpoint of trained runs (epoch 0 = random init)")
    args = parser.parse_args()
    if args.curve:
        if not args.summary:
            run_curve(args)
        curve_summary(args.out / "curve.jsonl")
        return
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
        grid = score_grid(held_out, embed(run, held_out, encoder="momentum"))
        record = {
            "variant": name, "fold": k, "seed": seed, "n_held_out": len(held_out), "grid": grid,
            "load": round(os.getloadavg()[0], 1), "time": time.strftime("%H:%M:%S"),
        }  # fmt: skip
        with open(args.out / "results.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        plain, ctx = grid["0,1"], grid["20,1"]
        print(f"{name:8s} {k:4d} {seed:4d} | {plain[0]:12.1f} {plain[1]:5.1f} {plain[2]:6.1f} | "
              f"{ctx[0]:20.1f} {ctx[1]:5.1f} {ctx[2]:6.1f}", flush=True)  # fmt: skip


CURVE_GRID = [(0.0, 1.0), (20.0, 1.0)]  # plain and the chosen context


def run_curve(args: argparse.Namespace) -> None:
    import torch

    from wsicell.config import load_config
    from wsicell.embed import embed_crops
    from wsicell.evaluate.baselines import random_encoder
    from wsicell.evaluate.dataset import load_split
    from wsicell.evaluate.protocol import embed
    from wsicell.train.config import TrainConfig
    from wsicell.train.run_dir import RunDir

    folds = fold_datasets(args.dataset, args.out)
    for name, seed, (k, fold) in ((n, s, f) for n in args.variants for s in args.seeds for f in enumerate(folds)):
        run = args.out / "runs" / f"{name}-fold{k}-seed{seed}"
        if not RunDir(run).has_checkpoint():
            print(f"{run.name}: not trained (run the variant first); skipped")
            continue
        config = load_config(TrainConfig, ROOT / "configs" / "ccrl-cpu-fast.yaml", seed=seed, **VARIANTS[name])
        torch.set_num_threads(config.threads)
        held_out = load_split(fold / "cells" / "test.zarr")
        for epoch in range(config.epochs + 1):
            if epoch == 0:
                model = random_encoder(stem=config.stem, width=config.width, seed=seed)
                x = embed_crops(model, held_out.crops, crop_size=config.crop_size, views=config.embed_views)
            else:
                x = embed(RunDir(run).checkpoint(epoch), held_out, encoder="momentum")
            grid = score_grid(held_out, x, CURVE_GRID)
            record = {"variant": name, "fold": k, "seed": seed, "epoch": epoch, "grid": grid, "time": time.strftime("%H:%M:%S")}
            with open(args.out / "curve.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"{name} fold {k} seed {seed} epoch {epoch}: plain AMI {grid['0,1'][0]:.1f}, context {grid['20,1'][0]:.1f}", flush=True)


def curve_summary(path: Path) -> None:
    """Held-out AMI / ARI / purity per epoch, mean over (fold, seed)."""
    import numpy as np

    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    latest = {(r["variant"], r["fold"], r["seed"], r["epoch"]): r for r in records}
    print("\nheld-out AMI / ARI / purity per epoch (epoch 0 = random init), mean over folds x seeds")
    print("| variant | epoch | n | no context | 20 µm, w 1 |")
    print("|---|---|---|---|---|")
    rows = []
    for variant, epoch in sorted({(v, e) for v, _, _, e in latest}):
        rs = [r for (v, _, _, e), r in latest.items() if (v, e) == (variant, epoch)]
        cells = [np.mean([r["grid"][key] for r in rs], axis=0) for key in ("0,1", "20,1")]
        print(f"| {variant} | {epoch} | {len(rs)} | " + " | ".join(f"{m[0]:.1f} / {m[1]:.1f} / {m[2]:.1f}" for m in cells) + " |")
        rows.append({"variant": variant, "epoch": epoch, "runs": len(rs), "no_context": [round(float(v), 1) for v in cells[0]],
                     "context_20um_w1": [round(float(v), 1) for v in cells[1]]})  # fmt: skip
    save("evaluate_holdout-curve", rows, title="held-out AMI / ARI / purity per epoch (mean over folds x seeds)")


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
    rows = []
    for variant, rs in by_variant.items():
        cells = []
        row: dict = {"variant": variant, "runs": len(rs)}
        for r, w in GRID:
            key = f"{r:g},{w:g}"
            m = np.mean([x["grid"][key] for x in rs], axis=0)
            cells.append(f"{m[0]:.1f} / {m[1]:.1f} / {m[2]:.1f}")
            row[f"R {r:g}, w {w:g}"] = [round(float(v), 1) for v in m[:3]]
            if best is None or m[0] > best[0]:
                best = (m[0], variant, key, len(rs))
        print(f"| {variant} | {len(rs)} | " + " | ".join(cells) + " |")
        rows.append(row)
    if best is not None:
        print(f"\nbest held-out AMI: {best[0]:.1f} = {best[1]} with context (R, w) = ({best[2]}) over {best[3]} runs")
    save("evaluate_holdout", rows, notes={} if best is None else {"best": {"ami": round(float(best[0]), 1), "variant": best[1],
                                                                            "context": best[2], "runs": best[3]}},
         title="held-out AMI / ARI / purity (%) per variant and tissue context, mean over folds x seeds")  # fmt: skip


if __name__ == "__main__":
    main()
