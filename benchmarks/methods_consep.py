"""CCRL, SimCLR and SSLP through the CoNSeP protocol at one budget (docs/methods.md).

Self-supervised training on the train split (labels unused), embeddings of both splits with
the method's encoder, k-means (k = number of classes) on the test split over several seeds
-> AMI / ARI / purity / Hungarian accuracy (mean ± std), and the linear probe (logistic
regression fitted on train embeddings, macro F1 on test). Prints the figures next to the
training time and the machine load (other jobs share the 2 cores: times are noisy).

    .venv/bin/python benchmarks/methods_consep.py --config configs/simclr.yaml \
        --set epochs=5 --set width=32 --out out/methods/simclr
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from wsicell.config import load_config
from wsicell.evaluate.dataset import build_split_store, load_split
from wsicell.evaluate.kmeans import kmeans
from wsicell.evaluate.linear import linear_probe
from wsicell.evaluate.metrics import mean_std, score_clusters
from wsicell.train.augment import to_float_batch
from wsicell.train.config import TrainConfig
from wsicell.train.method import build_method

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def embed(encoder: torch.nn.Module, crops: np.ndarray, *, size: int, batch: int = 512) -> np.ndarray:
    """Backbone features (n, D) float32 of uint8 crops (n, S, S, 3), eval mode, CPU."""
    encoder.eval()
    out = []
    for start in range(0, len(crops), batch):
        x = to_float_batch(crops[start : start + batch], size=size, device=torch.device("cpu"))
        out.append(encoder(x).float().numpy())
    return np.concatenate(out)


def evaluate_encoder(encoder: torch.nn.Module, *, train_store: Path, test_store: Path, size: int, seeds: int) -> dict:
    train, test = load_split(train_store), load_split(test_store)
    t0 = time.perf_counter()
    train_x = embed(encoder, train.crops, size=size)
    test_x = embed(encoder, test.crops, size=size)
    embed_s = time.perf_counter() - t0
    k = len(np.unique(test.labels))
    scores = [score_clusters(labels=test.labels, clusters=kmeans(test_x, k=k, seed=s)[0]) for s in range(seeds)]
    probe = linear_probe(train_x=train_x, train_y=train.labels, test_x=test_x, test_y=test.labels)
    return {
        "k": k, "n_train": len(train), "n_test": len(test), "embed_seconds": round(embed_s, 1),
        "kmeans": {m: [round(100 * v, 2) for v in ms] for m, ms in mean_std(scores).items()},
        "linear": {"macro_f1": round(100 * probe.macro_f1, 2), "accuracy": round(100 * probe.accuracy, 2)},
    }  # fmt: skip


def load_trained(run: Path, config: TrainConfig) -> torch.nn.Module:
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=False)
    method = build_method(config)
    method.load_state_dict(state["model"])
    return method.encoder(config.embed_encoder)


def parse_sets(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="key=value (YAML value)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "data" / "consep-tiles")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--eval-only", action="store_true", help="evaluate the run already in --out")
    args = parser.parse_args()

    config = load_config(TrainConfig, args.config, **parse_sets(args.sets))
    args.out.mkdir(parents=True, exist_ok=True)
    stores = args.out.parent / "stores"
    train_store = build_split_store(dataset=args.dataset, split="train", out=stores / "train.zarr", progress=False)
    test_store = build_split_store(dataset=args.dataset, split="test", out=stores / "test.zarr", progress=False)
    run = args.out / "run"
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    if not args.eval_only:
        from wsicell.train.loop import train

        train(store=train_store, out=run, config=config, progress=False)
    train_s = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    result = {
        "method": config.method, "config": str(args.config), "sets": args.sets,
        "train_seconds": None if args.eval_only else round(train_s, 1),
        "load_start_end": [round(load0, 1), round(load1, 1)],
        **evaluate_encoder(load_trained(run, config), train_store=train_store, test_store=test_store,
                           size=config.crop_size, seeds=args.seeds),
    }  # fmt: skip
    (args.out / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
