"""Clustering quality against reference labels: AMI, ARI, purity, Hungarian-matched accuracy.

All scores are fractions in [0, 1] (ARI and AMI can be slightly negative for chance-level
clusterings); reports multiply by 100 to match the CCRL paper's percentages.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

METRIC_NAMES = ("ami", "ari", "purity", "accuracy")


@dataclass(frozen=True)
class ClusterScores:
    ami: float
    ari: float
    purity: float
    accuracy: float  # Hungarian-matched (one cluster per class), the classification accuracy

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def contingency(labels: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Counts table: rows = distinct labels (sorted), columns = distinct clusters (sorted)."""
    from sklearn.metrics.cluster import contingency_matrix

    labels, clusters = _check(labels, clusters)
    return contingency_matrix(labels, clusters).astype(np.int64)  # (n_labels, n_clusters)


def purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Sum over clusters of their most frequent label's count, divided by n."""
    table = contingency(labels, clusters)
    return float(table.max(axis=0).sum() / table.sum())


def hungarian_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Accuracy under the best one-to-one mapping of clusters to labels (unmatched = wrong)."""
    from scipy.optimize import linear_sum_assignment

    table = contingency(labels, clusters)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def score_clusters(*, labels: np.ndarray, clusters: np.ndarray) -> ClusterScores:
    """All four scores of a clustering against reference labels (both shape (n,))."""
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score

    labels, clusters = _check(labels, clusters)
    return ClusterScores(
        ami=float(adjusted_mutual_info_score(labels, clusters)),
        ari=float(adjusted_rand_score(labels, clusters)),
        purity=purity(labels, clusters),
        accuracy=hungarian_accuracy(labels, clusters),
    )


def mean_std(scores: list[ClusterScores]) -> dict[str, tuple[float, float]]:
    """Per metric (mean, population standard deviation) over runs, e.g. seeds."""
    if not scores:
        raise ValueError("no scores to summarise")
    out = {}
    for name in METRIC_NAMES:
        values = np.array([getattr(s, name) for s in scores], dtype=np.float64)
        out[name] = (float(values.mean()), float(values.std()))
    return out


def _check(labels: np.ndarray, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).ravel()
    clusters = np.asarray(clusters).ravel()
    if labels.shape != clusters.shape:
        raise ValueError(f"labels ({labels.shape[0]}) and clusters ({clusters.shape[0]}) differ in length")
    if labels.size == 0:
        raise ValueError("no cells to score")
    return labels, clusters


def knn_label_agreement(x: np.ndarray, labels: np.ndarray, *, neighbours: int = 10, cosine: bool = True) -> float:
    """Fraction of each cell's ``neighbours`` nearest other cells (in ``x``, n x D) that share
    its label, averaged over cells: how much local cell-type structure a representation has,
    whatever a clustering then makes of it (chance = sum of squared class shares)."""
    import faiss

    data = np.array(x, dtype=np.float32, order="C", copy=True)
    if cosine:
        data /= np.maximum(np.linalg.norm(data, axis=1, keepdims=True), 1e-12)
    index = faiss.IndexFlatL2(data.shape[1])
    index.add(data)
    _, idx = index.search(data, neighbours + 1)
    # drop each cell itself (normally the first hit; exact duplicates may come in any order)
    is_self = idx == np.arange(len(idx))[:, None]
    is_self[is_self.sum(axis=1) == 0, -1] = True  # self not found: drop the farthest instead
    others = idx[~is_self].reshape(len(idx), neighbours)
    labels = np.asarray(labels)
    return float(np.mean(labels[others] == labels[:, None]))
