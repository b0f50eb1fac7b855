"""Neighbourhood enrichment: the vectorised statistic against a naive permutation loop."""

from __future__ import annotations

import numpy as np
import pytest

from wsicell.study.enrichment import nhood_enrichment, slide_enrichment


def layout(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """~300 cells in 3 clusters: 0 and 1 in two separate clumps, 2 scattered everywhere."""
    rng = np.random.default_rng(seed)
    a = rng.normal((100, 100), 15, (100, 2))
    b = rng.normal((300, 300), 15, (100, 2))
    c = rng.uniform(0, 400, (100, 2))
    return np.concatenate([a, b, c]), np.repeat([0, 1, 2], 100)


def naive(labels: np.ndarray, xy: np.ndarray, *, radius: float, k: int, n_perms: int, seed: int) -> np.ndarray:
    """The textbook definition: for every cell, count its neighbours' clusters; shuffle; repeat."""
    n = len(labels)
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1))
    adjacency = [[j for j in range(n) if j != i and d[i, j] <= radius] for i in range(n)]

    def counts(lab: np.ndarray) -> np.ndarray:
        c = np.zeros((k, k))
        for i in range(n):
            for j in adjacency[i]:
                c[lab[i], lab[j]] += 1
        return c

    rng = np.random.default_rng(seed)
    perms = np.stack([counts(rng.permutation(labels)) for _ in range(n_perms)])
    return (counts(labels) - perms.mean(0)) / perms.std(0)


def test_matches_a_naive_permutation_loop() -> None:
    xy, labels = layout()
    got = slide_enrichment(labels, xy, mpp=0.5, radius_um=10.0, k=3, n_perms=30, seed=7)  # 10 µm = 20 px
    want = naive(labels, xy, radius=20.0, k=3, n_perms=30, seed=7)
    np.testing.assert_allclose(got.zscore, want, rtol=1e-9)
    assert got.n_perms == 30 and got.observed.sum() == 2 * got.n_pairs
    np.testing.assert_array_equal(got.observed, got.observed.T)


def test_signs_follow_the_layout() -> None:
    xy, labels = layout(1)
    z = slide_enrichment(labels, xy, mpp=1.0, radius_um=20.0, k=3, n_perms=200, seed=0).zscore
    assert z[0, 0] > 5 and z[1, 1] > 5  # clumps: with themselves
    assert z[0, 1] < -3  # the two clumps never touch
    again = slide_enrichment(labels, xy, mpp=1.0, radius_um=20.0, k=3, n_perms=200, seed=0).zscore
    np.testing.assert_array_equal(z, again)  # seeded


def test_absent_cluster_is_nan_and_bad_input() -> None:
    xy, labels = layout()
    z = slide_enrichment(labels, xy, mpp=1.0, radius_um=20.0, k=4, n_perms=10).zscore
    assert np.isnan(z[3]).all() and np.isnan(z[:, 3]).all() and np.isfinite(z[:3, :3]).all()
    with pytest.raises(ValueError):
        nhood_enrichment(labels, np.zeros((0, 2), int), k=2, n_perms=10)  # label 2 >= k
    with pytest.raises(ValueError):
        nhood_enrichment(labels, np.zeros((0, 2), int), k=3, n_perms=1)


def test_exact_moments_are_the_limit_of_many_shuffles() -> None:
    rng = np.random.default_rng(5)
    xy = np.concatenate([rng.normal((80, 80), 20, (150, 2)), rng.uniform(0, 300, (80, 2)), rng.normal((220, 200), 10, (40, 2))])
    labels = np.repeat([0, 1, 2], [150, 80, 40])  # unequal sizes: every term of the variance matters
    exact = slide_enrichment(labels, xy, mpp=1.0, radius_um=15.0, k=4, n_perms=0)
    shuffled = slide_enrichment(labels, xy, mpp=1.0, radius_um=15.0, k=4, n_perms=8000, seed=2)
    np.testing.assert_allclose(exact.perm_mean[:3, :3], shuffled.perm_mean[:3, :3], rtol=0.01)
    np.testing.assert_allclose(exact.perm_std[:3, :3], shuffled.perm_std[:3, :3], rtol=0.04)
    np.testing.assert_allclose(exact.zscore[:3, :3], shuffled.zscore[:3, :3], rtol=0.05, atol=0.05)
    assert exact.n_perms == 0 and np.isnan(exact.zscore[3]).all()  # the absent cluster
    np.testing.assert_array_equal(exact.observed, shuffled.observed)
