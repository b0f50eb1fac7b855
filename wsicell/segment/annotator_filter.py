"""A learned filter of the HV-nets' nuclei: would an annotator have outlined this one?

The HV-nets find nuclei that the annotators of CoNSeP and MoNuSeg left out: faint,
out-of-focus or tangentially cut ones (docs/segmentation.md, "Where the errors come from").
The filter describes each instance by its 30 measurements (``cells.FEATURE_NAMES``) and its
tile features (``tile_features.py``), and a logistic regression trained on the labelled
training images (``python -m wsicell.segment.train_annotator_filter``) gives the probability
that a labelled nucleus lies within 3 µm of it. ``SegmentConfig.hv_annotator_threshold``
drops instances below it (0 = off, the default; ``configs/extract-quality.yaml`` uses 0.5).
One filter per HV method, fitted on that method's nuclei (``FILTER_PATHS``); weights are
plain arrays in a ``.npz`` (no pickle). Trained on MoNuSeg labels: CC BY-NC-SA 4.0, as the
networks' weights.

What it costs: it measures every instance once more (``cells_from_labels``) before
extraction measures the kept ones, ~10 % of a tile's time; and it drops real nuclei too
(measured per cell type on CoNSeP: docs/segmentation.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsicell.segment.cells import cells_from_labels, label_ids_in_order
from wsicell.segment.tile_features import TileFeatureMaps
from wsicell.types import LabelImage, PathLikeStr, RGBImage

FILTER_PATHS = {
    "hvnet": Path(__file__).with_name("annotator_filter_hvnet.npz"),
    "hvnet-fine": Path(__file__).with_name("annotator_filter_hvnet-fine.npz"),
}
"""The shipped filter of each HV method (fitted on its nuclei with the flips its preset uses)."""


@dataclass(frozen=True)
class AnnotatorFilter:
    """A logistic regression on standardised descriptions (measurements, then tile features)."""

    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    coef: np.ndarray  # (D,)
    intercept: float

    def probability(self, x: np.ndarray) -> np.ndarray:
        """P(annotated) of each row of ``x`` (n x D)."""
        z = ((np.nan_to_num(np.asarray(x, np.float64)) - self.mean) / self.scale) @ self.coef + self.intercept
        return 1 / (1 + np.exp(-z))

    def save(self, path: PathLikeStr) -> None:
        np.savez(path, mean=self.mean, scale=self.scale, coef=self.coef, intercept=np.float64(self.intercept))

    @classmethod
    def load(cls, path: PathLikeStr) -> AnnotatorFilter:
        with np.load(path, allow_pickle=False) as data:
            return cls(mean=data["mean"], scale=data["scale"], coef=data["coef"], intercept=float(data["intercept"]))


def describe(image: RGBImage, labels: LabelImage, maps: TileFeatureMaps, *, mpp: float) -> tuple[np.ndarray, np.ndarray]:
    """(ids, n x D descriptions) of the instances of ``labels``: measurements, then tile features."""
    ids = label_ids_in_order(labels)
    if len(ids) == 0:
        return ids, np.zeros((0, 0))
    cells = cells_from_labels(image, labels, mpp=mpp, origin=(0, 0), scale=1.0)  # rows in the order of ids
    tile = maps.at(cells.centroid.astype(np.float64) - 0.5)
    return ids, np.concatenate([np.nan_to_num(cells.features.astype(np.float64)), tile], axis=1)


def drop_unannotated(
    labels: LabelImage, image: RGBImage, maps: TileFeatureMaps, *, mpp: float, keep: AnnotatorFilter, threshold: float
) -> LabelImage:
    """``labels`` without the instances whose P(annotated) is below ``threshold`` (ids kept)."""
    if threshold <= 0 or not labels.any():
        return labels
    ids, x = describe(image, labels, maps, mpp=mpp)
    drop = ids[keep.probability(x) < threshold]
    if len(drop) == 0:
        return labels
    lookup = np.zeros(int(labels.max()) + 1, bool)
    lookup[drop] = True
    return np.where(lookup[labels], 0, labels).astype(labels.dtype)
