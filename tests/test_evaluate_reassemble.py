"""CoNSeP's tiles put back into their images: cut nuclei joined across the seams."""

from __future__ import annotations

import cv2
import numpy as np

from wsicell.evaluate.reassemble import join_instances, reassemble


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two instance maps hold the same instances, whatever their numbers."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]


def test_cut_discs_are_joined_back_exactly():
    rng = np.random.default_rng(0)
    inst = np.zeros((300, 300), np.int32)
    for k in range(1, 200):  # discs, some touching, many crossing the cuts at 150
        x, y, r = rng.integers(0, 300), rng.integers(0, 300), rng.integers(3, 8)
        cv2.circle(inst, (int(x), int(y)), int(r), k, -1)
    _, inst = cv2.connectedComponents((inst > 0).astype(np.uint8))  # overlapping discs: one instance
    grid = []
    for r in range(2):
        row = []
        for c in range(2):
            piece = inst[150 * r : 150 * (r + 1), 150 * c : 150 * (c + 1)]
            ids = np.unique(piece[piece > 0])
            renumber = np.zeros(inst.max() + 1, np.int32)
            renumber[ids] = rng.permutation(len(ids)) + 1  # each tile numbers its own nuclei
            row.append(renumber[piece])
        grid.append(row)
    crossing = len(np.unique(inst[:, 149:151][inst[:, 149:151] > 0])) + len(np.unique(inst[149:151][inst[149:151] > 0]))
    assert crossing > 10  # the test cuts many nuclei
    tiles_count = sum(len(np.unique(t)) - 1 for row in grid for t in row)
    joined = join_instances(grid)
    assert same_partition(joined, inst)
    assert joined.max() == inst.max() < tiles_count  # numbered 1..n, fewer than the pieces


def test_consep_test_images_reassemble(shared_data):
    images = reassemble(shared_data / "consep-tiles", "test")
    assert len(images) == 14 and images[0][0] == "test_1"
    name, image, inst = images[0]
    assert image.shape == (1024, 1024, 3) and inst.shape == (1024, 1024)
    pieces = 0
    from wsicell.evaluate.dataset import list_tiles, read_tile

    for tile in list_tiles(shared_data / "consep-tiles", "test"):
        if tile.name.startswith("test_1_"):
            pieces += int(read_tile(tile)[1].max())
    n = int(inst.max())
    assert len(np.unique(inst)) == n + 1  # numbered 1..n
    assert 0.8 * pieces < n < pieces  # cut nuclei joined: fewer than the pieces, not collapsed
