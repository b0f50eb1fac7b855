"""Nucleus segmentation and the per-cell crop & measurement rule.

``make_segmenter(SegmentConfig())`` -> a :class:`Segmenter` (``segment(image, mpp=...)``
returns instance labels); ``cells_from_labels`` turns a labelled tile into a
:class:`wsicell.store.CellBatch`.
"""

from wsicell.segment.base import Segmenter
from wsicell.segment.cells import CONTOUR_POINTS, FEATURE_NAMES, cells_from_labels
from wsicell.segment.config import SegmentConfig
from wsicell.segment.factory import make_segmenter

__all__ = [
    "CONTOUR_POINTS",
    "FEATURE_NAMES",
    "SegmentConfig",
    "Segmenter",
    "cells_from_labels",
    "make_segmenter",
]
