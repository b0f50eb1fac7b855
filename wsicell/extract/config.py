"""Settings of extraction. They are recorded in the store; a store holds one set."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from wsicell.io.tissue import TISSUE_METHODS
from wsicell.segment.config import SegmentConfig

CONTEXT_UM = 4.0
"""Extra overlap beyond the largest nucleus and its crop window, for smoothing/seeding context."""


@dataclass(frozen=True)
class ExtractConfig:
    """How slides are cut, filtered and segmented.

    Sizes in pixels are on the working grid at ``mpp`` µm/px.
    """

    mpp: float = 0.5
    """Working resolution (µm/px): the best pyramid level is read and resampled to it."""
    tile_size: int = 1024
    """Side of a segmented tile, overlap included (working px)."""
    overlap: int | None = None
    """Overlap on each side (working px); None derives it from the segmenter's largest
    nucleus and ``window_scale`` (see :meth:`overlap_px`)."""
    tissue_method: Literal["hsv", "otsu", "none"] = "hsv"
    """Tissue detection: HSV rule of Ciga et al. Appendix B, Otsu, or none (everything)."""
    tissue_mpp: float = 8.0
    """Resolution of the tissue mask (µm/px)."""
    tissue_margin_um: float = 50.0
    """Dilation of the tissue mask, so nuclei at tissue edges are kept."""
    crop_size: int = 32
    """Side of each nucleus crop in the store (px)."""
    window_scale: float = 2.0
    """Crop window side = this x the nucleus's larger bounding-box side."""
    region: tuple[int, int, int, int] | None = None
    """Only this level-0 box (x0, y0, x1, y1) of each slide (tests, benchmarks); None = all."""
    segment: SegmentConfig = field(default_factory=SegmentConfig)

    def __post_init__(self) -> None:
        if not (0.05 <= self.mpp <= 20):
            raise ValueError(f"mpp must be within 0.05-20 µm/px, got {self.mpp}")
        if not (64 <= self.tile_size <= 16384):
            raise ValueError(f"tile_size must be within 64-16384 px, got {self.tile_size}")
        if self.overlap is not None and not (0 <= 2 * self.overlap < self.tile_size):
            raise ValueError(f"overlap must be >= 0 and < tile_size / 2, got {self.overlap}")
        if self.tissue_method not in TISSUE_METHODS:
            raise ValueError(f"tissue_method must be one of {', '.join(TISSUE_METHODS)}")
        if not (self.tissue_mpp > 0 and self.tissue_margin_um >= 0):
            raise ValueError("tissue_mpp must be > 0 and tissue_margin_um >= 0")
        if not (8 <= self.crop_size <= 512):
            raise ValueError(f"crop_size must be within 8-512 px, got {self.crop_size}")
        if not (0.5 <= self.window_scale <= 8):
            raise ValueError(f"window_scale must be within 0.5-8, got {self.window_scale}")
        if self.region is not None:
            x0, y0, x1, y1 = self.region
            if not (0 <= x0 < x1 and 0 <= y0 < y1):
                raise ValueError(f"region must be (x0, y0, x1, y1) with 0 <= x0 < x1, 0 <= y0 < y1, got {self.region}")
        if not isinstance(self.segment, SegmentConfig):
            raise ValueError("segment must be a SegmentConfig")

    def overlap_px(self, max_nucleus_um: float) -> int:
        """Overlap per side: larger than the largest nucleus plus half its crop window.

        A nucleus whose centroid is in a core then lies wholly inside the tile, and so
        does its crop window (``window_scale`` x its size, centred on it).
        """
        if self.overlap is not None:
            return self.overlap
        um = max_nucleus_um * (1.0 + self.window_scale / 2.0) + CONTEXT_UM
        return math.ceil(um / self.mpp)

    def check_tile(self, max_nucleus_um: float) -> None:
        """A ValueError if the tile leaves too little core at this overlap."""
        ov = self.overlap_px(max_nucleus_um)
        if self.tile_size - 2 * ov < 32:
            raise ValueError(
                f"tile_size {self.tile_size} is too small for an overlap of {ov} px per side "
                f"(largest nucleus {max_nucleus_um:g} µm at {self.mpp:g} µm/px); use >= {2 * ov + 256}"
            )
