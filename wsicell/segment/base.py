"""The segmenter interface (``factory.make_segmenter`` builds one from a config)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from wsicell.segment.tile_features import TileFeatureMaps
from wsicell.types import LabelImage, RGBImage


class Segmenter(ABC):
    """Finds nuclei in an RGB tile."""

    name: str
    max_nucleus_um: float
    """Largest nucleus extent (µm) it can return: tiles must overlap by at least this."""

    @abstractmethod
    def segment(self, image: RGBImage, *, mpp: float) -> LabelImage:
        """Instance labels of ``image`` (HxWx3 uint8 at ``mpp`` µm/px): HxW int32, 0 = background."""

    def segment_with_features(self, image: RGBImage, *, mpp: float) -> tuple[LabelImage, TileFeatureMaps | None]:
        """:meth:`segment`'s labels and, for a segmenter with an encoder (the HV-nets), its
        tile features from the same network call (``tile_features.py``); None otherwise."""
        return self.segment(image, mpp=mpp), None

    def count_doubted(self, *, features: np.ndarray, tile_features: np.ndarray) -> int | None:
        """How many of these nuclei (their measurements and tile features) its annotator
        filter doubts (``annotator_filter.count_doubted``); None when it has no such check, or
        when the filter already dropped the doubted ones."""
        return None
