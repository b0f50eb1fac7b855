"""``method: hvnet``: the multi-task U-Net of ``hvnet.py`` + HoVer-Net's marker-controlled watershed.

The network's nucleus probability and horizontal/vertical maps are computed at 0.5 µm/px
(``hvnet-fine``: corrected by the full-resolution branch at 0.25 µm/px) and resized back to
the tile; ``hv_post.hv_instances`` turns them into instances at the tile's
resolution (sizes in µm); instances the network is unsure of are dropped when
``hv_min_object_probability`` asks for it, then the size filters of ``SegmentConfig`` apply
as for the watershed segmenter, and, with ``hv_annotator_threshold``, the instances a
learned filter says no annotator would have outlined (``annotator_filter.py``). The same
network call gives the tile features of ``tile_features.py`` (:meth:`segment_with_features`).
"""

from __future__ import annotations

import numpy as np

from wsicell.segment.annotator_filter import (
    FILTER_PATHS,
    AnnotatorFilter,
    count_doubted,
    doubting_filter,
    drop_unannotated,
)
from wsicell.segment.base import Segmenter
from wsicell.segment.config import SegmentConfig
from wsicell.segment.hv_post import drop_unsure, hv_instances
from wsicell.segment.hvnet import FINE_WEIGHTS_PATH, WEIGHTS_PATH, HVNetModel
from wsicell.segment.tile_features import TileFeatureMaps
from wsicell.segment.watershed import check_image, filter_sizes
from wsicell.types import LabelImage, RGBImage


class HVNetSegmenter(Segmenter):
    def __init__(self, config: SegmentConfig | None = None) -> None:
        self.config = config or SegmentConfig(method="hvnet")
        self.name = self.config.method  # hvnet or hvnet-fine
        self.max_nucleus_um = self.config.max_diameter_um
        self._model: HVNetModel | None = None
        self._filter: AnnotatorFilter | None = None

    @property
    def model(self) -> HVNetModel:
        """The network (loaded on first use)."""
        if self._model is None:
            weights = FINE_WEIGHTS_PATH if self.config.method == "hvnet-fine" else WEIGHTS_PATH
            self._model = HVNetModel(weights, precision=self.config.precision, runtime=self.config.runtime,
                                     flips=self.config.hv_flips)  # fmt: skip
        return self._model

    def segment(self, image: RGBImage, *, mpp: float) -> LabelImage:
        return self.segment_with_features(image, mpp=mpp)[0]

    def segment_with_features(self, image: RGBImage, *, mpp: float) -> tuple[LabelImage, TileFeatureMaps]:
        check_image(image, mpp)
        c = self.config
        (prob, h, v), features = self.model.maps_and_features(image, mpp=mpp)
        labels = hv_instances(
            prob, h, v, mpp=mpp, threshold=c.hv_threshold, marker_threshold=c.hv_marker_threshold
        )
        labels = drop_unsure(labels, prob, c.hv_min_object_probability)
        labels = filter_sizes(
            labels,
            min_px=c.min_area_um2 / mpp**2,
            max_px=c.max_area_um2 / mpp**2,
            max_side_px=c.max_diameter_um / mpp,
        )
        if c.hv_annotator_threshold > 0:
            labels = drop_unannotated(labels, image, features, mpp=mpp, keep=self.annotator_filter,
                                      threshold=c.hv_annotator_threshold)  # fmt: skip
        return labels, features

    def count_doubted(self, *, features: np.ndarray, tile_features: np.ndarray) -> int | None:
        if doubting_filter(self.config.method, self.config.hv_annotator_threshold) is None:
            return None
        return count_doubted(self.annotator_filter, features=features, tile_features=tile_features)

    @property
    def annotator_filter(self) -> AnnotatorFilter:
        """This method's shipped filter (``annotator_filter.py``), loaded on first use."""
        if self._filter is None:
            self._filter = AnnotatorFilter.load(FILTER_PATHS[self.config.method])
        return self._filter
