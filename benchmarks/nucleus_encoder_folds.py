"""The CPU default's selection evidence: the nucleus segmenter's encoder on images its segmenter never saw.

Since 2026-11-30 the default embeds with the segmenter's **tile features** (``configs/nucleus-tile.yaml``,
``segment/tile_features.py``): rows ``tile features, B um box`` compute them with each fold's net on
the held-out tiles, for box sides ``--boxes``, beside the crop embedding, both joined (the
default) and a random-weight net's; each fold also gets a linear probe, 5 folds by image.

The shipped HV-net was trained on most of CoNSeP's train images, so its encoder cannot be
judged on them. This script cuts the train split's images into the two folds of
``evaluate_holdout.py``, trains one HV-net per fold **without that fold's images**
(``python -m wsicell.segment.train_hvnet --val-consep <the fold's images>``, with MoNuSeg as
for the shipped weights; about 18 min each on one thread), embeds each held-out fold with the
encoder of the net that never saw it (``backbone: nucleus``, levels 3-5, 4 rotations, as
``configs/nucleus-untrained.yaml``) and, beside it, with the untrained ResNet of
``configs/cpu-untrained.yaml`` (one run per seed), and clusters each fold, and each half of
it (alternate images), as ``wsicell cluster -k 4`` does, without and with the 20 µm context.
AMI % against the labels; the test split is never read.

    .venv/bin/python benchmarks/nucleus_encoder_folds.py                 # trains the 2 nets, then scores
    .venv/bin/python benchmarks/nucleus_encoder_folds.py --seeds 0 1     # fewer ResNet seeds

Nets and fold stores are kept in benchmarks/_work/nucleus_folds (a net already there is reused).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from evaluate_holdout import fold_datasets  # benchmarks/ is the script's folder
from record import save  # benchmarks/record.py: the figures as JSON

ROOT = Path(__file__).resolve().parents[1]


def train_net(fold: Path, *, consep: Path, monuseg: Path, out: Path, epochs: int) -> Path:
    """An HV-net trained without the images of ``fold``'s test half (the shipped recipe's data)."""
    from wsicell.evaluate.dataset import list_tiles, source_of

    if out.is_file():
        return out
    held = sorted({source_of(t.name).split("_")[-1] for t in list_tiles(fold, "test")}, key=int)
    command = [sys.executable, "-m", "wsicell.segment.train_hvnet", "--consep", str(consep), "--monuseg", str(monuseg),
               "--val-consep", ",".join(held), "--epochs", str(epochs), "--steps", "60", "--val-every", "20",
               "--seed", "0", "--monuseg-share", "0.75", "--threads", "1", "--out", str(out)]  # fmt: skip
    print("training:", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
    return out


def tile_features(net, fold: Path, tiles: list[str], held, boxes: list[float]):  # -> {box: (n, D) float32}
    """Each held-out cell's tile features as extraction keeps them (``segment/tile_features.py``):
    ``net`` run once on the cell's 256-px tile, its encoder levels 3-5 averaged over a square of
    each side in ``boxes`` (µm) around the centroid."""
    import cv2
    import numpy as np

    from wsicell.segment.hvnet import HVNetModel
    from wsicell.segment.tile_features import pool_levels

    model = HVNetModel.from_net(net)
    out: dict[float, np.ndarray] = {}
    for t, name in enumerate(tiles):
        rows = np.flatnonzero(held.tile == t)
        if len(rows):
            image = cv2.cvtColor(cv2.imread(str(fold / "test" / f"{name}.jpg")), cv2.COLOR_BGR2RGB)
            maps = model.maps_and_features(image, mpp=held.mpp)[1]
            for box in boxes:
                x = out.setdefault(box, np.zeros((len(held.labels), maps.dim), np.float32))
                x[rows] = pool_levels(maps.levels, maps.strides, held.centroid[rows] - 0.5, box_px=box / held.mpp)
    return out


def probe_by_image(x, held, folds: int = 5) -> float:
    """Macro F1 (%) of a linear probe (``wsicell.evaluate.linear``, features standardised on
    the fitting part) in ``folds`` folds split by source image, each held out once; the mean."""
    import numpy as np
    from sklearn.preprocessing import StandardScaler

    from wsicell.evaluate.linear import linear_probe

    images = np.unique(held.source)
    scores = []
    for i in range(folds):
        out = np.isin(held.source, images[i::folds])
        scale = StandardScaler().fit(x[~out])
        scores.append(linear_probe(train_x=scale.transform(x[~out]), train_y=held.labels[~out],
                                   test_x=scale.transform(x[out]), test_y=held.labels[out]).macro_f1)  # fmt: skip
    return 100 * float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "data" / "consep-tiles")
    parser.add_argument("--monuseg", type=Path, default=ROOT.parent / "shared" / "data" / "monuseg-train")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "_work" / "nucleus_folds")
    parser.add_argument("--epochs", type=int, default=80, help="HV-net training epochs [80, as the shipped net's first run]")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="untrained ResNet seeds [0 1 2 3]")
    parser.add_argument("--boxes", type=float, nargs="+", default=[12.0, 16.0, 20.0, 24.0],
                        help="tile-feature box sides, µm, beside the product's 16 [12 16 20 24]")  # fmt: skip
    parser.add_argument("--no-random-tiles", dest="random_tiles", action="store_false",
                        help="skip the random-weight HV-net's tile features (first seed)")  # fmt: skip
    args = parser.parse_args()

    import numpy as np
    import torch

    from wsicell.cluster.cells import cluster_cells
    from wsicell.cluster.config import ClusterConfig
    from wsicell.embed import embed_crops
    from wsicell.evaluate import baselines
    from wsicell.evaluate.dataset import build_split_store, load_split
    from wsicell.evaluate.metrics import score_clusters
    from wsicell.segment.hvnet import build_hvnet, load_hvnet
    from wsicell.segment.tile_features import TILE_BOX_UM
    from wsicell.store import CellStore
    from wsicell.train.backbone import PooledStages
    from wsicell.train.nucleus_backbone import NucleusEncoder

    torch.set_num_threads(1)
    rows = []
    for k, fold in enumerate(fold_datasets(args.dataset, args.out)):
        net = load_hvnet(train_net(fold, consep=args.dataset / "train", monuseg=args.monuseg,
                                   out=args.out / f"hvnet_fold{k}.pt", epochs=args.epochs))  # fmt: skip
        store = build_split_store(dataset=fold, split="test", out=args.out / f"fold{k}-test.zarr", progress=False)
        held = load_split(store)
        names = list(CellStore.open(store).slides()[0].attrs["sources"])  # held.source indexes these
        images = sorted(range(len(names)), key=lambda i: int(names[i].split("_")[-1]))  # by image number
        parts = {"fold": np.ones(len(held.labels), bool)}
        parts.update({f"half {h}": np.isin(held.source, images[h::2]) for h in (0, 1)})
        encoder = NucleusEncoder((3, 4, 5), pretrained=False).eval()  # the fold's net's weights, next line
        encoder.levels.load_state_dict(net.enc.state_dict())
        embeddings = {"nucleus encoder (net without these images)": [embed_crops(encoder, held.crops, crop_size=32, views=4, precision="fp32")]}
        tiles = list(CellStore.open(store).slides()[0].attrs["tiles"])
        boxes = sorted({*args.boxes, TILE_BOX_UM})  # the product's box always, to join with the crops
        by_box = tile_features(net, fold, tiles, held, boxes)  # what wsicell extract keeps, from the net that never saw these images
        for box in boxes:
            embeddings[f"tile features, {box:g} um box (net without these images)"] = [by_box[box]]
        crop_x = embeddings["nucleus encoder (net without these images)"][0]
        embeddings[f"nucleus encoder + tile features, {TILE_BOX_UM:g} um box (chosen: configs/nucleus-tile.yaml)"] = [
            np.concatenate([crop_x, by_box[TILE_BOX_UM]], axis=1)]  # fmt: skip
        for seed in args.seeds[:1] if args.random_tiles else []:
            torch.manual_seed(seed)
            embeddings[f"tile features, {TILE_BOX_UM:g} um box, the HV-net's architecture with random weights"] = [
                tile_features(build_hvnet().eval(), fold, tiles, held, [TILE_BOX_UM])[TILE_BOX_UM]]  # fmt: skip
        embeddings["morphology (30 measurements)"] = [np.nan_to_num(held.features)]
        embeddings["untrained ResNet, stages 3 + 4"] = [
            embed_crops(PooledStages(baselines.random_encoder(stem="imagenet", width=32, seed=s), (3, 4)).eval(), held.crops,
                        crop_size=24, views=8, precision="fp32") for s in args.seeds]  # fmt: skip
        for name, xs in embeddings.items():
            for part, m in parts.items():
                row = {"fold": k, "part": part, "representation": name, "cells": int(m.sum())}
                for radius in (0.0, 20.0):
                    amis = []
                    for seed, x in enumerate(xs):
                        clusters = cluster_cells(embedding=x[m], features=held.features[m], feature_names=list(held.feature_names),
                                                 centroids=held.centroid[m], mpp=held.mpp, groups=held.tile[m],
                                                 config=ClusterConfig(k=4, seed=seed, context_radius_um=radius))  # fmt: skip
                        amis.append(100 * score_clusters(labels=held.labels[m], clusters=clusters).ami)
                    row["ami" if radius == 0 else "ami_context_20um"] = round(float(np.mean(amis)), 1)
                if part == "fold":
                    row["probe_macro_f1"] = round(float(np.mean([probe_by_image(x, held) for x in xs])), 1)
                print(row, flush=True)
                rows.append(row)
    for name in embeddings:
        mine = [r for r in rows if r["representation"] == name]
        for scope in ("fold", "half"):
            picked = [r for r in mine if r["part"].startswith(scope)]
            probe = f", linear probe {np.mean([r['probe_macro_f1'] for r in picked]):.1f}" if scope == "fold" else ""
            print(f"{name}, {scope} means: AMI {np.mean([r['ami'] for r in picked]):.1f}, "
                  f"with context {np.mean([r['ami_context_20um'] for r in picked]):.1f}{probe}")
    save("nucleus_encoder_folds", rows, notes={"epochs": args.epochs, "resnet_seeds": args.seeds},
         title="the nucleus encoder vs the untrained ResNet on held-out train images (AMI %)")


if __name__ == "__main__":
    main()
