"""Settings of `wsicell cluster`, validated once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wsicell.cluster.context import Context
from wsicell.cluster.model import ALGORITHMS
from wsicell.cluster.represent import Blend


@dataclass(frozen=True)
class ClusterConfig:
    """How to cluster a store's cells.

    Each cell is represented by its embedding joined with its morphology measurements
    (represent.py; ``morphology_weight`` 0 = the embedding alone, 1 = the measurements alone,
    the embedding reduced to its first ``embedding_dims`` principal components). ``algorithm``
    "spectral" (the default) partitions the ``graph_neighbours``-NN graph of at most
    ``graph_sample_size`` sampled cells and gives every other cell the majority cluster of its
    nearest sampled cells (spectral.py); "kmeans" is FAISS k-means.

    ``k`` is the number of clusters or ``"auto"`` (elbow of the explained variance over
    ``k_min..k_max`` on ``auto_sample_size`` points; see docs/clustering.md).
    k-means trains on a uniform random sample of ``sample_size`` cells (all of them are
    used: FAISS's default of 256 points per centroid is lifted), then every cell is assigned
    to its nearest centroid in batches of ``batch_size`` rows.
    ``metric`` "cosine" L2-normalises the embeddings (spherical k-means, distance = 1 - cos);
    "l2" clusters them as they are (distance = Euclidean).
    ``context_radius_um`` > 0 clusters context embeddings instead (context.py): each cell's
    unit embedding plus ``context_weight`` x the mean of its neighbours' within that radius.
    """

    k: int | Literal["auto"] = "auto"
    algorithm: Literal["spectral", "kmeans"] = "spectral"
    morphology_weight: float = 0.5
    embedding_dims: int = 32
    graph_sample_size: int = 50_000
    graph_neighbours: int = 15
    k_min: int = 2
    k_max: int = 20
    iterations: int = 25
    restarts: int = 1
    seed: int = 0
    metric: Literal["cosine", "l2"] = "l2"
    sample_size: int = 200_000
    auto_sample_size: int = 20_000
    batch_size: int = 65_536
    context_radius_um: float = 0.0
    context_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.k != "auto" and (isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 2):
            raise ValueError(f"k must be an integer >= 2 or 'auto', got {self.k!r}")
        if not 2 <= self.k_min < self.k_max:
            raise ValueError(f"need 2 <= k_min < k_max, got k_min={self.k_min}, k_max={self.k_max}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        self.blend  # noqa: B018 - raises on bad morphology_weight / embedding_dims
        if self.graph_sample_size < 100:
            raise ValueError(f"graph_sample_size must be >= 100, got {self.graph_sample_size}")
        if self.graph_neighbours < 2:
            raise ValueError(f"graph_neighbours must be >= 2, got {self.graph_neighbours}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if self.restarts < 1:
            raise ValueError(f"restarts must be >= 1, got {self.restarts}")
        if self.metric not in ("cosine", "l2"):
            raise ValueError(f"metric must be 'cosine' or 'l2', got {self.metric!r}")
        if self.sample_size < 2:
            raise ValueError(f"sample_size must be >= 2, got {self.sample_size}")
        if self.auto_sample_size < 2:
            raise ValueError(f"auto_sample_size must be >= 2, got {self.auto_sample_size}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        Context(radius_um=float(self.context_radius_um), weight=float(self.context_weight))  # raises on bad values

    @property
    def context(self) -> Context:
        return Context(radius_um=float(self.context_radius_um), weight=float(self.context_weight))

    @property
    def blend(self) -> Blend:
        return Blend(morphology_weight=float(self.morphology_weight), embedding_dims=int(self.embedding_dims))

    @property
    def spherical(self) -> bool:
        return self.metric == "cosine"
