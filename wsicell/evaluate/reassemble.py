"""Tiles of a grid put back into their image, with the nuclei that the cuts split made whole.

CoNSeP's tiles here are its 1000 px images cut 4 x 4 (and resized to 256 px, ~1.024x;
``dataset.py``). A nucleus that a cut crosses is in both tiles, under each tile's own
instance number. Scoring on tiles therefore counts it twice, each time as a cut piece, and
a segmenter sees it only up to the cut. Published CoNSeP figures (HoVer-Net's PQ 0.517) are
per image. :func:`join_instances` gives the image's instance map back: two pieces on the two
sides of a cut are one nucleus when each is the other's main neighbour along the cut.
:func:`reassemble` does this for every image of a split (tiles named ``IMAGE_NNN``, ``NNN``
in row-major order).
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from wsicell.errors import DatasetError
from wsicell.evaluate.dataset import list_tiles, read_tile
from wsicell.types import PathLikeStr


def _seam_pairs(a: np.ndarray, b: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (label in ``a``, label in ``b``) of two facing pixel lines that are each other's
    main partner: the label on the other side most often, both ways."""
    both = (a > 0) & (b > 0)
    if not both.any():
        return []
    pairs, counts = np.unique(np.stack([a[both], b[both]]), axis=1, return_counts=True)
    best_a: dict[int, tuple[int, int]] = {}
    best_b: dict[int, tuple[int, int]] = {}
    for (x, y), c in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        if c > best_a.get(x, (0, 0))[0]:
            best_a[x] = (c, y)
        if c > best_b.get(y, (0, 0))[0]:
            best_b[y] = (c, x)
    return [(x, y) for x, (_, y) in best_a.items() if best_b[y][1] == x]


def join_instances(grid: list[list[np.ndarray]]) -> np.ndarray:
    """One instance map (int32, 0 = background, 1..n) from a grid of tiles' maps (rows of
    tiles, each tile numbered on its own): the pieces of a nucleus cut by a seam joined."""
    heights = [row[0].shape[0] for row in grid]
    widths = [t.shape[1] for t in grid[0]]
    if any(len(row) != len(widths) for row in grid):
        raise ValueError("every row of the grid must hold the same number of tiles")
    labels = np.zeros((sum(heights), sum(widths)), np.int64)
    offset, y = 0, 0
    for r, row in enumerate(grid):
        x = 0
        for tile in row:
            t = tile.astype(np.int64)
            labels[y : y + t.shape[0], x : x + t.shape[1]] = np.where(t > 0, t + offset, 0)
            offset += int(t.max()) if t.size else 0
            x += t.shape[1]
        y += heights[r]
    parent = np.arange(offset + 1)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    cuts_x = np.cumsum(widths)[:-1]
    cuts_y = np.cumsum(heights)[:-1]
    seams = [(labels[:, c - 1], labels[:, c]) for c in cuts_x] + [(labels[c - 1], labels[c]) for c in cuts_y]
    for a, b in seams:
        for i, j in _seam_pairs(a, b):
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(offset + 1)])
    _, renumbered = np.unique(roots, return_inverse=True)  # background (root 0) stays 0
    return renumbered[labels].astype(np.int32)


def reassemble(dataset: PathLikeStr, split: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(image name, RGB image, instance map) of every image of ``dataset/split`` whose tiles
    are named ``IMAGE_NNN`` and make a full square grid."""
    groups: dict[str, list] = defaultdict(list)
    for tile in list_tiles(dataset, split):
        match = re.fullmatch(r"(.+)_(\d+)", tile.name)
        if match is None:
            raise DatasetError(f"{tile.npz}: not named IMAGE_NNN, so its place in an image is unknown")
        groups[match.group(1)].append((int(match.group(2)), tile))
    out = []
    for name in sorted(groups, key=lambda n: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", n)]):
        order = sorted(groups[name], key=lambda p: p[0])
        tiles = [t for _, t in order]
        side = round(len(tiles) ** 0.5)
        if side * side != len(tiles) or [i for i, _ in order] != list(range(len(tiles))):
            raise DatasetError(f"{Path(dataset) / split}: the tiles of {name} do not make a full square grid")
        read = [read_tile(t)[:2] for t in tiles]
        image = np.concatenate([np.concatenate([im for im, _ in read[r * side : (r + 1) * side]], axis=1)
                                for r in range(side)])  # fmt: skip
        inst = join_instances([[lab for _, lab in read[r * side : (r + 1) * side]] for r in range(side)])
        out.append((name, image, inst))
    return out
