"""Tile grids: cores partition the slide exactly; tissue selects tiles."""

from __future__ import annotations

import numpy as np
import pytest

from wsicell.io.tiling import tile_grid, tiles_over_tissue
from wsicell.io.tissue import TissueMask


@pytest.mark.parametrize(("size", "overlap"), [(512, 100), (768, 128), (300, 0)])
def test_cores_partition_the_extent(size: int, overlap: int) -> None:
    extent = (7, 3, 1907, 1203)
    tiles = tile_grid(extent, size=size, overlap=overlap)
    cover = np.zeros((1203, 1907), np.int32)
    for i, t in enumerate(tiles):
        assert t.index == i and t.size == size
        x0, y0, x1, y1 = t.core
        assert t.x == x0 - overlap and t.y == y0 - overlap  # the window surrounds the core
        assert x1 <= t.x + size - overlap and y1 <= t.y + size - overlap
        cover[y0:y1, x0:x1] += 1
    assert (cover[3:, 7:] == 1).all() and cover[:3].sum() == 0 and cover[:, :7].sum() == 0


def test_overlap_must_leave_a_core() -> None:
    with pytest.raises(ValueError, match="no core"):
        tile_grid((0, 0, 100, 100), size=200, overlap=100)


def test_tiles_over_tissue_keeps_tiles_touching_tissue() -> None:
    mask = np.zeros((100, 100), bool)
    mask[10, 60] = True  # one mask pixel = level-0 [480, 488) x [80, 88)
    tissue = TissueMask(mask, downsample=8.0)
    tiles = tile_grid((0, 0, 400, 400), size=120, overlap=10)  # cores of 100 px
    kept = tiles_over_tissue(tiles, tissue, scale=2.0)  # core (200..300) x (0..100) working px
    assert [t.core for t in kept] == [(200, 0, 300, 100)]


def test_window_on_the_slide_cuts_the_read_window_to_the_slide() -> None:
    tiles = tile_grid((0, 0, 300, 130), size=128, overlap=16)
    for t in tiles:
        x0, y0, x1, y1 = t.window_on((300, 130))
        assert (x0, y0) == (max(t.x, 0), max(t.y, 0)) and (x1, y1) == (min(t.x + 128, 300), min(t.y + 128, 130))
        c0, r0, c1, r1 = t.core
        assert x0 <= c0 and y0 <= r0 and c1 <= x1 and r1 <= y1  # the core stays inside
    assert tiles[0].window_on((300, 130)) == (0, 0, 112, 112)
    assert tile_grid((0, 0, 50, 40), size=128, overlap=16)[0].window_on((50, 40)) == (0, 0, 50, 40)  # a small field: all of it
