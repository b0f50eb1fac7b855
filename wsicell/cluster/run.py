"""`wsicell cluster`: sample, (choose k,) train FAISS k-means, assign every cell, save."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import zarr

from wsicell.cluster.choose_k import KChoice, choose_k
from wsicell.cluster.config import ClusterConfig
from wsicell.cluster.context import CONTEXT_ARRAY, Context, write_slide_context
from wsicell.cluster.kmeans import assign, make_index, prepare, train_kmeans
from wsicell.cluster.sample import sample_embeddings
from wsicell.errors import StoreError
from wsicell.store import CELL_CHUNK, CellStore, SlideCells, compressor

LABEL_CHUNK = CELL_CHUNK * 16
"""Rows per chunk of the `cluster` and `distance` arrays."""

Progress = Callable[[str, int, int], None]
"""progress(step, advance, total): ``total`` > 0 starts a step, then advances."""


@dataclass(frozen=True)
class ClusterResult:
    k: int
    metric: str
    created: str
    n_cells: int
    n_train: int
    objective_sample: float  # SSE over the training sample
    objective_all: float  # SSE over every cell
    sizes: dict[str, list[int]]  # slide id -> cells per cluster
    choice: KChoice | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    gpu: bool = False


def clustered_slides(store: CellStore) -> list[SlideCells]:
    """The store's complete slides, each checked to carry embeddings."""
    slides = store.slides()
    if not slides:
        raise StoreError(f"{store.path}: no extracted slides; run `wsicell extract SLIDES --out {store.path}` first")
    for s in slides:
        if not s.has("embedding") or s.array("embedding").shape[0] != s.n_cells:
            raise StoreError(
                f"{store.path}: slide {s.id} has no embeddings; run `wsicell embed --store {store.path}` first"
            )
    return slides


