"""Neighbourhood enrichment between clusters: squidpy's ``nhood_enrichment`` statistic.

For the cells of one slide and the pairs of cells closer than R µm (the project's neighbour
code, :func:`wsicell.neighbours.neighbour_pairs`), the observed count ``C[i, j]`` is the number
of (cell of cluster i, neighbour of cluster j) pairs, each close pair counted from both
ends, as squidpy counts over a symmetric adjacency. The null model shuffles the cluster labels
over the slide's cells (a permutation; positions and graph fixed) ``n_perms`` times:

    z[i, j] = (C[i, j] - mean_perm C[i, j]) / std_perm C[i, j]      (std with ddof = 0)

z > 0: clusters i and j are neighbours more often than chance (they co-localise); z < 0: they
avoid each other. NaN where the permuted counts never vary (e.g. a cluster absent from the
slide). Every permutation is a ``bincount`` over the edge list, so memory is the slide's edges
(8 bytes each) plus (n_perms, k, k) counts; the permutations come from one seeded generator.

``n_perms=0`` uses the *exact* mean and variance of ``C`` over all label permutations
(:func:`exact_moments`): the limit of infinitely many shuffles, with no Monte Carlo noise,
in O(cells + pairs) once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wsicell.neighbours import neighbour_pairs


@dataclass(frozen=True)
class Enrichment:
    """The statistic of one slide; every array is (k, k), row = the cell's cluster."""

    zscore: np.ndarray  # float64, NaN where the permuted counts have no spread
    observed: np.ndarray  # int64
    perm_mean: np.ndarray  # float64
    perm_std: np.ndarray  # float64
    n_perms: int
    n_pairs: int  # undirected close pairs (edges) of the slide


def pair_counts(labels: np.ndarray, src: np.ndarray, dst: np.ndarray, *, k: int) -> np.ndarray:
    """``C`` (k, k) int64 of undirected edges (src[e], dst[e]) counted from both ends."""
    scaled = labels.astype(np.int64) * k  # n-sized; the gathers below are edge-sized
    codes = scaled[src]  # int64: bincount's own index type, so no conversion copy
    codes += labels[dst]
    once = np.bincount(codes, minlength=k * k).reshape(k, k)
    return once + once.T


def falling(x: np.ndarray, m: int) -> np.ndarray:
    """x (x - 1) ... (x - m + 1), elementwise, as float64."""
    out = np.ones_like(np.asarray(x, np.float64))
    for j in range(m):
        out *= np.asarray(x, np.float64) - j
    return out


def exact_moments(sizes: np.ndarray, degrees: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance (k, k) of ``C`` over all permutations of the labels.

    ``sizes`` (k,) cells per cluster, ``degrees`` (n,) neighbours per cell. With W = sum of
    degrees (ordered pairs), S = sum d (d - 1), and P(...) the probability that distinct cells
    draw the given labels without replacement (falling factorials of the sizes over those of n):
    E C_ij = W P(i, j); E C_ij^2 = W P(i, j) (1 + [i = j]) + S (P(i, j, j) + P(i, i, j)
    + 2 [i = j] P(i, i, i)) + (W^2 - 2 W - 4 S) P(i, j, i, j), from the ways two ordered pairs
    can share cells (none, one, both).
    """
    n = float(degrees.shape[0])
    sizes = np.asarray(sizes, np.float64)
    d = np.asarray(degrees, np.float64)
    w, s = float(d.sum()), float((d * (d - 1)).sum())
    eye = np.eye(len(sizes), dtype=bool)
    ni, nj = sizes[:, None], sizes[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        p2 = np.where(eye, falling(ni, 2) * eye, ni * nj) / falling(n, 2)
        p3_ijj = np.where(eye, falling(ni, 3), ni * falling(nj, 2)) / falling(n, 3)
        p3_iij = np.where(eye, falling(ni, 3), falling(ni, 2) * nj) / falling(n, 3)
        p4 = np.where(eye, falling(ni, 4), falling(ni, 2) * falling(nj, 2)) / falling(n, 4)
    p2, p3_ijj, p3_iij, p4 = (np.nan_to_num(p, nan=0.0, posinf=0.0) for p in (p2, p3_ijj, p3_iij, p4))
    mean = w * p2
    second = w * p2 * (1 + eye) + s * (p3_ijj + p3_iij + 2 * eye * p3_ijj) + (w * w - 2 * w - 4 * s) * p4
    return mean, np.maximum(second - mean**2, 0.0)


def nhood_enrichment(
    labels: np.ndarray, pairs: np.ndarray, *, k: int, n_perms: int = 1000, seed: int = 0
) -> Enrichment:
    """z-scores of the observed cluster co-occurrence over ``pairs`` (m, 2) against ``n_perms``
    label permutations (``numpy.random.default_rng(seed).permutation`` each); ``n_perms=0``:
    against the exact permutation moments (:func:`exact_moments`)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (len(labels) and (labels.min() < 0 or labels.max() >= k)):
        raise ValueError(f"labels must be a 1-d array of clusters 0..{k - 1}")
    if n_perms == 1 or n_perms < 0:
        raise ValueError(f"n_perms must be 0 (exact moments) or >= 2, got {n_perms}")
    small = labels.astype(np.int16 if k < 2**15 else np.int32)
    pairs = np.asarray(pairs).reshape(-1, 2)
    src = pairs[:, 0].astype(np.int32 if len(labels) < 2**31 else np.int64)
    dst = pairs[:, 1].astype(src.dtype)
    observed = pair_counts(small, src, dst, k=k)
    if n_perms == 0:
        degrees = np.bincount(src, minlength=len(labels)) + np.bincount(dst, minlength=len(labels))
        mean, var = exact_moments(np.bincount(small, minlength=k), degrees)
        std = np.sqrt(var)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(std > 1e-9 * np.maximum(mean, 1.0), (observed - mean) / np.where(std > 0, std, 1.0), np.nan)
        return Enrichment(z, observed, mean, std, 0, len(src))
    rng = np.random.default_rng(seed)
    perms = np.empty((n_perms, k, k), np.int64)
    for p in range(n_perms):
        perms[p] = pair_counts(rng.permutation(small), src, dst, k=k)
    mean = perms.mean(axis=0)
    std = perms.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(std > 0, (observed - mean) / np.where(std > 0, std, 1.0), np.nan)
    return Enrichment(z, observed, mean, std, n_perms, len(src))


def slide_enrichment(
    labels: np.ndarray, centroids: np.ndarray, *, mpp: float, radius_um: float, k: int, n_perms: int = 1000,
    seed: int = 0, groups: np.ndarray | None = None,
) -> Enrichment:  # fmt: skip
    """:func:`nhood_enrichment` over the pairs of one slide's cells within ``radius_um``
    (``centroids`` (n, 2) level-0 px, ``mpp`` µm/px; cells of different ``groups`` never pair)."""
    pairs = neighbour_pairs(centroids, mpp=mpp, radius_um=radius_um, groups=groups)
    return nhood_enrichment(labels, pairs, k=k, n_perms=n_perms, seed=seed)
