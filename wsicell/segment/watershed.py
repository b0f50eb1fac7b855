"""``method: watershed`` (the default before the HV-net): foreground mask + distance-transform watershed.

Modelled on QuPath's built-in cell detection. The foreground is either a small U-Net
(``unet.py``, torch, trained on CoNSeP train; the default foreground, ``foreground: cnn``), the
in-project pixel classifier (``pixels.py``: filter bank + tiny MLP, trained on CoNSeP train)
or a threshold on the haematoxylin optical density (Otsu over tissue, QuPath-like). Touching
nuclei are split by a watershed of the distance transform (plus, with the classifier, its
"nucleus interior" probability), seeded at its maxima. Everything is OpenCV/numpy on the
whole tile except the watershed itself (scikit-image), which runs only over the pixels of
objects holding two or more seeds.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.segmentation import watershed

from wsicell.segment.base import Segmenter
from wsicell.segment.config import SegmentConfig
from wsicell.segment.pixels import PixelClassifier
from wsicell.segment.stain import haematoxylin
from wsicell.segment.unet import UNetForeground
from wsicell.types import LabelImage, RGBImage

TISSUE_OD = 0.15
"""Pixels with more total optical density than this count as tissue (for Otsu)."""


class WatershedSegmenter(Segmenter):
    name = "watershed"

    def __init__(self, config: SegmentConfig | None = None) -> None:
        self.config = config or SegmentConfig(method="watershed")
        self.max_nucleus_um = self.config.max_diameter_um
        self._classifier: PixelClassifier | UNetForeground | None = None

    @property
    def classifier(self) -> PixelClassifier | UNetForeground:
        """The nucleus/interior probability model (loaded on first use)."""
        if self._classifier is None:
            if self.config.foreground == "cnn":
                self._classifier = UNetForeground(precision=self.config.precision)
            else:
                self._classifier = PixelClassifier.default()
        return self._classifier

    def segment(self, image: RGBImage, *, mpp: float) -> LabelImage:
        check_image(image, mpp)
        c = self.config
        if c.foreground in ("classifier", "cnn"):
            prob = self.classifier.probability(image, mpp=mpp)  # 2xHxW: nucleus, interior
            mask = (prob[0] > c.probability_threshold).astype(np.uint8)
            extra = c.interior_weight * _blur(prob[1], 0.25 / mpp) if c.interior_weight else None
        else:
            h = _blur(haematoxylin(image), c.smooth_sigma_um / mpp)  # HxW optical density
            threshold = c.threshold or max(otsu_on_tissue(image, h), c.min_threshold)
            mask = (h > threshold).astype(np.uint8)
            extra = None
        radius = round(c.open_radius_um / mpp)
        if radius >= 1:
            mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disk(radius))
        mask = fill_holes(mask)
        min_px = c.min_area_um2 / mpp**2
        n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
        small = stats[:, cv2.CC_STAT_AREA] < min_px
        small[0] = True
        if small.any():
            comp[small[comp]] = 0
        mask = (comp > 0).astype(np.uint8)
        dist_um = _blur(distance_to_background(mask), c.distance_smooth_um / mpp) * mpp
        landscape = dist_um if extra is None else dist_um + extra
        labels = split_touching(
            comp,
            n,
            landscape=landscape,
            seed_ok=dist_um >= c.peak_min_height_um,
            min_distance_px=c.peak_min_distance_um / mpp,
        )
        return filter_sizes(
            labels,
            min_px=min_px,
            max_px=c.max_area_um2 / mpp**2,
            max_side_px=c.max_diameter_um / mpp,
        )


def check_image(image: np.ndarray, mpp: float) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
    if not mpp > 0:
        raise ValueError(f"mpp must be > 0, got {mpp}")


def otsu_on_tissue(image: RGBImage, h: np.ndarray) -> float:
    """Otsu's threshold of the haematoxylin density over tissue pixels (0 if none)."""
    tissue = h[image.min(axis=2) < 255 * 10 ** (-TISSUE_OD)]
    if tissue.size < 64:
        return 0.0
    values = np.clip(tissue, 0.0, 2.0)
    hist, edges = np.histogram(values, bins=256, range=(0.0, 2.0))
    return float(threshold_otsu(hist=(hist, (edges[:-1] + edges[1:]) / 2)))


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of every object of a uint8 0/1 mask."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled


def distance_to_background(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (px) of each mask pixel to the nearest background pixel, counting
    the outside of the tile as background (so a full mask still has finite distances)."""
    padded = cv2.copyMakeBorder(mask, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]


def split_touching(
    comp: np.ndarray,
    n_comp: int,
    *,
    landscape: np.ndarray,
    seed_ok: np.ndarray,
    min_distance_px: float,
) -> np.ndarray:
    """Split the objects of ``comp`` (HxW int32 connected components, ``n_comp`` labels
    including background) by a watershed of ``-landscape`` seeded at the landscape's local
    maxima that are ``min_distance_px`` apart and where ``seed_ok``. Objects with one seed
    or none stay whole. Returns HxW int32 labels."""
    radius = max(1, round(min_distance_px))
    peaks = (landscape >= cv2.dilate(landscape, _disk(radius))) & seed_ok & (comp > 0)
    n_seeds, seeds = cv2.connectedComponents(peaks.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    labels = comp.astype(np.int32, copy=True)
    if n_seeds <= 2:
        return labels
    ys, xs = np.nonzero(seeds)
    seed_comp = np.zeros(n_seeds, np.int64)
    seed_comp[seeds[ys, xs]] = comp[ys, xs]  # the object each seed lies in
    per_comp = np.bincount(seed_comp[1:], minlength=n_comp)
    per_comp[0] = 0
    is_multi = per_comp >= 2
    if not is_multi.any():
        return labels
    # one watershed call over the pixels of the multi-seed objects only
    region = is_multi[comp]
    markers = np.where(region, seeds, 0)
    split = watershed(-landscape, markers, mask=region)
    labels[region] = split[region] + n_comp  # seed ids are unique: new labels
    return labels


def filter_sizes(labels: np.ndarray, *, min_px: float, max_px: float, max_side_px: float) -> LabelImage:
    """Drop objects outside the size limits; relabel the rest 1..n."""
    if labels.max() == 0:
        return np.zeros(labels.shape, np.int32)
    areas = np.bincount(labels.ravel())
    keep = (areas >= min_px) & (areas <= max_px)
    keep[0] = False
    for i, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is not None and keep[i]:
            hh, ww = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
            if max(hh, ww) > max_side_px:
                keep[i] = False
    lut = np.zeros(len(areas), np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    if sigma < 0.3:
        return x
    return cv2.GaussianBlur(x, (0, 0), sigma)


def _disk(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
