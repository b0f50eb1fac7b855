"""The segmenter interface and its factory."""

from __future__ import annotations

from abc import ABC, abstractmethod

from wsicell.segment.config import HV_METHODS, SegmentConfig
from wsicell.types import LabelImage, RGBImage


class Segmenter(ABC):
    """Finds nuclei in an RGB tile."""

    name: str
    max_nucleus_um: float
    """Largest nucleus extent (µm) it can return: tiles must overlap by at least this."""

    @abstractmethod
    def segment(self, image: RGBImage, *, mpp: float) -> LabelImage:
        """Instance labels of ``image`` (HxWx3 uint8 at ``mpp`` µm/px): HxW int32, 0 = background."""


def make_segmenter(config: SegmentConfig) -> Segmenter:
    """The segmenter ``config.method`` names (tiatoolbox is imported only when asked for)."""
    if config.method == "watershed":
        from wsicell.segment.watershed import WatershedSegmenter

        return WatershedSegmenter(config)
    if config.method in HV_METHODS:
        from wsicell.segment.hv_segmenter import HVNetSegmenter

        return HVNetSegmenter(config)
    if config.method == "tiatoolbox":
        from wsicell.segment.tiatoolbox import TiatoolboxSegmenter

        return TiatoolboxSegmenter(config)
    raise ValueError(f"unknown segmentation method {config.method!r}")  # config validates first
