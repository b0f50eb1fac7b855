"""Tissue detection on a low-resolution view of a slide.

Two rules, both on an RGB image at ``tissue_mpp`` µm/px (8 by default):

* ``hsv`` — the foreground rule of Ciga et al. (SimCLR for histopathology, Appendix B):
  0.5 < hue < 0.65, saturation > 0.1, 0.5 < value < 0.9. Those numbers are on OpenCV's
  8-bit HSV scale divided by 255 (hue 0-179 stored in a byte): in hue-in-[0, 1] units the
  band is 0.708-0.921, the purple-pink of H&E. (On a true [0, 1] hue scale 0.5-0.65 is
  cyan-blue and selects ~0.5 % of the bundled H&E sample; measured, see tests.)
* ``otsu`` — Otsu's threshold on grey levels; darker than the threshold is tissue.
* ``none`` — everything is tissue.

The raw rule is then closed (fills nuclei/lumen holes) and dilated by ``margin_um`` so a
nucleus at a tissue edge is never missed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from wsicell.io.slide import Slide
from wsicell.types import Mask, RGBImage

TissueMethod = Literal["hsv", "otsu", "none"]
TISSUE_METHODS = ("hsv", "otsu", "none")

HSV_HUE = (0.5, 0.65)
HSV_MIN_SATURATION = 0.1
HSV_VALUE = (0.5, 0.9)


@dataclass(frozen=True)
class TissueMask:
    """A boolean mask over the whole slide; mask pixel (i, j) covers level-0
    ``[j*downsample, (j+1)*downsample) x [i*downsample, (i+1)*downsample)``."""

    mask: Mask  # (h, w) bool
    downsample: float  # level-0 pixels per mask pixel
    area_mm2: float = float("nan")  # tissue before the margin's dilation (NaN: not measured)

    @property
    def fraction(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0

    def window(self, bounds: tuple[float, float, float, float]) -> tuple[Mask, tuple[int, int]]:
        """The mask pixels touching level-0 ``bounds`` (x0, y0, x1, y1) and their (col, row) origin."""
        x0, y0, x1, y1 = bounds
        d = self.downsample
        h, w = self.mask.shape
        c0 = min(max(math.floor(x0 / d), 0), w)
        r0 = min(max(math.floor(y0 / d), 0), h)
        c1 = min(max(math.ceil(x1 / d), c0), w)
        r1 = min(max(math.ceil(y1 / d), r0), h)
        return self.mask[r0:r1, c0:c1], (c0, r0)


def hsv_foreground(image: RGBImage) -> Mask:
    """The Ciga et al. Appendix B rule on an RGB uint8 image."""
    hsv = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2HSV).astype(np.float32) / 255.0
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    return (
        (hue > HSV_HUE[0]) & (hue < HSV_HUE[1]) & (sat > HSV_MIN_SATURATION)
        & (val > HSV_VALUE[0]) & (val < HSV_VALUE[1])
    )  # fmt: skip


def otsu_foreground(image: RGBImage) -> Mask:
    """Pixels darker than Otsu's grey-level threshold (never counting pure white)."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if grey.min() >= 250 or grey.max() - grey.min() < 10:  # blank: no contrast, no tissue
        return np.zeros(grey.shape, bool)
    threshold, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return grey < min(threshold, 245)


def detect_tissue(
    slide: Slide, *, method: TissueMethod = "hsv", tissue_mpp: float = 8.0, margin_um: float = 50.0
) -> TissueMask:
    """The dilated tissue mask of ``slide`` at ``tissue_mpp`` µm/px (or the slide's own
    resolution if it is coarser)."""
    if method not in TISSUE_METHODS:
        raise ValueError(f"tissue method must be one of {', '.join(TISSUE_METHODS)}, got {method!r}")
    mpp = max(tissue_mpp, slide.mpp)
    w, h = slide.grid_size(mpp)
    downsample = slide.grid_scale(mpp)
    pixel_mm2 = (downsample * slide.mpp / 1000.0) ** 2  # one mask pixel
    if method == "none":
        return TissueMask(np.ones((h, w), bool), downsample, float(w * h * pixel_mm2))
    image = slide.read_grid((0, 0), (w, h), mpp=mpp)
    raw = hsv_foreground(image) if method == "hsv" else otsu_foreground(image)
    close = _disk(max(1, round(10.0 / mpp)))  # 10 µm: fill holes between stained structures
    mask = cv2.morphologyEx(raw.astype(np.uint8), cv2.MORPH_CLOSE, close)
    area_mm2 = float(np.count_nonzero(mask) * pixel_mm2)  # what densities are per (no margin)
    radius = math.ceil(margin_um / mpp)
    if radius > 0:
        mask = cv2.dilate(mask, _disk(radius))
    return TissueMask(mask.astype(bool), downsample, area_mm2)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
