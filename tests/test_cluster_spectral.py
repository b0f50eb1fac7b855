"""Spectral clustering of a k-NN graph, and assignment by neighbour vote."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import SpectralClustering
from sklearn.metrics import adjusted_rand_score

from wsicell.cluster.kmeans import train_kmeans
from wsicell.cluster.model import fit_model
from wsicell.cluster.spectral import (
    cluster_means,
    knn_graph,
    knn_index,
    relabel_by_size,
    spectral_clusters,
    vote,
)


def rings(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two concentric rings: one cluster inside the other, which k-means cannot separate."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    angle = rng.uniform(0, 2 * np.pi, n)
    radius = np.where(truth == 0, 1.0, 3.0) + rng.normal(0, 0.1, n)
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle)]).astype(np.float32), truth


def test_spectral_separates_rings_where_kmeans_cannot() -> None:
    x, truth = rings()
    labels = spectral_clusters(x, k=2, neighbours=10, seed=0)
    assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)
    km = train_kmeans(x, k=2, iterations=25, restarts=3, seed=0, spherical=False)
    nearest = ((x[:, None] - km.centroids[None]) ** 2).sum(-1).argmin(1)
    assert adjusted_rand_score(truth, nearest) < 0.2


def test_agrees_with_scikit_learn_on_the_same_graph() -> None:
    rng = np.random.default_rng(1)
    centres = rng.normal(0, 4, (3, 5))
    truth = rng.integers(0, 3, 1200)
    x = (centres[truth] + rng.normal(0, 1.2, (1200, 5))).astype(np.float32)  # overlapping blobs
    ours = spectral_clusters(x, k=3, neighbours=15, seed=0)
    reference = SpectralClustering(3, affinity="precomputed", random_state=0).fit_predict(knn_graph(x, neighbours=15))
    assert adjusted_rand_score(reference, ours) > 0.95


def test_disconnected_parts_are_resolved() -> None:
    """A graph of k separate parts has eigenvalue 1 k times (the block solver finds them all)."""
    rng = np.random.default_rng(2)
    truth = np.repeat(np.arange(4), 300)
    x = (np.eye(4)[truth] * 10 + rng.normal(0, 0.1, (1200, 4))).astype(np.float32)
    assert adjusted_rand_score(truth, spectral_clusters(x, k=4, neighbours=10)) == pytest.approx(1.0)


def test_graph_is_symmetric_without_self_loops() -> None:
    x, _ = rings(300)
    g = knn_graph(x, neighbours=5)
    assert (g != g.T).nnz == 0 and g.diagonal().sum() == 0
    assert (np.asarray(g.sum(1)).ravel() >= 5).all()


def test_vote_against_a_naive_loop() -> None:
    rng = np.random.default_rng(3)
    sample = rng.normal(size=(400, 3)).astype(np.float32)
    labels = rng.integers(0, 4, 400).astype(np.int32)
    queries = rng.normal(size=(200, 3)).astype(np.float32)
    got = vote(knn_index(sample), labels, queries, k=4, neighbours=7)
    for q, g in zip(queries, got, strict=True):
        order = np.argsort(((sample - q) ** 2).sum(1), kind="stable")[:7]
        counts = np.bincount(labels[order], minlength=4)
        tied = np.flatnonzero(counts == counts.max())
        want = next(int(lab) for lab in labels[order] if lab in tied)  # ties: the nearest such cell
        assert g == want


def test_relabel_and_means() -> None:
    labels = np.array([2, 2, 2, 0, 1, 1], np.int32)
    assert relabel_by_size(labels, 3).tolist() == [0, 0, 0, 2, 1, 1]
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    np.testing.assert_allclose(cluster_means(x, labels, 4)[2], x[:3].mean(0))
    assert (cluster_means(x, labels, 4)[3] == 0).all()


def test_spectral_model_assigns_unseen_cells_by_their_neighbours() -> None:
    x, truth = rings(3000, seed=4)
    model, objective = fit_model(
        x[:2000], k=2, algorithm="spectral", spherical=False, seed=0, iterations=25, restarts=1,
        neighbours=10, graph_sample_size=1500,
    )  # fmt: skip
    assert model.sample.shape == (1500, 2) and objective > 0
    cluster, distance, _ = model.assigner()(x[2000:])
    assert adjusted_rand_score(truth[2000:], cluster) == pytest.approx(1.0)
    np.testing.assert_allclose(distance, np.linalg.norm(x[2000:] - model.centroids[cluster], axis=1), rtol=1e-5)


def test_large_samples_vote_through_an_inverted_file_index_with_the_same_answers() -> None:
    from wsicell.cluster.spectral import EXACT_VOTE_CELLS, vote_index

    rng = np.random.default_rng(5)
    centres = rng.normal(0, 3, (6, 8))
    labels = rng.integers(0, 6, EXACT_VOTE_CELLS + 5000).astype(np.int32)
    sample = (centres[labels] + rng.normal(0, 1, (len(labels), 8))).astype(np.float32)
    queries = (centres[rng.integers(0, 6, 3000)] + rng.normal(0, 1, (3000, 8))).astype(np.float32)
    approximate = vote_index(sample)
    assert approximate.nprobe == 32 and approximate.ntotal == len(sample)  # an IVF index, not a flat one
    fast = vote(approximate, labels, queries, k=6, neighbours=15)
    exact = vote(knn_index(sample), labels, queries, k=6, neighbours=15)
    assert (fast == exact).mean() > 0.98
