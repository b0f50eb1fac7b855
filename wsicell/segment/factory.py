"""The segmenter a config names: the one place that knows every implementation."""

from __future__ import annotations

from wsicell.segment.base import Segmenter
from wsicell.segment.config import HV_METHODS, SegmentConfig


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
