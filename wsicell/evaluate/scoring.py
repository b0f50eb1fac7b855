"""How a representation of labelled test cells is scored: a table row over seeds, k-means of
the representation (the paper's protocol), its tissue-context twin, and what `wsicell cluster`
does with it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from wsicell.cluster.context import Context, context_embeddings
from wsicell.evaluate.metrics import ClusterScores, mean_std, score_clusters

if TYPE_CHECKING:
    from wsicell.cluster.config import ClusterConfig

KMEANS_RESTARTS = 10


@dataclass
class Row:
    """One line of the table: a representation scored over seeds."""

    name: str
    kind: str  # "ccrl" | "ablation" | "baseline"
    scores: list[ClusterScores] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)  # per seed; empty = no training
    note: str = ""
    knn: list[float] = field(default_factory=list)  # per seed: label agreement of the 10 nearest cells

    def as_dict(self) -> dict[str, Any]:
        summary = mean_std(self.scores) if self.scores else {}
        return {
            "name": self.name, "kind": self.kind, "seeds": self.seeds, "note": self.note,
            "scores": [s.as_dict() for s in self.scores],
            "mean": {k: v[0] for k, v in summary.items()}, "std": {k: v[1] for k, v in summary.items()},
            "train_seconds": self.train_seconds,
            "knn_agreement": float(np.mean(self.knn)) if self.knn else None,
        }  # fmt: skip


def cluster_and_score(
    x: np.ndarray, labels: np.ndarray, *, seed: int, spherical: bool, restarts: int = KMEANS_RESTARTS
) -> ClusterScores:
    """k-means (k = number of distinct labels) of ``x`` (n x D), scored against ``labels``."""
    from wsicell.evaluate.kmeans import kmeans

    k = len(np.unique(labels))
    clusters, _ = kmeans(x, k=k, seed=seed, restarts=restarts, spherical=spherical)
    return score_clusters(labels=labels, clusters=clusters)


@dataclass(frozen=True)
class Scoring:
    """How representations of the test cells are scored against their labels.

    - the paper's protocol: k-means of the representation as it is; with a tissue
      ``context`` (cluster/context.py), k-means of the context embeddings too, as a twin row
      "... + context (R µm)";
    - with ``product`` (a ``ClusterConfig``): what `wsicell cluster` does with it, rows
      "... → wsicell cluster" (and "+ context"): the representation joined with the cells'
      morphology, then the configured algorithm (wsicell.cluster.cells).

    Neighbours never cross a tile of the dataset. k is always the number of classes."""

    cells: Any  # LabelledCells of the test split
    context: Context | None = None
    product: ClusterConfig | None = None

    @property
    def with_context(self) -> bool:
        return self.context is not None and self.context.enabled

    def rows(self, name: str, kind: str) -> list[Row]:
        ctx = f" + context ({self.context.radius_um:g} µm)" if self.with_context else ""
        rows = [Row(name=name, kind=kind)]
        if ctx:
            rows.append(Row(name=f"{name}{ctx}", kind=kind))
        if self.product is not None:
            rows.append(Row(name=f"{name} → wsicell cluster", kind=kind))
            if ctx:
                rows.append(Row(name=f"{name} → wsicell cluster{ctx}", kind=kind))
        return rows

    def add(self, rows: list[Row], x: np.ndarray, *, seed: int, spherical: bool, embedding: bool = True) -> None:
        """Score ``x`` (n x D, one row per test cell) into ``rows`` (from :meth:`rows`).

        ``embedding`` False: ``x`` is not a network embedding (the morphology baseline); the
        product rows then cluster the cells' measurements alone (morphology weight 1)."""
        from wsicell.evaluate.metrics import knn_label_agreement

        labels = self.cells.labels
        rows[0].knn.append(knn_label_agreement(x, labels, cosine=spherical))
        scores = [cluster_and_score(x, labels, seed=seed, spherical=spherical)]
        if self.with_context:
            xc = context_embeddings(
                x, self.cells.centroid, mpp=self.cells.mpp, context=self.context, groups=self.cells.tile
            )  # unit rows: cosine k-means
            scores.append(cluster_and_score(xc, labels, seed=seed, spherical=True))
        if self.product is not None:
            emb = x if embedding else np.ones((len(x), 1), np.float32)
            base = dataclasses.replace(self.product, k=int(len(np.unique(labels))), seed=seed,
                                       context_radius_um=0.0, **({} if embedding else {"morphology_weight": 1.0}))  # fmt: skip
            configs = [base]
            if self.with_context:
                configs.append(dataclasses.replace(base, context_radius_um=self.context.radius_um,
                                                   context_weight=self.context.weight))  # fmt: skip
            for config in configs:
                scores.append(product_score(emb, self.cells, config))
        for row, score in zip(rows, scores, strict=True):
            row.scores.append(score)
            row.seeds.append(seed)


def product_score(embedding: np.ndarray, cells: Any, config: ClusterConfig) -> ClusterScores:
    """`wsicell cluster` with ``config`` on labelled cells, scored against their labels."""
    from wsicell.cluster.cells import cluster_cells

    clusters = cluster_cells(
        embedding=embedding, features=cells.features, feature_names=list(cells.feature_names),
        centroids=cells.centroid, mpp=cells.mpp, config=config, groups=cells.tile,
    )  # fmt: skip
    return score_clusters(labels=cells.labels, clusters=clusters)
