"""The tissue area of a slide, for densities (cells per mm² of tissue).

Slides extracted by this version carry ``tissue_area_mm2``: the tissue mask's area before
its safety margin is added (``wsicell.io.tissue``). Older stores lack it; for them the area
is *estimated* from the cells themselves: the squares of a ``grid_um`` grid holding at least
one nucleus centroid, closed over gaps of up to ``close_um`` (nucleus-poor stroma, lumens
inside tissue), counted. The source is reported with every figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from wsicell.store import SlideCells

FROM_MASK = "tissue mask"
FROM_CELLS = "cell occupancy (estimate)"


@dataclass(frozen=True)
class TissueArea:
    mm2: float
    source: str  # FROM_MASK or FROM_CELLS


def occupancy_area_mm2(centroids: np.ndarray, *, mpp: float, grid_um: float = 25.0, close_um: float = 50.0) -> float:
    """mm² of the ``grid_um`` squares holding a centroid (n, 2 level-0 px), after a
    morphological closing of ``close_um`` (diameter) that fills small gaps between cells."""
    if len(centroids) == 0:
        return 0.0
    cells = np.floor(np.asarray(centroids, np.float64) * mpp / grid_um).astype(np.int64)  # grid squares
    cells -= cells.min(axis=0)
    radius = math.ceil(close_um / (2 * grid_um))  # a disk of this many squares closes close_um gaps
    pad = 2 * radius + 2  # beyond the closing's reach: the border never counts
    w, h = (cells.max(axis=0) + 1 + 2 * pad).tolist()
    grid = np.zeros((h, w), np.uint8)
    grid[cells[:, 1] + pad, cells[:, 0] + pad] = 1
    if radius > 0:
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        grid = cv2.morphologyEx(grid, cv2.MORPH_CLOSE, disk)
    return float(np.count_nonzero(grid) * (grid_um / 1000.0) ** 2)


def tissue_area(slide: SlideCells) -> TissueArea:
    """The recorded tissue area of ``slide``, else the estimate from its cells' centroids."""
    recorded = slide.attrs.get("tissue_area_mm2")
    if recorded is not None and math.isfinite(float(recorded)):
        return TissueArea(float(recorded), FROM_MASK)
    centroids = slide.array("centroid")[: slide.n_cells]
    return TissueArea(occupancy_area_mm2(centroids, mpp=slide.mpp), FROM_CELLS)
