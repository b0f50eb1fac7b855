"""Spatial neighbours of cells: nuclei within a radius (µm) of each other in the same slide.

SSLP's intra-invariance treats spatially close samples as positives; for cells, "close"
means centroid distance <= ``radius_um`` micrometres within one slide (never across
slides; and never across the tiles of a labelled dataset store, whose per-cell ``tile`` array
marks cells of separate images sharing one coordinate frame). The result is a CSR adjacency over *global* cell indices (slides concatenated in
order), each row sorted by distance and capped at ``max_neighbours`` (the nearest ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass(frozen=True)
class Neighbours:
    """CSR adjacency: the neighbours of cell ``i`` are ``indices[indptr[i]:indptr[i + 1]]``."""

    indptr: np.ndarray  # (n + 1,) int64
    indices: np.ndarray  # (nnz,) int64, global cell indices, nearest first per row
    distance_um: np.ndarray  # (nnz,) float32

    @property
    def n_cells(self) -> int:
        return len(self.indptr) - 1

    def of(self, i: int) -> np.ndarray:
        return self.indices[self.indptr[i] : self.indptr[i + 1]]

    def counts(self) -> np.ndarray:
        return np.diff(self.indptr)


def spatial_neighbours(
    centroids: np.ndarray,
    *,
    mpp: float,
    radius_um: float,
    max_neighbours: int | None = None,
    offset: int = 0,
    groups: np.ndarray | None = None,
) -> Neighbours:
    """Neighbours within ``radius_um`` among one slide's cells.

    ``centroids`` (n, 2) are level-0 pixels, ``mpp`` µm per level-0 pixel; returned indices
    are ``offset +`` row numbers (so slides can be concatenated). Cells whose ``groups`` (n,)
    differ are never neighbours.
    """
    if max_neighbours is not None and max_neighbours < 1:
        raise ValueError(f"max_neighbours must be >= 1, got {max_neighbours}")
    points, pairs = _pairs(centroids, mpp=mpp, radius_um=radius_um, groups=groups)
    n = len(points)
    if n == 0:
        return Neighbours(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    src = np.concatenate([pairs[:, 0], pairs[:, 1]])
    dst = np.concatenate([pairs[:, 1], pairs[:, 0]])
    dist = np.linalg.norm(points[src] - points[dst], axis=1)
    order = np.lexsort((dst, dist, src))  # by row, then distance, then index (deterministic)
    src, dst, dist = src[order], dst[order], dist[order]
    counts = np.bincount(src, minlength=n)
    if max_neighbours is not None:
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        keep = np.arange(len(src)) - starts < max_neighbours
        src, dst, dist = src[keep], dst[keep], dist[keep]
        counts = np.minimum(counts, max_neighbours)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Neighbours(indptr, (dst + offset).astype(np.int64), dist.astype(np.float32))


def neighbour_pairs(
    centroids: np.ndarray, *, mpp: float, radius_um: float, groups: np.ndarray | None = None
) -> np.ndarray:
    """Each pair of cells within ``radius_um`` once, as (m, 2) row numbers with i < j.

    The undirected edge list behind :func:`spatial_neighbours`, without the CSR, sorting or
    distances: the cheap form for statistics over edges (e.g. neighbourhood enrichment).
    """
    return _pairs(centroids, mpp=mpp, radius_um=radius_um, groups=groups)[1]


def _pairs(
    centroids: np.ndarray, *, mpp: float, radius_um: float, groups: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """The points in µm (groups laid apart) and their pairs within the radius (m, 2), i < j."""
    centroids = np.asarray(centroids, dtype=np.float64)
    if centroids.ndim != 2 or centroids.shape[1] != 2:
        raise ValueError(f"centroids must be (n, 2), got {centroids.shape}")
    if not mpp > 0:
        raise ValueError(f"mpp must be > 0, got {mpp}")
    if not radius_um > 0:
        raise ValueError(f"radius_um must be > 0, got {radius_um}")
    n = len(centroids)
    if n == 0:
        return np.zeros((0, 2)), np.zeros((0, 2), np.int64)
    points = centroids * mpp  # µm
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != (n,):
            raise ValueError(f"groups must be ({n},), got {groups.shape}")
        # lay the groups side by side, further apart than the radius: exact, and the tree stays small
        _, group_id = np.unique(groups, return_inverse=True)
        span = float(np.ptp(points[:, 0])) + 2 * radius_um + 1.0
        points = points + np.stack([group_id * span, np.zeros(n)], 1)
    return points, cKDTree(points).query_pairs(radius_um, output_type="ndarray")


def concat_neighbours(parts: Sequence[Neighbours]) -> Neighbours:
    """Join per-slide adjacencies (built with matching ``offset``) into one."""
    if not parts:
        return Neighbours(np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    indptr = [np.zeros(1, np.int64)]
    total = 0
    for part in parts:
        indptr.append(part.indptr[1:] + total)
        total += int(part.indptr[-1])
    return Neighbours(
        np.concatenate(indptr),
        np.concatenate([p.indices for p in parts]),
        np.concatenate([p.distance_um for p in parts]),
    )


def store_neighbours(slides: Sequence, *, radius_um: float, max_neighbours: int | None = None) -> Neighbours:
    """Neighbours over a store's slides (``wsicell.store.SlideCells``), global indices in order.

    Reads each slide's ``centroid`` array and ``mpp`` attribute (n x 2 floats per slide), and
    its ``tile`` array when it has one (labelled dataset stores: one group of many tiles).
    """
    parts = []
    offset = 0
    for slide in slides:
        n = slide.n_cells
        centroids = slide.array("centroid")[:n]
        groups = slide.array("tile")[:n] if slide.has("tile") else None
        parts.append(
            spatial_neighbours(centroids, mpp=slide.mpp, radius_um=radius_um, max_neighbours=max_neighbours,
                               offset=offset, groups=groups)  # fmt: skip
        )
        offset += n
    return concat_neighbours(parts)
