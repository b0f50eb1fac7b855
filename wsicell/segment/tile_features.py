"""Tile features: what the HV-net's encoder sees around each nucleus, in its tile.

The HV-net segments a tile in one network call; its encoder's levels 3, 4 and 5 (32, 64 and
128 channels at 2, 4 and 8 µm per feature pixel; ``TILE_LEVELS``) come out of the same call
(``HVNetModel.maps_and_features``). A nucleus' tile features are each level averaged over a
``TILE_BOX_UM`` square centred on its centroid, L2-normalised per level and concatenated
(224-d for the shipped net). Unlike an embedding of the nucleus' crop, they keep the
nucleus' absolute size (the crop rule scales every window to the crop) and they see the
tissue beyond the crop: the encoder's receptive field at level 5 is ~90 µm wide.
``wsicell extract`` stores them per cell (``tile_features``, docs/store.md); a run with
``embed_from: crops+tile`` joins them to the crop embedding (``configs/nucleus-tile.yaml``,
the CPU default), ``embed_from: tile`` embeds with them alone (docs/results.md measures both
against crop embeddings).

The box is averaged as torchvision's ``roi_align`` does it (2 x 2 bins, 2 x 2 bilinear
samples per bin: 16 samples on a regular grid in the box, ``aligned=True``), in numpy, one
sparse product per level for all of a tile's nuclei (importing torchvision in every extraction
worker cost 160 MB); ``tests/test_segment_tile_features.py`` checks it against a naive
reference, one sample at a time, and against ``roi_align`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

TILE_LEVELS = (3, 4, 5)
"""Encoder levels (1 = full resolution) whose outputs make the tile features."""
TILE_BOX_UM = 16.0
"""Side (µm) of the square around a nucleus' centroid each level is averaged over: about twice
a nucleus, so the level-3 average is the nucleus and its rim. Measured on CoNSeP's train split
with fold-clean nets (docs/results.md, ``benchmarks/nucleus_encoder_folds.py --boxes``): 12 µm
lost 3 AMI; 20 and 24 µm tied 16 µm within the 1-AMI margin used for choices."""
SAMPLES = 4
"""Samples per side of the box: ``roi_align``'s 2 bins x 2 samples per bin."""


@dataclass(frozen=True)
class TileFeatureMaps:
    """The encoder levels of one tile, and where a tile pixel lands on each."""

    levels: tuple[np.ndarray, ...]  # level k: h_k x w_k x C_k float32 (channels last)
    strides: tuple[float, ...]  # tile px per feature px, per level
    mpp: float  # µm per tile px

    @property
    def dim(self) -> int:
        return sum(m.shape[2] for m in self.levels)

    def at(self, xy: np.ndarray) -> np.ndarray:
        """Tile features of nuclei centred at ``xy`` (n x 2, (x, y) tile px, pixel centres): n x dim float32."""
        return pool_levels(self.levels, self.strides, xy, box_px=TILE_BOX_UM / self.mpp)


def pool_levels(levels: tuple[np.ndarray, ...], strides: tuple[float, ...], xy: np.ndarray, *, box_px: float) -> np.ndarray:
    """Each level (h x w x C) averaged over the ``box_px`` square centred at each ``xy`` (tile
    px; a level pixel covers ``stride`` tile px), L2-normalised per level, concatenated."""
    dim = sum(m.shape[2] for m in levels)
    if len(xy) == 0:
        return np.zeros((0, dim), np.float32)
    centre = np.asarray(xy, np.float64) + 0.5  # pixel i covers [i, i + 1)
    offsets = (np.arange(SAMPLES) + 0.5) / SAMPLES * box_px - box_px / 2  # the samples' grid in the box
    n = len(centre)
    parts = []
    for level, stride in zip(levels, strides, strict=True):
        h, w, c = level.shape
        rows, wy = _bilinear((centre[:, 1, None] + offsets) / stride - 0.5, h)  # n x 2S each
        cols, wx = _bilinear((centre[:, 0, None] + offsets) / stride - 0.5, w)
        # the mean as one sparse (n x h*w) matrix, (2S)^2 weights per nucleus (repeated pixels
        # are summed), times the level
        pixel = (rows[:, :, None] * w + cols[:, None, :]).reshape(-1)
        weight = (wy[:, :, None] * wx[:, None, :]).reshape(-1).astype(np.float32) / SAMPLES**2
        matrix = scipy.sparse.csr_matrix((weight, pixel, np.arange(0, len(pixel) + 1, (2 * SAMPLES) ** 2)), shape=(n, h * w))
        mean = np.asarray(matrix @ level.reshape(h * w, c), np.float64)  # n x C
        parts.append(mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12))
    return np.concatenate(parts, axis=1).astype(np.float32)


def _bilinear(pos: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and weights (n x 2k each) of bilinear interpolation at the n x k feature-pixel
    positions ``pos`` along an axis of ``size`` pixels, with ``roi_align``'s border rules: a
    position more than one pixel outside weighs nothing, one within it is clamped."""
    outside = (pos < -1.0) | (pos > size)
    pos = np.maximum(pos, 0.0)
    low = np.minimum(np.floor(pos).astype(np.int64), size - 1)
    high = np.minimum(low + 1, size - 1)
    frac = np.where(low >= size - 1, 0.0, pos - low)
    keep = ~outside
    return np.concatenate([low, high], axis=1), np.concatenate([(1 - frac) * keep, frac * keep], axis=1)
