"""One automatic haematoxylin threshold per slide.

The watershed segmenter's automatic threshold (``SegmentConfig.threshold == 0``) is Otsu's
over the tile being segmented. Within a slide that would make a nucleus' outline depend on
how the slide is cut into tiles; extraction therefore resolves it once per slide, from a
fixed, evenly spread sample of tissue windows, and segments every tile with that value.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from wsicell.io.slide import Slide
from wsicell.io.tissue import TissueMask
from wsicell.segment.config import SegmentConfig
from wsicell.segment.stain import haematoxylin
from wsicell.segment.watershed import otsu_on_tissue

SAMPLE_WINDOWS = 8
WINDOW = 512  # working px


def uses_threshold(config: SegmentConfig) -> bool:
    """Whether the segmenter thresholds haematoxylin (rather than a pixel classifier)."""
    return config.method == "watershed" and getattr(config, "foreground", "haematoxylin") == "haematoxylin"


def resolve_threshold(slide: Slide, config: SegmentConfig, *, mpp: float, tissue: TissueMask) -> SegmentConfig:
    """``config`` with a fixed threshold (unchanged if it already has one or is not watershed)."""
    if not uses_threshold(config) or config.threshold > 0:
        return config
    rows, cols = np.nonzero(tissue.mask)
    if len(rows) == 0:
        return dataclasses.replace(config, threshold=config.min_threshold)
    picks = np.linspace(0, len(rows) - 1, min(SAMPLE_WINDOWS, len(rows))).round().astype(int)
    scale = slide.grid_scale(mpp)
    images, densities = [], []
    for i in picks:
        cx = (cols[i] + 0.5) * tissue.downsample / scale  # working px
        cy = (rows[i] + 0.5) * tissue.downsample / scale
        image = slide.read_grid((int(cx) - WINDOW // 2, int(cy) - WINDOW // 2), (WINDOW, WINDOW), mpp=mpp)
        h = haematoxylin(image)
        sigma = config.smooth_sigma_um / mpp
        if sigma >= 0.3:
            h = cv2.GaussianBlur(h, (0, 0), sigma)
        images.append(image)
        densities.append(h)
    otsu = otsu_on_tissue(np.concatenate(images), np.concatenate(densities))
    return dataclasses.replace(config, threshold=max(otsu, config.min_threshold))
