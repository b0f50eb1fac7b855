"""The CCRL paper's protocol: train without labels on the train split, embed the test split,
k-means with k = number of classes, score against the test labels; mean ± std over seeds.

Everything lands under one output folder, reused when run again (finished training runs are
not repeated; an interrupted one is resumed)::

    OUT/cells/train.zarr, OUT/cells/test.zarr   labelled split stores (dataset.py)
    OUT/cells/train+test.zarr                    the transductive protocol's training store
    OUT/runs/<variant>-seed<s>/                  training runs (wsicell train's run dirs)
    OUT/runs-transductive/<variant>-seed<s>/     the same, trained on train + test images
    OUT/results.json, OUT/results.md             the table (report.py)

Embeddings of the networks (CCRL, its ablations, random and ImageNet encoders) are clustered
with cosine (spherical) k-means, as the contrastive loss compares them by cosine; the
measurement baselines (morphology, manual) are standardised and clustered with Euclidean
k-means. Each is also scored as `wsicell cluster` clusters it (scoring.py).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from wsicell.cluster.context import Context
from wsicell.config import plain
from wsicell.evaluate.metrics import ClusterScores, mean_std
from wsicell.evaluate.nuclei import Nuclei
from wsicell.evaluate.scoring import KMEANS_RESTARTS, Row, Scoring, cluster_and_score
from wsicell.train.methods.registry import method_title
from wsicell.train.run_dir import RunDir
from wsicell.types import PathLikeStr

if TYPE_CHECKING:
    from wsicell.cluster.config import ClusterConfig

__all__ = ["KMEANS_RESTARTS", "Row", "Scoring", "cluster_and_score", "run_protocol"]

ABLATIONS = {
    # name: (TrainConfig changes, encoder used for the embeddings)
    "w/o local-global": ({"local_global": False}, "momentum"),
    "w/o ensembling (query encoder)": ({}, "query"),
    "w/o predictor": ({"predictor": False}, "momentum"),
}
PROTOCOLS = ("inductive", "transductive")
STORE_CROP = 32
"""Crop size of the split stores (extraction's default); models resize to their own crop_size."""

Log = Callable[[str], None]


def ensure_trained(*, store: Path, run: Path, config: Any, progress: bool, log: Log) -> Path:
    """Train ``config`` on ``store`` into ``run`` unless a finished run is already there."""
    from wsicell.train.loop import train

    run_dir = RunDir(run)
    run_dir.check_config_matches(config)  # a run with other settings is not reused
    if run_dir.has_checkpoint() and run_dir.epochs_done() >= config.epochs:
        log(f"reusing finished run {run}")
        return run
    resume = run_dir.has_checkpoint()
    log(f"{'resuming' if resume else 'training'} {run} ({config.epochs} epochs, seed {config.seed})")
    return train(store=store, out=run, config=config, resume=resume, progress=progress)


def embed(run_or_checkpoint: PathLikeStr, cells: Any, *, encoder: str, views: int | None = None) -> np.ndarray:
    """Embeddings (n x D) of a split's ``cells`` with a trained run's ``encoder``, as ``wsicell
    embed`` makes them (the run's ``embed_from``): of their crops (``views`` defaults to the
    run's ``embed_views``), their tile features, or both."""
    from wsicell.embed import embed_cells

    return embed_cells(run_or_checkpoint, crops=cells.crops, tile_features=cells.tile_features, encoder=encoder, views=views)


def ccrl_rows(
    *,
    train_store: Path,
    scoring: Scoring,
    runs: Path,
    config: Any,
    seeds: list[int],
    ablations: bool,
    ablation_seeds: int | None = None,
    progress: bool,
    log: Log,
) -> list[Row]:
    """CCRL (and, if asked, its ablations), one training run per seed and variant.

    Ablations that need their own training run use the first ``ablation_seeds`` seeds
    (default: all); the query-encoder ablation reuses CCRL's runs, so it has every seed.
    """
    n_ablation = len(seeds) if ablation_seeds is None else ablation_seeds
    method = method_title(config.method)
    if config.epochs == 0 and config.backbone == "nucleus":
        method = {"crops": "nucleus segmenter's encoder", "tile": "nucleus segmenter's tile features",
                  "crops+tile": "nucleus segmenter's encoder + tile features"}[config.embed_from]  # epochs 0: its weights as they are
    elif config.epochs == 0:
        method = f"untrained {method} encoder"  # epochs 0: the seeded initial weights
    main = scoring.rows(f"{method} (this config)", "ccrl")
    variants: list[tuple[list[Row], dict, str, bool]] = [(main, {}, "momentum", False)]
    if ablations:
        for name, (changes, encoder) in ABLATIONS.items():
            variants.append((scoring.rows(name, "ablation"), changes, encoder, not changes))
    for i, seed in enumerate(seeds):
        for rows, changes, encoder, shares_run in variants:
            if changes and i >= n_ablation:
                continue
            cfg = dataclasses.replace(config, seed=seed, **changes)
            tag = config.method if not changes else config.method + "-" + "-".join(f"no-{k.replace('_', '-')}" for k in changes)
            run = runs / f"{tag}-seed{seed}"
            if not shares_run:
                ensure_trained(store=train_store, run=run, config=cfg, progress=progress, log=log)
            x = embed(run, scoring.cells, encoder=encoder)
            scoring.add(rows, x, seed=seed, spherical=True)
            for row in rows:
                row.train_seconds.append(RunDir(run).training_seconds())
                row.note = f"{cfg.epochs} epochs; embeddings from the {encoder} encoder, {cfg.embed_views} view(s)"
                log(f"{row.name} seed {seed}: {_fmt(row.scores[-1])}")
    return [row for rows, *_ in variants for row in rows]


def curve(*, run: Path, test_cells: Any, seed: int, log: Log) -> list[dict]:
    """Accuracy versus training time: every saved ``epoch_NNNN.pt`` of one run, scored."""
    points = []
    run_dir = RunDir(run)
    for epoch, ckpt in run_dir.epoch_checkpoints():
        x = embed(ckpt, test_cells, encoder="momentum")
        scores = cluster_and_score(x, test_cells.labels, seed=seed, spherical=True)
        points.append({"epoch": epoch, "train_seconds": run_dir.training_seconds(upto_epoch=epoch), **scores.as_dict()})
        log(f"curve epoch {epoch}: {_fmt(scores)}")
    return points


def baseline_rows(
    *,
    names: list[str],
    train_cells: Any,
    scoring: Scoring,
    seeds: list[int],
    stem: str,
    width: int,
    crop_size: int,
    imagenet_weights: PathLikeStr | None,
    log: Log,
    views: int = 1,
    backbone: str = "resnet18",
    stages: tuple[int, ...] = (3, 4, 5),
) -> tuple[list[Row], list[str]]:
    """The baselines asked for; returns (rows, messages about skipped ones). ``random`` with
    ``backbone`` "nucleus" scores the nucleus encoder's architecture at ``stages`` with random
    weights and the random ResNet beside it."""
    from wsicell.embed import embed_crops
    from wsicell.evaluate import baselines as B

    rows: list[Row] = []
    skipped: list[str] = []
    test_cells = scoring.cells
    for name in names:
        if name == "morphology":
            x = B.morphology_features(test_cells.features)
            these = scoring.rows(f"Morphological ({x.shape[1]}-d, standardised)", "baseline")
            for seed in seeds:
                scoring.add(these, x, seed=seed, spherical=False, embedding=False)
        elif name == "manual":
            these = scoring.rows("Manual features (SIFT BoVW + LBP)", "baseline")
            fit_sift, sift = B.dense_sift(train_cells.crops), B.dense_sift(test_cells.crops)
            lbp = B.lbp_histograms(test_cells.crops)
            for seed in seeds:
                x = B.manual_features(fit_sift=fit_sift, sift=sift, lbp=lbp, seed=seed)
                scoring.add(these, x, seed=seed, spherical=False)
            for row in these:
                row.note = "visual vocabulary (64 words) fitted on the train split"
        elif name == "random":
            encoders = {f"ResNet-18, {stem} stem, width {width}": lambda s: B.random_encoder(stem=stem, width=width, seed=s)}
            if backbone == "nucleus":  # the same network untrained first, then the ResNet
                levels = ", ".join(map(str, stages))
                encoders = {f"the nucleus encoder's architecture, levels {levels}":
                            lambda s: B.random_nucleus_encoder(stages=stages, seed=s), **encoders}  # fmt: skip
            these = []
            for title, make in encoders.items():
                rows_of = scoring.rows(f"Random-init encoder ({title}, {crop_size} px)", "baseline")
                for seed in seeds:
                    x = embed_crops(make(seed), test_cells.crops, crop_size=crop_size, views=views)
                    scoring.add(rows_of, x, seed=seed, spherical=True)
                these += rows_of
        elif name == "imagenet":
            try:
                model = B.imagenet_encoder(imagenet_weights)
            except B.BaselineUnavailable as exc:
                skipped.append(f"ImageNet pre-trained: skipped: {exc}")
                log(skipped[-1])
                continue
            x = embed_crops(model, test_cells.crops, views=views)
            these = scoring.rows("ImageNet pre-trained ResNet-18", "baseline")
            for seed in seeds:
                scoring.add(these, x, seed=seed, spherical=True)
            for row in these:
                row.note = "crops resized to 112 px"
        else:
            raise ValueError(f"unknown baseline {name!r}; known: {', '.join(B.BASELINES)}")
        for row in these:
            log(f"{row.name}: {_fmt_mean(row)}")
        rows += these
    return rows, skipped


def run_protocol(
    *,
    dataset: PathLikeStr,
    out: PathLikeStr,
    config: Any | None,
    seeds: list[int],
    baselines: list[str],
    ablations: bool = False,
    ablation_seeds: int | None = None,
    model: PathLikeStr | None = None,
    with_curve: bool = True,
    imagenet_weights: PathLikeStr | None = None,
    train_split: str = "train",
    test_split: str = "test",
    context: Context | None = None,
    protocol: str = "inductive",
    product: ClusterConfig | None = None,
    nuclei: Nuclei | None = None,
    progress: bool = True,
    log: Log = print,
) -> dict[str, Any]:
    """The whole protocol; writes OUT/results.json and OUT/results.md and returns the results.

    ``config``: the TrainConfig trained once per seed (None with ``model``: evaluate that run
    only, seeds then vary the k-means only). ``context`` adds a "+ context" row for every
    representation, ``product`` (a ClusterConfig) rows of `wsicell cluster` (:class:`Scoring`).
    ``protocol``: "inductive" trains on the train split only (the paper's reading: new images
    at test time); "transductive" trains on the train and test images together, labels
    unused (the product's setting: it trains on the slides it maps).
    ``nuclei`` (nuclei.py): score the labelled instances (default) or a segmenter's nuclei
    matched to them (both splits), optionally on tiles shown at a lower magnification.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    from wsicell.evaluate.dataset import (
        build_split_store,
        build_union_store,
        labelled_nuclei,
        load_split,
    )
    from wsicell.evaluate.report import write_report

    out = Path(out)
    started = time.time()
    stores = {
        split: build_split_store(dataset=dataset, split=split, out=out / "cells" / f"{split}.zarr",
                                 crop_size=STORE_CROP, nuclei=nuclei, progress=progress)
        for split in (train_split, test_split)
    }  # fmt: skip
    train_cells, test_cells = load_split(stores[train_split]), load_split(stores[test_split])
    labelled = {split: labelled_nuclei(stores[split]) for split in (train_split, test_split)}
    log(f"cells: {len(train_cells)} {train_split}, {len(test_cells)} {test_split} "
        f"({(nuclei or Nuclei()).title}; {len(test_cells)} of {labelled[test_split]} labelled {test_split} nuclei)")  # fmt: skip
    scoring = Scoring(test_cells, context, product)
    if protocol == "transductive":
        train_store = build_union_store(stores=[stores[train_split], stores[test_split]],
                                        out=out / "cells" / f"{train_split}+{test_split}.zarr")  # fmt: skip
        runs = out / "runs-transductive"
    else:
        train_store, runs = stores[train_split], out / "runs"

    rows: list[Row] = []
    points: list[dict] = []
    if model is not None:
        from wsicell.embed import load_encoder

        config = load_encoder(model, encoder="momentum", device="cpu")[1]  # the run's architecture, for the baselines too
        these = scoring.rows(f"{method_title(config.method)} ({Path(model).name})", "ccrl")
        x = embed(model, test_cells, encoder="momentum")
        for seed in seeds:
            scoring.add(these, x, seed=seed, spherical=True)
        for row in these:
            row.train_seconds = [RunDir.of(model).training_seconds()]
            log(f"{row.name}: {_fmt_mean(row)}")
        rows += these
    elif config is not None:
        rows += ccrl_rows(
            train_store=train_store, scoring=scoring, runs=runs, config=config, seeds=seeds, ablations=ablations, ablation_seeds=ablation_seeds,
            progress=progress, log=log,
        )  # fmt: skip
        if with_curve:
            points = curve(run=runs / f"{config.method}-seed{seeds[0]}", test_cells=test_cells, seed=seeds[0], log=log)
    if config is None:
        raise ValueError("run_protocol needs a training config or a trained model")
    base_rows, skipped = baseline_rows(
        names=baselines, train_cells=train_cells, scoring=scoring, seeds=seeds, stem=config.stem,
        width=config.width, crop_size=config.crop_size, views=config.embed_views,
        backbone=config.backbone, stages=config.embed_stages, imagenet_weights=imagenet_weights, log=log,
    )  # fmt: skip
    rows += base_rows

    results = {
        "dataset": str(dataset), "train_split": train_split, "test_split": test_split, "protocol": protocol,
        "product": None if product is None else plain(dataclasses.asdict(product)),
        "n_train": len(train_cells), "n_test": len(test_cells), "classes": test_cells.class_names,
        "nuclei": (nuclei or Nuclei()).title, "labelled_test_nuclei": labelled[test_split],
        "k": int(len(np.unique(test_cells.labels))), "seeds": seeds,
        "config": plain(dataclasses.asdict(config)),
        "context": context.as_dict() if context is not None and context.enabled else None,
        "model": None if model is None else str(model),
        "rows": [r.as_dict() for r in rows], "curve": points, "skipped": skipped,
        "seconds": round(time.time() - started, 1), "load": [round(v, 2) for v in os.getloadavg()],
    }  # fmt: skip
    write_report(results, out=out)
    return results


def _fmt(s: ClusterScores) -> str:
    return f"AMI {100 * s.ami:.1f}  ARI {100 * s.ari:.1f}  purity {100 * s.purity:.1f}  acc {100 * s.accuracy:.1f}"


def _fmt_mean(row: Row) -> str:
    m = mean_std(row.scores)
    return "  ".join(f"{k} {100 * m[k][0]:.1f}±{100 * m[k][1]:.1f}" for k in ("ami", "ari", "purity", "accuracy"))