def cluster_store(
    store: CellStore, *, config: ClusterConfig, progress: Progress | None = None
) -> ClusterResult:
    """Cluster every embedding of ``store`` (opened "r+") and write the results into it.

    Writes ``clustering/centroids`` (k, D) float32 with its provenance in attrs, then per
    slide ``cluster`` (n,) int32 and ``distance`` (n,) float32; ``clustering.attrs.complete``
    is set last.
    """
    report = progress or (lambda step, advance, total: None)
    slides = clustered_slides(store)
    total = sum(s.n_cells for s in slides)
    if config.k != "auto" and config.k > total:
        raise StoreError(f"{store.path}: k={config.k} is larger than the number of cells ({total})")
    if total < 3:
        raise StoreError(f"{store.path}: only {total} cells; too few to cluster")
    seconds: dict[str, float] = {}
    array = "embedding"
    if config.context.enabled:
        t0 = time.perf_counter()
        report("context", 0, total)
        for s in slides:
            if not write_slide_context(s, config.context, progress=lambda n: report("context", n, 0)):
                report("context", s.n_cells, 0)  # already current
        array = CONTEXT_ARRAY
        seconds["context"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    size = max(config.sample_size, config.auto_sample_size if config.k == "auto" else 0)
    size = max(size, config.k if config.k != "auto" else config.k_max + 1)
    report("sample", 0, min(size, total))
    sample = prepare(
        sample_embeddings(slides, size=size, seed=config.seed, array=array, progress=lambda n: report("sample", n, 0)),
        spherical=config.spherical, inplace=True,
    )  # (m, D)
    seconds["sample"] = time.perf_counter() - t0

    choice = None
    if config.k == "auto":
        t0 = time.perf_counter()
        rng = np.random.default_rng(config.seed)
        pick = rng.choice(len(sample), size=min(config.auto_sample_size, len(sample)), replace=False)
        report("choose k", 0, config.k_max - config.k_min + 1)
        choice = choose_k(
            np.ascontiguousarray(sample[np.sort(pick)]), k_min=config.k_min, k_max=config.k_max,
            iterations=config.iterations, restarts=max(config.restarts, 2), seed=config.seed,
            spherical=config.spherical, progress=lambda n: report("choose k", n, 0),
        )  # fmt: skip
        k = choice.k
        seconds["choose_k"] = time.perf_counter() - t0
    else:
        k = config.k

    t0 = time.perf_counter()
    report("k-means", 0, 1)
    result = train_kmeans(
        sample, k=k, iterations=config.iterations, restarts=config.restarts, seed=config.seed,
        spherical=config.spherical,
    )  # fmt: skip
    report("k-means", 1, 0)
    n_train = len(sample)
    del sample
    seconds["kmeans"] = time.perf_counter() - t0

    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    attrs: dict[str, Any] = {
        "k": k, "seed": config.seed, "metric": config.metric, "iterations": config.iterations,
        "restarts": config.restarts, "sample_size": n_train, "objective": result.objective,
        "objective_definition": "sum of squared L2 distances to the nearest centroid"
        + (" (unit-normalised embeddings)" if config.spherical else ""),
        "model": store.root.attrs.get("embedding_model"), "created": created,
        "context": config.context.as_dict() if config.context.enabled else None,
        "k_auto": None if choice is None else {
            "rule": "elbow of explained variance (Kneedle, anchored at k = 1)",
            "silhouette_k": choice.silhouette_k,
            "curve": [p.__dict__ for p in choice.curve],
        },
        "complete": False,
    }  # fmt: skip
    write_centroids(store, result.centroids, attrs)

    t0 = time.perf_counter()
    index = make_index(result.centroids)
    report("assign", 0, total)
    sizes: dict[str, list[int]] = {}
    objective_all = 0.0
    for s in slides:
        counts, sse = assign_slide(
            s, index, k=k, spherical=config.spherical, batch_size=config.batch_size, created=created, array=array,
            progress=lambda n: report("assign", n, 0),
        )  # fmt: skip
        sizes[s.id] = counts.tolist()
        objective_all += sse
    seconds["assign"] = time.perf_counter() - t0
    store.root["clustering"].attrs.update(
        {"objective_all": objective_all, "n_cells": total, "sizes": sizes, "complete": True}
    )
    return ClusterResult(
        k=k, metric=config.metric, created=created, n_cells=total, n_train=n_train,
        objective_sample=result.objective, objective_all=objective_all, sizes=sizes,
        choice=choice, seconds=seconds, gpu=result.gpu,
    )  # fmt: skip


def write_centroids(store: CellStore, centroids: np.ndarray, attrs: dict[str, Any]) -> None:
    """Replace the ``clustering`` group by these centroids (k, D) and attrs."""
    if "clustering" in store.root.group_keys():
        del store.root["clustering"]
    group = store.root.create_group("clustering")
    group.attrs.update(attrs)
    arr = zarr.create_array(
        store.root.store, name="clustering/centroids", shape=centroids.shape, dtype="float32",
        chunks=centroids.shape, compressors=compressor(), overwrite=True,
    )  # fmt: skip
    arr[:] = centroids.astype(np.float32)


def assign_slide(
    slide: SlideCells, index, *, k: int, spherical: bool, batch_size: int, created: str,
    array: str = "embedding", progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, float]:  # fmt: skip
    """Write ``cluster`` and ``distance`` for every cell of ``slide``, a batch at a time
    (from its ``array``: ``embedding``, or ``context_embedding`` when clustering with context).

    Returns the cells per cluster (k,) and the slide's sum of squared distances.
    """
    n = slide.n_cells
    tag = {"clustering": created}
    labels = slide.create_array("cluster", shape=(n,), dtype="int32", chunks=(LABEL_CHUNK,), attrs=tag)
    dists = slide.create_array("distance", shape=(n,), dtype="float32", chunks=(LABEL_CHUNK,), attrs=tag)
    counts = np.zeros(k, np.int64)
    sse = 0.0
    for start, cluster, distance, part in iter_assign(
        slide, index, spherical=spherical, batch_size=batch_size, array=array
    ):
        labels[start : start + len(cluster)] = cluster
        dists[start : start + len(cluster)] = distance
        counts += np.bincount(cluster, minlength=k)
        sse += part
        if progress is not None:
            progress(len(cluster))
    return counts, sse


def iter_assign(slide: SlideCells, index, *, spherical: bool, batch_size: int, array: str = "embedding"):
    """Yield (start, cluster, distance, sse) over the slide's ``array`` rows in batches.

    A batch is a whole number of label chunks (at least one), so writes never share a chunk.
    """
    emb = slide.array(array)
    n = emb.shape[0]
    step = max(LABEL_CHUNK, (batch_size // LABEL_CHUNK) * LABEL_CHUNK)
    for start in range(0, n, step):
        x = prepare(emb[start : min(start + step, n)], spherical=spherical, inplace=True)  # (b, D)
        cluster, distance, sse = assign(index, x, spherical=spherical)
        yield start, cluster, distance, sse


@dataclass(frozen=True)
class Clustering:
    """A store's saved clustering, checked complete."""

    centroids: np.ndarray  # (k, D) float32
    attrs: dict[str, Any]

    @property
    def k(self) -> int:
        return int(self.attrs["k"])

    @property
    def spherical(self) -> bool:
        return self.attrs["metric"] == "cosine"

    @property
    def created(self) -> str:
        return str(self.attrs["created"])

    @property
    def context(self) -> Context:
        """The tissue context the centroids were trained with (radius 0 = none)."""
        return Context(**(self.attrs.get("context") or {}))


def load_clustering(store: CellStore) -> Clustering:
    """The centroids and attrs written by `wsicell cluster`, or a StoreError saying to run it."""
    group = store.clustering
    if group is None or "centroids" not in group.array_keys():
        raise StoreError(f"{store.path}: no clustering; run `wsicell cluster --store {store.path}` first")
    attrs = dict(group.attrs)
    if not attrs.get("complete"):
        raise StoreError(
            f"{store.path}: the last clustering did not finish; run `wsicell cluster --store {store.path}` again"
        )
    return Clustering(np.asarray(group["centroids"][:], np.float32), attrs)


def slide_labels_current(slide: SlideCells, clustering: Clustering) -> bool:
    """Whether the slide's `cluster` array was written by this clustering."""
    return (
        slide.has("cluster")
        and slide.has("distance")
        and slide.array("cluster").attrs.get("clustering") == clustering.created
        and slide.array("cluster").shape[0] == slide.n_cells
    )
