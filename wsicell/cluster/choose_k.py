"""`-k auto`: the k of best silhouette on a sample, with the explained-variance curve shown.

Rule (documented in docs/clustering.md): run k-means (k-means++ seeding, restarts) for
every k in k_min..k_max on the same random sample of cells; score each clustering by the
mean silhouette (cosine or Euclidean, as the metric) of a fixed 3,000-cell subsample;
choose the k of highest silhouette. Next to it the table shows the explained variance
EV(k) = 1 - SSE(k) / SST (SST = the k = 1 objective) and the elbow of that curve (the
point farthest above the chord of the normalised curve, Kneedle), which the SimCLR
histopathology paper read by eye. The elbow is shown, not used: on clear synthetic blobs
it picks k too small whenever k_max is close to the true k, where the silhouette does not.
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
    k: int  # the choice: best silhouette
    curve: list[KCurvePoint]
    n_points: int
    elbow_k: int  # the elbow of the explained variance, for information


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
    best = max(scored, key=lambda p: p.silhouette).k if scored else knee
    return KChoice(best, curve, len(x), knee)


def total_sum_of_squares(x: np.ndarray, *, spherical: bool) -> float:
    """The k = 1 objective: squared distances to the mean (to the unit mean direction)."""
    x64 = x.astype(np.float64)
    total = x64.sum(axis=0)
    if spherical:  # sum |x - c|^2 over unit x, c = 2n - 2 c.sum(x), best c = sum / |sum|
        return float(2 * len(x) - 2 * np.linalg.norm(total))
    return float(((x64 - total / len(x)) ** 2).sum())
