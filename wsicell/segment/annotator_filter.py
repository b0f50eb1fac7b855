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

The same filter also checks a slide's segmentation without dropping anything: with the
filter off, extraction counts the nuclei it *doubts* (P(annotated) < ``DOUBT_BELOW``) from the
measurements and tile features it stores anyway (:func:`count_doubted`). Per labelled image,
the share doubted falls as the share of the image's nuclei that are real rises (Spearman
-0.62 on the 8 held-out images, -0.68 on CoNSeP test; ``benchmarks/segment_doubted.py``): a
share above ``DOUBTED_SHARE_HIGH`` says the slide is worth a look (docs/segmentation.md).

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
DOUBT_BELOW = 0.5
"""P(annotated) under which a nucleus counts as doubted: the logistic regression's own boundary."""
DOUBTED_SHARE_HIGH = 0.10
"""A slide's share of doubted nuclei above which its segmentation is worth a look. Chosen on
the held-out images (the filter drops 8-9 % of their nuclei; those above 10 % had a
precision of 0.76-0.88, median 0.89 for the rest); on CoNSeP test, which chose nothing, the
two images above it had 0.73 and 0.76 against a median of 0.89 (docs/segmentation.md)."""


@dataclass(frozen=True)
class AnnotatorFilter:
    """A logistic regression on standardised descriptions (measurements, then tile features)."""

    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    coef: np.ndarray  # (D,)
    intercept: float

    def probability(self, x: np.ndarray) -> np.ndarray:
        """P(annotated) of each row of ``x`` (n x D; NaN read as 0), in ``x``'s float precision
        (at least float32). The standardisation is folded into the weights, so no standardised
        copy of ``x`` is made (under half the time of standardising it first)."""
        x = np.nan_to_num(np.asarray(x, np.result_type(np.asarray(x).dtype, np.float32)))
        weights = self.coef / self.scale
        z = x @ weights.astype(x.dtype) + (self.intercept - float((self.mean / self.scale) @ self.coef))
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
    return ids, descriptions(cells.features, maps.at(cells.centroid.astype(np.float64) - 0.5))


def doubting_filter(method: str, threshold: float) -> Path | None:
    """The filter whose doubts count for nuclei that ``method`` found with
    ``hv_annotator_threshold`` ``threshold``: None for a method without one (the watershed),
    or when that filter already dropped the doubted ones (``threshold`` > 0)."""
    return FILTER_PATHS.get(method) if threshold <= 0 else None


def doubted_share(doubted: int | None, n_cells: int) -> float | None:
    """The share of a slide's nuclei its segmenter's annotator filter doubts (None: not counted,
    or no nuclei)."""
    return None if doubted is None or n_cells == 0 else doubted / n_cells


def descriptions(features: np.ndarray, tile_features: np.ndarray) -> np.ndarray:
    """n x D float32 rows the filter reads: the 30 measurements (NaN as 0), then the tile features."""
    return np.concatenate([np.nan_to_num(np.asarray(features, np.float32)), np.asarray(tile_features, np.float32)], axis=1)


def count_doubted(keep: AnnotatorFilter, *, features: np.ndarray, tile_features: np.ndarray) -> int:
    """How many nuclei (rows of their measurements and tile features, as the store keeps
    them) have P(annotated) < ``DOUBT_BELOW``."""
    if len(features) == 0:
        return 0
    return int((keep.probability(descriptions(features, tile_features)) < DOUBT_BELOW).sum())


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
