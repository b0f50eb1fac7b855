"""`wsicell cluster`: represent, sample, (choose k,) fit the clustering, assign every cell, save."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import zarr

from wsicell.cluster.choose_k import KChoice, choose_k
from wsicell.cluster.config import ClusterConfig
from wsicell.cluster.context import CONTEXT_ARRAY, Context, write_slide_context
from wsicell.cluster.kmeans import prepare
from wsicell.cluster.model import ClusterModel, fit_model
from wsicell.cluster.represent import Representation, fit_representation
from wsicell.cluster.sample import sample_embeddings, sample_rows
from wsicell.cluster.vectors import VECTOR_ARRAY, write_slide_vectors
from wsicell.errors import StoreError
from wsicell.provenance import ClusteringRecord, EmbeddingModel
from wsicell.store import CELL_CHUNK, CellStore, SlideCells, compressor

LABEL_CHUNK = CELL_CHUNK * 16
"""Rows per chunk of the `cluster` and `distance` arrays."""
REPRESENT_SAMPLE = 100_000
"""Cells the representation (PCA, measurement statistics) is fitted on."""

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
    algorithm: str = "kmeans"


def clustered_slides(store: CellStore) -> list[SlideCells]:
    """The store's complete slides, each checked to carry embeddings and measurements."""
    slides = store.slides()
    if not slides:
        raise StoreError(f"{store.path}: no extracted slides; run `wsicell extract SLIDES --store {store.path}` first")
    for s in slides:
        if not s.has("features") or s.array("features").shape[0] != s.n_cells:
            raise StoreError(f"{store.path}: slide {s.id} has no measurements; re-extract it with `wsicell extract`")
        if not s.has("embedding") or s.array("embedding").shape[0] != s.n_cells:
            raise StoreError(
                f"{store.path}: slide {s.id} has no embeddings; run `wsicell embed --store {store.path}` first"
            )
    return slides


