"""`-k auto`: the elbow of the explained-variance curve of k-means on a sample.

Rule (documented in docs/clustering.md): run k-means (k-means++ seeding, restarts) for
every k in k_min..k_max on the same random sample of cells. Explained variance
EV(k) = 1 - SSE(k) / SST, where SST is the k = 1 objective (squared distances to the
sample mean; for cosine, to the mean direction on the sphere), so EV(1) = 0 anchors the
curve. Scale k and EV to [0, 1] over 1..k_max and choose the k farthest above the chord
from the first to the last point (the "knee" of Satopaa et al. 2011, Kneedle): the elbow
the SimCLR histopathology paper read off this curve by eye, made automatic.

The elbow needs k_max well above the true k (at least ~2x; default 20). The mean
silhouette of a 3,000-cell subsample is shown next to it for information: it finds
separated blobs even with a small k_max, but on real cell embeddings (which overlap) it
answers k = 2 almost always, which is why it is not the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from wsicell.cluster.kmeans import make_index, train_kmeans

SILHOUETTE_POINTS = 3000


@dataclass(frozen=True)
class KCurvePoint:
    k: int
    objective: float  # SSE on the sample
    explained: float  # 1 - SSE / SST
    silhouette: float  # on a subsample; NaN when not computable


@dataclass(frozen=True)
class KChoice:
    k: int  # the choice: the elbow of the explained variance
    curve: list[KCurvePoint]
    n_points: int
    silhouette_k: int  # the k of best silhouette, for information


def elbow(ks: list[int], explained: list[float]) -> int:
    """The k of largest distance above the chord of the normalised curve."""
    k = np.asarray(ks, np.float64)
    ev = np.asarray(explained, np.float64)
    kn = (k - k[0]) / (k[-1] - k[0])
    span = ev.max() - ev.min()
    evn = (ev - ev.min()) / span if span > 0 else np.zeros_like(ev)
    return int(k[int(np.argmax(evn - kn))])


def choose_k(
    x: np.ndarray, *, k_min: int, k_max: int, iterations: int, restarts: int, seed: int,
    spherical: bool, progress: Callable[[int], None] | None = None,
) -> KChoice:  # fmt: skip
    """Pick k on ``x`` (NxD, ``prepare``d) by the rule above."""
    from sklearn.metrics import silhouette_score

    k_max = min(k_max, len(x) - 1)
    if k_max <= k_min:
        raise ValueError(f"too few cells ({len(x)}) to choose k between {k_min} and {k_max}")
    sst = total_sum_of_squares(x, spherical=spherical)
    rng = np.random.default_rng(seed)
    sub = rng.choice(len(x), size=min(SILHOUETTE_POINTS, len(x)), replace=False)
    curve = []
    for k in range(k_min, k_max + 1):
        result = train_kmeans(x, k=k, iterations=iterations, restarts=restarts, seed=seed, spherical=spherical)
        _, labels = make_index(result.centroids).search(x[sub], 1)
        labels = labels[:, 0]
        sil = float("nan")
        if 1 < len(np.unique(labels)) < len(sub):
            sil = float(silhouette_score(x[sub], labels, metric="cosine" if spherical else "euclidean"))
        explained = 1.0 - result.objective / sst if sst > 0 else 0.0
        curve.append(KCurvePoint(k, result.objective, explained, sil))
        if progress is not None:
            progress(1)
    knee = elbow([1] + [p.k for p in curve], [0.0] + [p.explained for p in curve])
    scored = [p for p in curve if np.isfinite(p.silhouette)]
    best_silhouette = max(scored, key=lambda p: p.silhouette).k if scored else knee
    return KChoice(knee, curve, len(x), best_silhouette)


def total_sum_of_squares(x: np.ndarray, *, spherical: bool) -> float:
    """The k = 1 objective: squared distances to the mean (to the unit mean direction)."""
    x64 = x.astype(np.float64)
    total = x64.sum(axis=0)
    if spherical:  # sum |x - c|^2 over unit x, c = 2n - 2 c.sum(x), best c = sum / |sum|
        return float(2 * len(x) - 2 * np.linalg.norm(total))
    return float(((x64 - total / len(x)) ** 2).sum())
