"""Cutting a slide's working grid into overlapping tiles.

A tile is a ``size`` x ``size`` window of the working grid (see ``Slide.read_grid``). Its
*core* is the window minus ``overlap`` pixels on each side; cores partition the slide (or a
region of it) exactly, and a nucleus is kept only by the tile whose core holds its
centroid, so none is lost or counted twice at seams whatever the tile size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from wsicell.io.tissue import TissueMask
from wsicell.types import Bounds


@dataclass(frozen=True)
class Tile:
    """One tile; all coordinates in working-grid pixels."""

    index: int  # row-major position among all tiles of the grid (the write order)
    x: int  # top-left of the read window (may be negative at the slide's edge)
    y: int
    size: int
    core: Bounds  # (x0, y0, x1, y1), half-open, inside the window

    @property
    def core_pixels(self) -> int:
        x0, y0, x1, y1 = self.core
        return (x1 - x0) * (y1 - y0)

    def window_on(self, grid_size: tuple[int, int]) -> Bounds:
        """The tile's window cut to a slide of ``grid_size`` (width, height) working px.

        Extraction reads and segments only this part. Past a slide's edge a read is white,
        and a segmenter that sees a white band beside a nucleus cut by the edge misses
        many such nuclei; that matters for fields of view and dataset tiles, where every
        side is an edge (docs/segmentation.md, "What `wsicell extract` stores")."""
        width, height = grid_size
        return max(self.x, 0), max(self.y, 0), min(self.x + self.size, width), min(self.y + self.size, height)


def tile_grid(extent: Bounds, *, size: int, overlap: int) -> list[Tile]:
    """Tiles whose cores partition ``extent`` (working px, half-open), row-major."""
    if size - 2 * overlap < 1:
        raise ValueError(f"tile size {size} leaves no core with an overlap of {overlap} px per side")
    core = size - 2 * overlap
    x0, y0, x1, y1 = extent
    cols = max(0, math.ceil((x1 - x0) / core))
    rows = max(0, math.ceil((y1 - y0) / core))
    tiles = []
    for r in range(rows):
        for c in range(cols):
            cx0, cy0 = x0 + c * core, y0 + r * core
            cx1, cy1 = min(cx0 + core, x1), min(cy0 + core, y1)
            tiles.append(Tile(len(tiles), cx0 - overlap, cy0 - overlap, size, (cx0, cy0, cx1, cy1)))
    return tiles


def core_bounds_level0(tile: Tile, scale: float) -> tuple[float, float, float, float]:
    """A tile's core in level-0 pixels (``scale`` = level-0 px per working px)."""
    x0, y0, x1, y1 = tile.core
    return x0 * scale, y0 * scale, x1 * scale, y1 * scale


def tiles_over_tissue(tiles: list[Tile], tissue: TissueMask, *, scale: float) -> list[Tile]:
    """The tiles whose core touches any tissue pixel."""
    keep = []
    for tile in tiles:
        window, _ = tissue.window(core_bounds_level0(tile, scale))
        if window.any():
            keep.append(tile)
    return keep
