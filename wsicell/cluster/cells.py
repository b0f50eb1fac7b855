"""`wsicell cluster` for cells held in memory: the same steps as ``cluster_store``.

Used by the evaluation (wsicell.evaluate), so that what is scored on labelled cells is what
the product does on a store: the representation (represent.py) fitted on a sample, the tissue
context (context.py) if asked, the clustering model (model.py) fitted on a sample, then every
cell assigned.
"""

from __future__ import annotations

import numpy as np

from wsicell.cluster.config import ClusterConfig
from wsicell.cluster.context import context_embeddings
from wsicell.cluster.model import fit_model
from wsicell.cluster.represent import fit_representation


def sample_index(total: int, size: int, seed: int) -> np.ndarray:
    """The rows a store sample of ``size`` would take (sample.py's rule), sorted."""
    m = min(size, total)
    return np.sort(np.random.default_rng(seed).choice(total, size=m, replace=False)) if m < total else np.arange(total)


def cluster_cells(
    *,
    embedding: np.ndarray,
    features: np.ndarray,
    feature_names: list[str],
    centroids: np.ndarray,
    mpp: float,
    config: ClusterConfig,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Cluster labels (n,) int32 of n cells of one slide (or one labelled set).

    embedding (n, D), features (n, F) named ``feature_names``, centroids (n, 2) in pixels of
    ``mpp`` µm; cells of different ``groups`` (tiles) are never tissue-context neighbours.
    ``config.k`` must be a number.
    """
    if config.k == "auto":
        raise ValueError("cluster_cells needs a number of clusters, not 'auto'")
    n = len(embedding)
    fit = sample_index(n, min(config.sample_size, 100_000), config.seed)
    rep = fit_representation(embedding[fit], features[fit], feature_names=feature_names, blend=config.blend)
    v = rep.transform(embedding, features)  # n x dim
    if config.context.enabled:
        v = context_embeddings(v, centroids, mpp=mpp, context=config.context, groups=groups)
    sample = v[sample_index(n, config.sample_size, config.seed)]
    model, _ = fit_model(
        sample, k=int(config.k), algorithm=config.algorithm, spherical=config.spherical, seed=config.seed,
        iterations=config.iterations, restarts=config.restarts, neighbours=config.graph_neighbours,
        graph_sample_size=config.graph_sample_size,
    )  # fmt: skip
    labels, _, _ = model.assigner()(v)
    return labels
