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


def match_centroids(pred: np.ndarray, true: np.ndarray, *, radius: float = 6.0) -> Detection:
    """One-to-one matching of predicted to true centroids (n x 2 each, same units) that
    maximises the number of pairs closer than ``radius`` and, among those, minimises the
    total distance (Hungarian algorithm); unmatched predictions are false positives,
    unmatched true centroids false negatives."""
    pred = np.asarray(pred, np.float64).reshape(-1, 2)
    true = np.asarray(true, np.float64).reshape(-1, 2)
    if len(pred) == 0 or len(true) == 0:
        return Detection(0, len(pred), len(true))
    dist = np.sqrt(((pred[:, None, :] - true[None, :, :]) ** 2).sum(-1))
    close = dist <= radius
    big = 1e6  # a pair beyond the radius costs more than any set of close pairs
    cost = np.where(close, dist, big)
    rows, cols = linear_sum_assignment(cost)
    tp = int(close[rows, cols].sum())
    return Detection(tp, len(pred) - tp, len(true) - tp)


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


def centroids_of(labels: np.ndarray) -> np.ndarray:
    """(n, 2) (x, y) centroids of the instances of a label image, in pixel-index units
    (the pixel (0, 0) has centre (0, 0)), ordered by label id."""
    labels = np.asarray(labels).astype(np.int64)
    flat = labels.ravel()
    fg = np.flatnonzero(flat)
    if len(fg) == 0:
        return np.zeros((0, 2))
    ys, xs = np.divmod(fg, labels.shape[1])
    lab = flat[fg]
    area = np.bincount(lab)
    ids = np.flatnonzero(area)
    cx = np.bincount(lab, weights=xs)[ids] / area[ids]
    cy = np.bincount(lab, weights=ys)[ids] / area[ids]
    return np.stack([cx, cy], axis=1)