def cluster_store(
    store: CellStore, *, config: ClusterConfig, progress: Progress | None = None
) -> ClusterResult:
    """Cluster every cell of ``store`` (opened "r+") and write the results into it.

    Steps: fit the representation (embedding + morphology, represent.py) on a sample and
    write each slide's ``cell_vector``; with a tissue context, its ``context_embedding``;
    fit the clustering model (spectral or k-means, model.py) on a sample of those; assign
    every cell. Writes ``clustering/`` (the model's and the representation's arrays, the
    provenance in attrs), then per slide ``cluster`` (n,) int32 and ``distance`` (n,)
    float32; ``clustering.attrs.complete`` is set last.
    """
    report = progress or (lambda step, advance, total: None)
    slides = clustered_slides(store)
    total = sum(s.n_cells for s in slides)
    if config.k != "auto" and config.k > total:
        raise StoreError(f"{store.path}: k={config.k} is larger than the number of cells ({total})")
    if total < 3:
        raise StoreError(f"{store.path}: only {total} cells; too few to cluster")
    if config.algorithm == "spectral" and total <= config.graph_neighbours + 1:
        raise StoreError(
            f"{store.path}: only {total} cells, too few for a {config.graph_neighbours}-neighbour graph; "
            "use --algorithm kmeans"
        )
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    names = slides[0].feature_names
    for s in slides[1:]:
        if s.feature_names != names:
            raise StoreError(f"{store.path}: slide {s.id} has other measurements than {slides[0].id}; re-extract it")
    report("represent", 0, total)
    fit_rows = sample_rows(slides, size=min(config.sample_size, REPRESENT_SAMPLE), seed=config.seed,
                           arrays=("embedding", "features"))  # fmt: skip
    try:
        rep = fit_representation(fit_rows["embedding"], fit_rows["features"], feature_names=names, blend=config.blend)
    except ValueError as exc:  # e.g. measurements that do not vary
        raise StoreError(f"{store.path}: {exc}") from None
    del fit_rows
    for s in slides:
        if not write_slide_vectors(s, rep, progress=lambda n: report("represent", n, 0)):
            report("represent", s.n_cells, 0)  # already current
    array = VECTOR_ARRAY
    seconds["represent"] = time.perf_counter() - t0
    if config.context.enabled:
        t0 = time.perf_counter()
        report("context", 0, total)
        for s in slides:
            if not write_slide_context(s, config.context, source=VECTOR_ARRAY, progress=lambda n: report("context", n, 0)):
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
    report(config.algorithm, 0, 1)
    model, objective = fit_model(
        sample, k=k, algorithm=config.algorithm, spherical=config.spherical, seed=config.seed,
        iterations=config.iterations, restarts=config.restarts, neighbours=config.graph_neighbours,
        graph_sample_size=config.graph_sample_size,
    )  # fmt: skip
    report(config.algorithm, 1, 0)
    n_train = len(sample) if config.algorithm == "kmeans" else min(len(sample), config.graph_sample_size)
    del sample
    seconds[config.algorithm] = time.perf_counter() - t0

    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    record = ClusteringRecord(
        k=k, algorithm=config.algorithm, seed=config.seed, metric=config.metric,
        iterations=config.iterations, restarts=config.restarts, sample_size=n_train,
        graph_neighbours=config.graph_neighbours, objective=objective,
        objective_definition="sum of squared L2 distances to the assigned cluster's centroid"
        + (" (unit-normalised vectors)" if config.spherical else ""),
        representation=rep.attrs(), model=EmbeddingModel.of_store(store.root.attrs), created=created,
        context=config.context.as_dict() if config.context.enabled else None,
        k_auto=None if choice is None else {
            "rule": "elbow of explained variance (Kneedle, anchored at k = 1)",
            "silhouette_k": choice.silhouette_k,
            "curve": [p.__dict__ for p in choice.curve],
        },
        complete=False,
    )  # fmt: skip
    write_model(store, {**model.arrays(), **{f"representation_{n}": a for n, a in rep.arrays().items()}}, record.to_attrs())

    t0 = time.perf_counter()
    assigner = model.assigner()
    report("assign", 0, total)
    sizes: dict[str, list[int]] = {}
    objective_all = 0.0
    for s in slides:
        counts, sse = assign_slide(
            s, assigner, k=k, batch_size=config.batch_size, created=created, array=array,
            progress=lambda n: report("assign", n, 0),
        )  # fmt: skip
        sizes[s.id] = counts.tolist()
        objective_all += sse
    seconds["assign"] = time.perf_counter() - t0
    done = replace(record, objective_all=objective_all, n_cells=total, sizes=sizes, complete=True)
    store.root["clustering"].attrs.update(done.to_attrs())
    return ClusterResult(
        k=k, metric=config.metric, created=created, n_cells=total, n_train=n_train,
        objective_sample=objective, objective_all=objective_all, sizes=sizes,
        choice=choice, seconds=seconds, gpu=model.gpu, algorithm=config.algorithm,
    )  # fmt: skip


