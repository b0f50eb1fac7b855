"""The crop & measurement rule: labelled tile -> per-cell crops, geometry and features.

Shared by extraction (segmenter output) and by evaluation (CoNSeP instance masks), so both
see cells the same way. Conventions:

- Tile pixel (col j, row i) covers level-0 ``[ox + j*scale, ox + (j+1)*scale)`` in x
  (likewise y); a pixel's centre is at tile coordinate ``j + 0.5``.
- Centroid = mean of the nucleus' pixel centres, in level-0 px.
- Contour = the outer boundary traced through boundary-pixel centres (OpenCV), pushed
  outward by half a pixel to the pixel edges, resampled to ``CONTOUR_POINTS`` points equally
  spaced along its length, counter-clockwise in image coordinates, first point not repeated.
  If that polygon is not valid (thin or 1-pixel objects), the un-offset contour, then the
  convex hull, then a disc of the nucleus' area around the centroid is used instead.
- Bbox = level-0 ``(x0, y0, x1, y1)``, half-open, covering the nucleus' pixels (floor/ceil).
- Crop: a square window centred on the centroid, side = ``window_scale`` x the longer bbox
  side (at least ``MIN_WINDOW_PX`` tile px), cut from the tile; where it leaves the tile the
  tile's border pixels are replicated (``cv2.BORDER_REPLICATE``: no artificial white/black
  frame for the contrastive model to latch onto); resized to ``crop_size`` (INTER_AREA when
  shrinking, INTER_LINEAR when enlarging).
- Rows are sorted by centroid y, then x.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import shapely
from scipy import ndimage

from wsicell import geometry
from wsicell.segment.stain import stain_densities
from wsicell.store import CellBatch
from wsicell.types import Bounds, LabelImage, RGBImage

CONTOUR_POINTS = 32
"""Every contour is resampled to this many (x, y) points."""

MIN_WINDOW_PX = 4
"""Smallest crop window side, in tile pixels."""

FEATURE_NAMES: tuple[str, ...] = (
    # shape (physical units; lengths in µm, areas in µm², angles in degrees)
    "area_um2",  # pixel count x mpp²
    "perimeter_um",  # length of the (pixel-edge, resampled) contour polygon
    "convex_area_um2",  # area of that polygon's convex hull
    "equivalent_diameter_um",  # diameter of the disc of the same area
    "major_axis_um",  # 4 sqrt(largest eigenvalue of the pixel covariance), as scikit-image
    "minor_axis_um",
    "max_feret_um",  # longest distance between two boundary-pixel centres + 1 px
    "eccentricity",  # of the ellipse with the same second moments, 0 = circle
    "orientation_deg",  # major axis angle from +x towards +y (image down), in [-90, 90]
    "aspect_ratio",  # major / minor axis
    "circularity",  # 4 pi area / perimeter²
    "roundness",  # 4 area / (pi major²)
    "solidity",  # area / convex area
    "convexity",  # convex hull perimeter / perimeter (of the contour polygon)
    "extent",  # area / bbox area
    # stain (Ruifrok-Johnston colour deconvolution, optical density)
    "haematoxylin_od_mean",
    "haematoxylin_od_std",
    "haematoxylin_od_max",
    "eosin_od_mean",
    "eosin_od_std",
    # colour (0-255 RGB, HSV: hue in degrees, saturation/value in 0-1)
    "red_mean",
    "green_mean",
    "blue_mean",
    "red_std",
    "green_std",
    "blue_std",
    "hue_mean_deg",  # circular mean
    "saturation_mean",
    "value_mean",
    "value_std",
)


def cells_from_labels(
    image: RGBImage,
    labels: LabelImage,
    *,
    mpp: float,
    origin: tuple[float, float],
    scale: float,
    core: Bounds | None = None,
    crop_size: int = 32,
    window_scale: float = 2.0,
) -> CellBatch:
    """Crops, geometry (level-0 px) and features of the nuclei of one labelled tile.

    ``image``: HxWx3 uint8 at ``mpp`` µm/px; ``labels``: HxW integer instance labels
    (0 = background; ids need not be consecutive). ``origin``: level-0 (x, y) of the
    tile's top-left corner; ``scale``: level-0 px per tile px. Only nuclei whose centroid
    lies in ``core`` (tile-pixel bounds x0, y0, x1, y1, half-open; None = the whole tile)
    are kept.
    """
    _check(image, labels, mpp=mpp, scale=scale, crop_size=crop_size, window_scale=window_scale)
    labels = labels.astype(np.int32, copy=False)
    height, width = labels.shape
    flat = labels.ravel()
    fg = np.flatnonzero(flat)  # indices of foreground pixels
    if len(fg) == 0:
        return empty_batch(crop_size)
    lab = flat[fg]
    n_lab = int(lab.max()) + 1
    ys, xs = np.divmod(fg, width)
    area = np.bincount(lab, minlength=n_lab).astype(np.float64)
    ids = np.flatnonzero(area)
    ids = ids[ids > 0]
    a = area[ids]

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(lab, weights=values, minlength=n_lab)[ids] / a

    cx, cy = mean(xs.astype(np.float64)), mean(ys.astype(np.float64))  # pixel-centre coords
    keep = np.ones(len(ids), bool)
    if core is not None:
        x0, y0, x1, y1 = core
        px, py = cx + 0.5, cy + 0.5  # continuous tile coordinates
        keep = (px >= x0) & (px < x1) & (py >= y0) & (py < y1)
    order = np.lexsort((cx[keep], cy[keep]))
    sel = np.flatnonzero(keep)[order]  # positions in `ids`, in output order
    if len(sel) == 0:
        return empty_batch(crop_size)

    # second moments (+1/12: the pixel's own extent), for the ellipse features
    mu20 = mean(xs.astype(np.float64) ** 2) - cx**2 + 1 / 12
    mu02 = mean(ys.astype(np.float64) ** 2) - cy**2 + 1 / 12
    mu11 = mean(xs.astype(np.float64) * ys) - cx * cy
    half_tr = (mu20 + mu02) / 2
    root = np.sqrt(((mu20 - mu02) / 2) ** 2 + mu11**2)
    l1, l2 = half_tr + root, np.maximum(half_tr - root, 1e-12)
    major, minor = 4 * np.sqrt(l1), 4 * np.sqrt(l2)
    eccentricity = np.sqrt(np.clip(1 - l2 / l1, 0, 1))
    orientation = np.degrees(0.5 * np.arctan2(2 * mu11, mu20 - mu02))

    # colour and stain statistics over each nucleus' pixels
    pix = image.reshape(-1, 3)[fg]  # n_fg x 3 uint8
    stains = stain_densities(pix)  # n_fg x 3 float32
    rgb = pix.astype(np.float64)
    hsv = cv2.cvtColor(pix.reshape(-1, 1, 3), cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.float64)

    def mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = mean(values)
        return m, np.sqrt(np.maximum(mean(values**2) - m**2, 0))

    h_mean, h_std = mean_std(stains[:, 0].astype(np.float64))
    h_max = np.asarray(ndimage.maximum(stains[:, 0], lab, ids), np.float64)
    e_mean, e_std = mean_std(stains[:, 1].astype(np.float64))
    rgb_ms = [mean_std(rgb[:, k]) for k in range(3)]
    hue = np.radians(hsv[:, 0] * 2)  # OpenCV hue is 0-179 (degrees / 2)
    hue_mean = np.degrees(np.arctan2(mean(np.sin(hue)), mean(np.cos(hue)))) % 360
    sat_mean = mean(hsv[:, 1]) / 255
    val_mean, val_std = mean_std(hsv[:, 2] / 255)

    slices = ndimage.find_objects(labels)
    n = len(sel)
    crops = np.empty((n, crop_size, crop_size, 3), np.uint8)
    contours = np.empty((n, CONTOUR_POINTS, 2), np.float64)
    bbox_px = np.empty((n, 4), np.int64)  # tile px, half-open
    feret = np.empty(n)
    hulls: list[np.ndarray] = []
    for row, pos in enumerate(sel):
        label = int(ids[pos])
        sy, sx = slices[label - 1]
        bbox_px[row] = (sx.start, sy.start, sx.stop, sy.stop)
        sub = (labels[sy, sx] == label).astype(np.uint8)
        contour = _outer_contour(sub) + (sx.start, sy.start)  # m x 2, tile px (pixel centres)
        hull = cv2.convexHull(contour.astype(np.float32).reshape(-1, 1, 2)).reshape(-1, 2)
        feret[row] = _max_distance(hull) + 1
        contours[row] = _resample(contour, CONTOUR_POINTS)
        hulls.append(hull)
        side = max(window_scale * max(sx.stop - sx.start, sy.stop - sy.start), MIN_WINDOW_PX)
        crops[row] = _crop(image, cx[pos], cy[pos], side, crop_size)

    contours = _valid_polygons(contours, hulls, cx[sel], cy[sel], a[sel])
    polygons = shapely.polygons(contours)
    convex = shapely.convex_hull(polygons)
    perim = shapely.length(polygons)
    hull_area = np.maximum(shapely.area(convex), 1e-9)
    hull_perim = shapely.length(convex)
    s = sel
    mpp2 = mpp * mpp
    bw = (bbox_px[:, 2] - bbox_px[:, 0]).astype(np.float64)
    bh = (bbox_px[:, 3] - bbox_px[:, 1]).astype(np.float64)
    area_px = a[s]
    features = np.stack(
        [
            area_px * mpp2,
            perim * mpp,
            hull_area * mpp2,
            2 * np.sqrt(area_px / math.pi) * mpp,
            major[s] * mpp,
            minor[s] * mpp,
            feret * mpp,
            eccentricity[s],
            orientation[s],
            major[s] / minor[s],
            4 * math.pi * area_px / perim**2,
            4 * area_px / (math.pi * major[s] ** 2),
            np.minimum(area_px / hull_area, 1.0),
            np.minimum(hull_perim / perim, 1.0),
            area_px / (bw * bh),
            h_mean[s],
            h_std[s],
            h_max[s],
            e_mean[s],
            e_std[s],
            rgb_ms[0][0][s],
            rgb_ms[1][0][s],
            rgb_ms[2][0][s],
            rgb_ms[0][1][s],
            rgb_ms[1][1][s],
            rgb_ms[2][1][s],
            hue_mean[s],
            sat_mean[s],
            val_mean[s],
            val_std[s],
        ],
        axis=1,
    )
    ox, oy = origin
    offset = np.array([ox, oy], np.float64)
    centroid = offset + (np.stack([cx[s], cy[s]], axis=1) + 0.5) * scale
    contour_l0 = offset + (contours + 0.5) * scale
    bbox = np.empty((n, 4), np.int64)
    bbox[:, 0] = np.floor(np.round(ox + bbox_px[:, 0] * scale, 6))
    bbox[:, 1] = np.floor(np.round(oy + bbox_px[:, 1] * scale, 6))
    bbox[:, 2] = np.ceil(np.round(ox + bbox_px[:, 2] * scale, 6))
    bbox[:, 3] = np.ceil(np.round(oy + bbox_px[:, 3] * scale, 6))
    return CellBatch(
        crops=crops,
        centroid=centroid.astype(np.float32),
        contour=contour_l0.astype(np.float32),
        bbox=bbox.astype(np.int32),
        features=features.astype(np.float32),
    )


def label_ids_in_order(labels: LabelImage) -> np.ndarray:
    """The instance ids of ``labels`` in the order :func:`cells_from_labels` returns their
    cells (without ``core``): by centroid row, then column."""
    flat = np.asarray(labels).ravel()
    fg = np.flatnonzero(flat)
    if len(fg) == 0:
        return np.zeros(0, np.int64)
    lab = flat[fg].astype(np.int64)
    ys, xs = np.divmod(fg, labels.shape[1])
    area = np.bincount(lab).astype(np.float64)
    ids = np.flatnonzero(area)
    ids = ids[ids > 0]
    cx = np.bincount(lab, weights=xs.astype(np.float64))[ids] / area[ids]
    cy = np.bincount(lab, weights=ys.astype(np.float64))[ids] / area[ids]
    return ids[np.lexsort((cx, cy))]


def empty_batch(crop_size: int) -> CellBatch:
    return CellBatch(
        crops=np.zeros((0, crop_size, crop_size, 3), np.uint8),
        centroid=np.zeros((0, 2), np.float32),
        contour=np.zeros((0, CONTOUR_POINTS, 2), np.float32),
        bbox=np.zeros((0, 4), np.int32),
        features=np.zeros((0, len(FEATURE_NAMES)), np.float32),
    )


def _check(image: np.ndarray, labels: np.ndarray, **values: float) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
    if labels.shape != image.shape[:2]:
        raise ValueError(f"labels {labels.shape} do not match the image {image.shape[:2]}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must be >= 0 (0 = background)")
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")


def _outer_contour(sub: np.ndarray) -> np.ndarray:
    """Points (m x 2, x/y) of the longest outer boundary of a 0/1 uint8 mask."""
    padded = cv2.copyMakeBorder(sub, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    found, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    best = max(found, key=len).reshape(-1, 2)
    return best.astype(np.float64) - 1


def _resample(points: np.ndarray, n: int) -> np.ndarray:
    """``n`` points equally spaced along the closed polygon ``points`` (m x 2)."""
    closed = np.concatenate([points, points[:1]])
    step = closed[1:] - closed[:-1]
    cum = np.empty(len(closed))
    cum[0] = 0.0
    np.cumsum(np.sqrt(step[:, 0] ** 2 + step[:, 1] ** 2), out=cum[1:])
    t = np.arange(n) * (cum[-1] / n)
    out = np.empty((n, 2))
    out[:, 0] = np.interp(t, cum, closed[:, 0])
    out[:, 1] = np.interp(t, cum, closed[:, 1])
    return out


def _offset(polys: np.ndarray, distance: float) -> np.ndarray:
    """Move every vertex of screen-ccw polygons (n x P x 2) outward along its normal."""
    tangent = np.roll(polys, -1, axis=-2) - np.roll(polys, 1, axis=-2)
    norm = np.sqrt((tangent**2).sum(-1, keepdims=True))
    tangent = tangent / np.maximum(norm, 1e-9)
    normal = np.stack([-tangent[..., 1], tangent[..., 0]], axis=-1)  # outward for screen-ccw
    return polys + distance * normal


def _valid_polygons(
    base: np.ndarray, hulls: list[np.ndarray], cx: np.ndarray, cy: np.ndarray, area: np.ndarray
) -> np.ndarray:
    """A valid simple polygon per nucleus (n x P x 2, tile px): the contour grown to the pixel
    edges; else the contour; else its convex hull (grown, then not); else the contour repaired
    (``wsicell.geometry.repair``) and resampled; else a disc of its area. Orientation and
    validity are ``wsicell.geometry``'s (counter-clockwise on screen, shapely-valid)."""
    base = geometry.orient(base)
    out = _offset(base, 0.5)
    bad = np.flatnonzero(~geometry.usable(out))
    for i in bad:
        candidates = [base[i]]
        if len(hulls[i]) >= 3:
            h = geometry.orient(_resample(hulls[i].astype(np.float64), CONTOUR_POINTS)[None])[0]
            candidates += [_offset(h[None], 0.5)[0], h]
        fixed = geometry.repair(base[i])
        if fixed is not None:
            candidates.append(geometry.orient(_resample(fixed[:-1], CONTOUR_POINTS)[None])[0])
        for cand in candidates:
            if geometry.usable(cand[None])[0]:
                out[i] = cand
                break
        else:
            r = max(math.sqrt(area[i] / math.pi), 0.5)
            angles = -np.arange(CONTOUR_POINTS) * (2 * math.pi / CONTOUR_POINTS)
            out[i] = np.stack([cx[i] + r * np.cos(angles), cy[i] + r * np.sin(angles)], axis=1)
    return out


def _max_distance(points: np.ndarray) -> float:
    if len(points) < 2:
        return 0.0
    d = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((d**2).sum(-1).max()))


def _crop(image: RGBImage, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """A ``side`` px square centred on pixel-centre coordinate (cx, cy), resized to ``size``."""
    height, width = image.shape[:2]
    s = max(int(round(side)), 1)
    x0 = int(round(cx + 0.5 - s / 2))
    y0 = int(round(cy + 0.5 - s / 2))
    x1, y1 = x0 + s, y0 + s
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    window = image[cy0:cy1, cx0:cx1]
    if (cx0, cy0, cx1, cy1) != (x0, y0, x1, y1):
        window = cv2.copyMakeBorder(
            window, cy0 - y0, y1 - cy1, cx0 - x0, x1 - cx1, cv2.BORDER_REPLICATE
        )
    if s == size:
        return window
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(window, (size, size), interpolation=interp)
