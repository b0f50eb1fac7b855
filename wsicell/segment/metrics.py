"""Instance-segmentation metrics: detection F1, AJI (Kumar et al. 2017) and PQ (Kirillov et al.
2019), as used for CoNSeP by HoVer-Net (Graham et al. 2019).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class Detection:
    """Centroid matching counts; ``f1``/``precision``/``recall`` derive from them."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom else 1.0

    def __add__(self, other: Detection) -> Detection:
        return Detection(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def centroid_pairs(pred: np.ndarray, true: np.ndarray, *, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs (rows into ``pred`` (n, 2), rows into ``true`` (m, 2), same units)
    that maximise the number of pairs not farther apart than ``radius`` and, among those,
    minimise the total distance (Hungarian algorithm). Non-finite centroids never pair."""
    pred = np.asarray(pred, np.float64).reshape(-1, 2)
    true = np.asarray(true, np.float64).reshape(-1, 2)
    if len(pred) == 0 or len(true) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    dist = np.linalg.norm(pred[:, None, :] - true[None, :, :], axis=2)  # n x m
    close = np.isfinite(dist) & (dist <= radius)
    # a far pair costs more than all close pairs together: the most close pairs come first
    cost = np.where(close, dist, radius * (min(dist.shape) + 1) + 1)
    rows, cols = linear_sum_assignment(cost)
    ok = close[rows, cols]
    return rows[ok].astype(np.int64), cols[ok].astype(np.int64)


def match_centroids(pred: np.ndarray, true: np.ndarray, *, radius: float = 6.0) -> Detection:
    """Detection counts of :func:`centroid_pairs`: unmatched predictions are false
    positives, unmatched true centroids false negatives."""
    n_pred, n_true = len(np.asarray(pred).reshape(-1, 2)), len(np.asarray(true).reshape(-1, 2))
    tp = len(centroid_pairs(pred, true, radius=radius)[0])
    return Detection(tp, n_pred - tp, n_true - tp)


def _overlaps(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ids of true/pred instances, their areas, and the intersection matrix (n_true x n_pred)."""
    true = np.asarray(true).astype(np.int64)
    pred = np.asarray(pred).astype(np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"label images differ in shape: {true.shape} vs {pred.shape}")
    t_ids, t_inv = np.unique(true, return_inverse=True)
    p_ids, p_inv = np.unique(pred, return_inverse=True)
    t_inv, p_inv = t_inv.ravel(), p_inv.ravel()
    joint = np.bincount(t_inv * len(p_ids) + p_inv, minlength=len(t_ids) * len(p_ids))
    inter = joint.reshape(len(t_ids), len(p_ids))
    t_area = inter.sum(1)
    p_area = inter.sum(0)
    # drop background row/column
    t_keep = t_ids != 0
    p_keep = p_ids != 0
    return t_ids[t_keep], p_ids[p_keep], t_area[t_keep], p_area[p_keep], inter[np.ix_(t_keep, p_keep)]


def aji(true: np.ndarray, pred: np.ndarray) -> float:
    """Aggregated Jaccard Index of two instance label images (0 = background).

    Each true nucleus is paired with the prediction of highest IoU with it (a prediction
    may serve several true nuclei, as in Kumar et al.); predictions never paired add their
    area to the union. 1.0 when both are empty."""
    _, _, t_area, p_area, inter = _overlaps(true, pred)
    if len(t_area) == 0 and len(p_area) == 0:
        return 1.0
    if len(t_area) == 0 or len(p_area) == 0:
        return 0.0
    union = t_area[:, None] + p_area[None, :] - inter
    iou = inter / union
    best = np.argmax(iou, axis=1)
    rows = np.arange(len(t_area))
    has = inter[rows, best] > 0
    c = inter[rows, best][has].sum()
    u = union[rows, best][has].sum() + t_area[~has].sum()
    used = np.zeros(len(p_area), bool)
    used[best[has]] = True
    u += p_area[~used].sum()
    return float(c / u) if u else 0.0


@dataclass(frozen=True)
class Panoptic:
    """PQ = DQ x SQ; DQ = TP / (TP + FP/2 + FN/2); SQ = mean IoU of matched pairs."""

    tp: int
    fp: int
    fn: int
    iou_sum: float

    @property
    def dq(self) -> float:
        denom = self.tp + 0.5 * self.fp + 0.5 * self.fn
        return self.tp / denom if denom else 1.0

    @property
    def sq(self) -> float:
        return self.iou_sum / self.tp if self.tp else 0.0

    @property
    def pq(self) -> float:
        return self.dq * self.sq


def panoptic(true: np.ndarray, pred: np.ndarray) -> Panoptic:
    """Pairs with IoU > 0.5 (unique by construction) are true positives."""
    _, _, t_area, p_area, inter = _overlaps(true, pred)
    if len(t_area) == 0 or len(p_area) == 0:
        return Panoptic(0, len(p_area), len(t_area), 0.0)
    iou = inter / (t_area[:, None] + p_area[None, :] - inter)
    matched = iou > 0.5
    tp = int(matched.sum())
    return Panoptic(tp, len(p_area) - tp, len(t_area) - tp, float(iou[matched].sum()))


def pq(true: np.ndarray, pred: np.ndarray) -> float:
    """Panoptic quality of two instance label images (1.0 when both are empty)."""
    return panoptic(true, pred).pq


def instance_centroids(labels: np.ndarray) -> np.ndarray:
    """(n, 2) float64 (x, y) centroid of each instance id 1..n of a label image, pixel (j, i)
    centred at (j + 0.5, i + 0.5); NaN for an id with no pixel."""
    labels = np.asarray(labels).astype(np.int64)
    n = int(labels.max()) if labels.size else 0
    flat = labels.ravel()
    ys, xs = np.indices(labels.shape)
    count = np.bincount(flat, minlength=n + 1)[1:].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.bincount(flat, weights=xs.ravel(), minlength=n + 1)[1:] / count
        cy = np.bincount(flat, weights=ys.ravel(), minlength=n + 1)[1:] / count
    return np.stack([cx, cy], axis=1) + 0.5


def centroids_of(labels: np.ndarray) -> np.ndarray:
    """(n, 2) (x, y) centroids of the instances present in a label image, in pixel-index
    units (the pixel (0, 0) has centre (0, 0)), ordered by label id."""
    c = instance_centroids(labels)
    return c[np.isfinite(c[:, 0])] - 0.5