def write_model(store: CellStore, arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
    """Replace the ``clustering`` group by these arrays (``centroids`` (k, D), ...) and attrs."""
    if "clustering" in store.root.group_keys():
        del store.root["clustering"]
    group = store.root.create_group("clustering")
    group.attrs.update(attrs)
    for name, value in arrays.items():
        value = np.ascontiguousarray(value)
        arr = zarr.create_array(
            store.root.store, name=f"clustering/{name}", shape=value.shape, dtype=value.dtype,
            chunks=value.shape if value.ndim else None, compressors=compressor(), overwrite=True,
        )  # fmt: skip
        arr[...] = value


def assign_slide(
    slide: SlideCells, assigner, *, k: int, batch_size: int, created: str,
    array: str = VECTOR_ARRAY, progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, float]:  # fmt: skip
    """Write ``cluster`` and ``distance`` for every cell of ``slide``, a batch at a time, from
    its ``array`` (``cell_vector``, or ``context_embedding`` when clustering with context);
    ``assigner`` is a :meth:`ClusterModel.assigner`.

    Returns the cells per cluster (k,) and the slide's sum of squared distances.
    """
    n = slide.n_cells
    tag = {"clustering": created}
    labels = slide.create_array("cluster", shape=(n,), dtype="int32", chunks=(LABEL_CHUNK,), attrs=tag)
    dists = slide.create_array("distance", shape=(n,), dtype="float32", chunks=(LABEL_CHUNK,), attrs=tag)
    counts = np.zeros(k, np.int64)
    sse = 0.0
    for start, cluster, distance, part in iter_assign(slide, assigner, batch_size=batch_size, array=array):
        labels[start : start + len(cluster)] = cluster
        dists[start : start + len(cluster)] = distance
        counts += np.bincount(cluster, minlength=k)
        sse += part
        if progress is not None:
            progress(len(cluster))
    return counts, sse


def iter_assign(slide: SlideCells, assigner, *, batch_size: int, array: str = VECTOR_ARRAY):
    """Yield (start, cluster, distance, sse) over the slide's ``array`` rows in batches.

    A batch is a whole number of label chunks (at least one), so writes never share a chunk.
    """
    emb = slide.array(array)
    n = emb.shape[0]
    step = max(LABEL_CHUNK, (batch_size // LABEL_CHUNK) * LABEL_CHUNK)
    for start in range(0, n, step):
        cluster, distance, sse = assigner(np.asarray(emb[start : min(start + step, n)], np.float32))
        yield start, cluster, distance, sse


@dataclass(frozen=True)
class Clustering:
    """A store's saved clustering, checked complete: its model, representation and record."""

    model: ClusterModel
    representation: Representation
    record: ClusteringRecord

    @property
    def attrs(self) -> dict[str, Any]:
        """The record as the store holds it (plain data, for JSON)."""
        return self.record.to_attrs()

    @property
    def centroids(self) -> np.ndarray:
        return self.model.centroids  # (k, D) float32

    @property
    def k(self) -> int:
        return self.record.k

    @property
    def algorithm(self) -> str:
        return self.model.algorithm

    @property
    def spherical(self) -> bool:
        return self.record.metric == "cosine"

    @property
    def created(self) -> str:
        return self.record.created

    @property
    def context(self) -> Context:
        """The tissue context the clustering was fitted with (radius 0 = none)."""
        return Context(**(self.record.context or {}))


def load_clustering(store: CellStore) -> Clustering:
    """The clustering written by `wsicell cluster`, or a StoreError saying to run it."""
    group = store.clustering
    attrs = dict(group.attrs) if group is not None else {}
    if group is None or "centroids" not in group.array_keys():
        raise StoreError(f"{store.path}: no clustering; run `wsicell cluster --store {store.path}` first")
    if not attrs.get("complete"):
        raise StoreError(
            f"{store.path}: the last clustering did not finish; run `wsicell cluster --store {store.path}` again"
        )
    record = ClusteringRecord.from_attrs(attrs, where=str(store.path))
    if record.representation is None:
        raise StoreError(
            f"{store.path}: the clustering was made by an older wsicell; run `wsicell cluster --store {store.path}` again"
        )
    arrays = {name: np.asarray(group[name][...]) for name in group.array_keys()}
    rep = Representation.from_saved(
        dict(record.representation), {n[len("representation_"):]: a for n, a in arrays.items() if n.startswith("representation_")}
    )  # fmt: skip
    model = ClusterModel(
        algorithm=record.algorithm, centroids=arrays["centroids"].astype(np.float32),
        spherical=record.metric == "cosine", sample=arrays.get("sample"), sample_labels=arrays.get("sample_labels"),
        neighbours=int(record.graph_neighbours),
    )  # fmt: skip
    return Clustering(model, rep, record)


def slide_labels_current(slide: SlideCells, clustering: Clustering) -> bool:
    """Whether the slide's `cluster` array was written by this clustering."""
    return (
        slide.has("cluster")
        and slide.has("distance")
        and slide.array("cluster").attrs.get("clustering") == clustering.created
        and slide.array("cluster").shape[0] == slide.n_cells
    )
