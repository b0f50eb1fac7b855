"""Colour deconvolution of H&E (Ruifrok & Johnston 2001) with numpy/OpenCV."""

from __future__ import annotations

import numpy as np

from wsicell.types import RGBImage

RGB_FROM_HED = np.array(
    [
        [0.65, 0.70, 0.29],  # haematoxylin
        [0.07, 0.99, 0.11],  # eosin
        [0.27, 0.57, 0.78],  # DAB (the third, residual channel)
    ]
)
RGB_FROM_HED = RGB_FROM_HED / np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED).astype(np.float32)  # od (.., 3) @ this -> (.., 3) stains

OD_LUT = (-np.log10((np.arange(256, dtype=np.float64) + 1.0) / 256.0)).astype(np.float32)
"""Optical density of each 8-bit value: 0 for white (255), ~2.4 for black."""


def optical_density(pixels: np.ndarray) -> np.ndarray:
    """Optical density of uint8 RGB values, same shape, float32."""
    return OD_LUT[pixels]


def stain_densities(pixels: np.ndarray) -> np.ndarray:
    """(.., 3) uint8 RGB -> (.., 3) float32 haematoxylin, eosin, residual optical densities."""
    od = optical_density(pixels)
    return od @ HED_FROM_RGB


def haematoxylin(image: RGBImage) -> np.ndarray:
    """HxW float32 haematoxylin optical density of an HxWx3 uint8 RGB image."""
    od = optical_density(image)  # HxWx3
    w = HED_FROM_RGB[:, 0]
    return od[..., 0] * w[0] + od[..., 1] * w[1] + od[..., 2] * w[2]
