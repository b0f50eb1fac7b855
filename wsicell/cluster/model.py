"""A fitted clustering: how cells get a cluster and a distance, whatever the algorithm.

- ``kmeans``: FAISS k-means centroids; a cell takes its nearest centroid.
- ``spectral``: spectral clustering of a sample's k-NN graph (spectral.py); a cell takes the
  majority cluster of its nearest sampled cells, and ``centroids`` are each cluster's mean.

Either way the distance of a cell is to its cluster's centroid (Euclidean, or 1 - cos for
the cosine metric), and the model is saved as plain arrays in the store's ``clustering``
group so that `wsicell map` assigns a new slide exactly as the store's cells were.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wsicell.cluster.kmeans import assign, make_index, prepare, train_kmeans
from wsicell.cluster.spectral import cluster_means, spectral_clusters, vote, vote_index

ALGORITHMS = ("spectral", "kmeans")


@dataclass(frozen=True)
class ClusterModel:
    algorithm: str
    centroids: np.ndarray  # (k, D) float32
    spherical: bool
    sample: np.ndarray | None = None  # (m, D) float32: spectral's sampled cells
    sample_labels: np.ndarray | None = None  # (m,) int32: their clusters
    neighbours: int = 15  # spectral: votes per assigned cell
    gpu: bool = False

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    def assigner(self):  # -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, float]]
        """A function of a batch x (n, D) -> cluster (n,) int32, distance (n,) float32, sum of
        squared L2 distances to the assigned centroids. Builds the FAISS indexes once."""
        centroid_index = make_index(self.centroids)
        if self.algorithm == "kmeans":
            return lambda x: assign(centroid_index, prepare(x, spherical=self.spherical), spherical=self.spherical)
        sample_index = vote_index(self.sample)
        labels = np.asarray(self.sample_labels, np.int32)

        def by_vote(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
            x = prepare(x, spherical=self.spherical)
            cluster = vote(sample_index, labels, x, k=self.k, neighbours=self.neighbours)
            diff = x - self.centroids[cluster]
            sq = np.einsum("ij,ij->i", diff, diff)
            distance = sq / 2.0 if self.spherical else np.sqrt(sq)
            return cluster, distance.astype(np.float32), float(sq.astype(np.float64).sum())

        return by_vote

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"centroids": self.centroids}
        if self.sample is not None:
            out.update(sample=self.sample, sample_labels=np.asarray(self.sample_labels, np.int32))
        return out


def fit_model(
    x: np.ndarray, *, k: int, algorithm: str, spherical: bool, seed: int, iterations: int, restarts: int,
    neighbours: int, graph_sample_size: int,
) -> tuple[ClusterModel, float]:  # fmt: skip
    """Fit on the sample ``x`` (n, D float32); returns the model and its objective on ``x``
    (sum of squared L2 distances to the assigned centroids)."""
    x = prepare(x, spherical=spherical)
    if algorithm == "kmeans":
        result = train_kmeans(x, k=k, iterations=iterations, restarts=restarts, seed=seed, spherical=spherical)
        return ClusterModel("kmeans", result.centroids, spherical, gpu=result.gpu), result.objective
    if algorithm != "spectral":
        raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
    if len(x) > graph_sample_size:  # the graph is built on a uniform subsample
        pick = np.sort(np.random.default_rng([seed, 1]).choice(len(x), size=graph_sample_size, replace=False))
        x = np.ascontiguousarray(x[pick])
    labels = spectral_clusters(x, k=k, neighbours=neighbours, seed=seed, restarts=max(restarts, 10), iterations=iterations)
    centroids = cluster_means(x, labels, k)
    if spherical:
        centroids = prepare(centroids, spherical=True)
    model = ClusterModel("spectral", centroids, spherical, sample=x, sample_labels=labels, neighbours=neighbours)
    _, _, objective = model.assigner()(x)
    return model, objective
