"""k-means for evaluation: the product's FAISS k-means (``wsicell.cluster.kmeans``), k-means++
seeding, several restarts, every point used, the restart of lowest objective kept."""

from __future__ import annotations

import numpy as np


def kmeans(
    x: np.ndarray, *, k: int, seed: int = 0, restarts: int = 10, iterations: int = 50, spherical: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(cluster of each row (n,) int32, centroids (k, D) float32) of ``x`` (n x D).

    ``spherical``: rows are L2-normalised and centroids kept on the unit sphere (cosine k-means).
    """
    from wsicell.cluster.kmeans import assign, make_index, prepare, train_kmeans

    data = prepare(x, spherical=spherical)
    result = train_kmeans(data, k=k, iterations=iterations, restarts=restarts, seed=seed, spherical=spherical)
    cluster, _, _ = assign(make_index(result.centroids), data, spherical=spherical)
    return cluster, result.centroids
