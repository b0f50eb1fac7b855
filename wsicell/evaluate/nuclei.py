"""Which nuclei an evaluation scores: the dataset's labelled instances, or a segmenter's.

The paper's protocol scores the labelled instances themselves (``Nuclei()``). With a
``segmenter``, it scores what a user of ``wsicell extract`` gets instead: every tile is
segmented as extraction segments a slide, each detected nucleus is matched one-to-one to a
labelled nucleus whose centroid lies within ``match_um`` (Hungarian assignment on centroid
distance) and takes its class; unmatched detections (false positives, or nuclei the labels
do not mark) are left out, and labelled nuclei that no detection matched are counted as
missed. ``scale`` < 1 shows the tiles at a lower magnification (0.5: a 40x dataset seen as
20x): the image is shrunk with area interpolation, the instance map with nearest neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from wsicell.config import plain, to_mapping
from wsicell.segment.config import SegmentConfig


@dataclass(frozen=True)
class Nuclei:
    """Where the evaluated cells come from (see the module docstring)."""

    segmenter: SegmentConfig | None = None  # None: the labelled instances
    scale: float = 1.0  # tiles resized by this factor first (0.5: 40x seen as 20x)
    match_um: float = 3.0  # largest centroid distance of a detection to its labelled nucleus

    def __post_init__(self) -> None:
        if not 0.0 < self.scale <= 1.0:
            raise ValueError(f"scale must be in (0, 1], got {self.scale}")
        if not self.match_um > 0.0:
            raise ValueError(f"match_um must be > 0, got {self.match_um}")

    @property
    def settings(self) -> dict[str, Any]:
        """Plain values for a split store's reuse check."""
        seg = None if self.segmenter is None else plain(to_mapping(self.segmenter))
        return {"segmenter": seg, "scale": self.scale, "match_um": self.match_um}

    @property
    def title(self) -> str:
        which = (
            "labelled nuclei"
            if self.segmenter is None
            else f"nuclei found by the {self.segmenter.method} segmenter"
        )
        return which if self.scale == 1.0 else f"{which}, tiles resized x{self.scale:g}"


def rescale_tile(
    image: np.ndarray, inst: np.ndarray, types: np.ndarray, *, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tile resized by ``scale``: image (area interpolation), instance map (nearest, then
    renumbered 1..n' so that instances too small to survive are dropped) and their types."""
    import cv2

    if scale == 1.0:
        return image, inst, types
    h, w = inst.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # cv2: (width, height)
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_inst = cv2.resize(inst.astype(np.int32), size, interpolation=cv2.INTER_NEAREST)
    kept = np.unique(small_inst)
    kept = kept[kept > 0]
    renumber = np.zeros(int(inst.max()) + 1, np.int32)
    renumber[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    return small, renumber[small_inst], types[kept - 1]


def instance_centroids(inst: np.ndarray) -> np.ndarray:
    """(n, 2) float64 (x, y) centroid of instances 1..n of ``inst`` (pixel centres at j + 0.5),
    NaN for an id with no pixel."""
    n = int(inst.max()) if inst.size else 0
    flat = inst.ravel()
    ys, xs = np.indices(inst.shape)
    count = np.bincount(flat, minlength=n + 1)[1:].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = np.bincount(flat, weights=xs.ravel(), minlength=n + 1)[1:] / count
        cy = np.bincount(flat, weights=ys.ravel(), minlength=n + 1)[1:] / count
    return np.stack([cx, cy], axis=1) + 0.5


def match_centroids(
    detected: np.ndarray, labelled: np.ndarray, *, max_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches (rows into ``detected`` (n, 2), rows into ``labelled`` (m, 2)) that
    minimise the total centroid distance, each pair closer than ``max_distance``."""
    from scipy.optimize import linear_sum_assignment

    if len(detected) == 0 or len(labelled) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    d = np.linalg.norm(detected[:, None, :] - labelled[None, :, :], axis=2)  # n x m
    d[~np.isfinite(d)] = np.inf
    far = d > max_distance
    # a far pair costs more than all real pairs together: the most real matches come first
    d[far] = max_distance * (min(d.shape) + 1)
    rows, cols = linear_sum_assignment(d)
    ok = ~far[rows, cols]
    return rows[ok].astype(np.int64), cols[ok].astype(np.int64)
