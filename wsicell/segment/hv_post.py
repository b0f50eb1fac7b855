"""HoVer-Net's horizontal/vertical maps: training targets and the marker-controlled watershed.

Both are whole-image numpy/OpenCV operations (no loop over nuclei). Targets (Graham et al.
2019): within each nucleus, the horizontal map is the pixel's x distance to the nucleus'
centroid divided by the largest such distance on that side of the centroid (so it runs from
-1 at the left edge to +1 at the right edge), likewise the vertical map; 0 on background.

Post-processing (HoVer-Net's ``__proc_np_hv``, with its pixel sizes, set for 0.25 µm/px,
turned into µm so they hold at any mpp): foreground = P(nucleus) > threshold minus objects
under ``MIN_OBJECT_UM2``; the Sobel derivatives (kernel ~5 µm) of the HV maps, inverted and
scaled to [0, 1], are high where a map falls, i.e. on the boundary between touching nuclei
(0.5 where it is flat, below inside a nucleus, where it rises). Markers = foreground where
that boundary energy is below ``marker_threshold``, holes filled, opened (~1.25 µm) and
labelled; the watershed of the smoothed boundary energy from those markers inside the
foreground gives the instances. One change from HoVer-Net: it min-max normalises the maps
and their derivatives over each tile, which makes a pixel's result depend on the rest of
the tile; here the scales are fixed (maps in [-1, 1]; derivatives divided by the Sobel
kernel's response to a unit step), so tiles agree at seams. On the held-out images both
scored the same within 0.01 PQ, each at its best marker threshold.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.segmentation import watershed

SOBEL_UM = 5.25
"""HoVer-Net's 21-px Sobel kernel at 0.25 µm/px."""
SMOOTH_UM = 0.75
"""HoVer-Net's 3-px Gaussian at 0.25 µm/px."""
OPEN_UM = 1.25
"""HoVer-Net's 5-px elliptical opening of the markers at 0.25 µm/px."""
MIN_OBJECT_UM2 = 0.625
"""HoVer-Net's 10-px minimum object size at 0.25 µm/px."""


def hv_targets(inst: np.ndarray) -> np.ndarray:
    """2xHxW float32 horizontal and vertical maps of an instance map (0 = background)."""
    inst = np.asarray(inst)
    height, width = inst.shape
    out = np.zeros((2, height, width), np.float32)
    flat = inst.ravel().astype(np.int64)
    fg = np.flatnonzero(flat)
    if len(fg) == 0:
        return out
    lab = flat[fg]
    n = int(lab.max()) + 1
    ys, xs = np.divmod(fg, width)
    area = np.maximum(np.bincount(lab, minlength=n), 1)
    for k, coord in enumerate((xs, ys)):
        centre = np.bincount(lab, weights=coord, minlength=n) / area
        d = coord - centre[lab]
        pos = np.zeros(n)
        neg = np.zeros(n)
        np.maximum.at(pos, lab, d)
        np.maximum.at(neg, lab, -d)
        scale = np.where(d > 0, pos[lab], neg[lab])
        out[k].ravel()[fg] = np.divide(d, scale, out=np.zeros_like(d), where=scale > 0)
    return out


def odd(x: float, low: int = 3, high: int | None = None) -> int:
    """The odd integer nearest ``x``, clipped to [low, high]."""
    k = max(low, int(round(x)) | 1)
    return min(k, high) if high else k


def step_response(k: int) -> float:
    """cv2.Sobel's (ksize ``k``) largest response to a unit step."""
    step = np.zeros((1, 2 * k), np.float32)
    step[:, k:] = 1
    return float(cv2.Sobel(step, cv2.CV_32F, 1, 0, ksize=k, borderType=cv2.BORDER_REPLICATE).max())


def remove_small(mask: np.ndarray, min_px: float) -> tuple[int, np.ndarray]:
    """Connected components (8-connected) of a 0/1 uint8 mask, those under ``min_px`` pixels
    removed; returns (number of labels incl. background, HxW int32 labels, not renumbered)."""
    n, comp, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    small = stats[:, cv2.CC_STAT_AREA] < min_px
    small[0] = True
    if small.any():
        comp[small[comp]] = 0
    return n, comp


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of every object of a uint8 0/1 mask."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled


def boundary_energy(h: np.ndarray, v: np.ndarray, foreground: np.ndarray, *, mpp: float) -> np.ndarray:
    """HxW float32 in [0, 1]: high where the HV maps jump (between nuclei), 0 outside."""
    k = odd(SOBEL_UM / mpp, high=31)
    scale = -0.25 / step_response(k)  # maps in [-1, 1]: a unit step of (map + 1) / 2 -> -0.5
    sh = cv2.Sobel(h, cv2.CV_32F, 1, 0, ksize=k, scale=scale, delta=0.5)
    sv = cv2.Sobel(v, cv2.CV_32F, 0, 1, ksize=k, scale=scale, delta=0.5)
    energy = np.maximum(sh, sv)
    energy -= 1 - foreground
    np.maximum(energy, 0, out=energy)
    return energy


def watershed_inputs(prob: np.ndarray, h: np.ndarray, v: np.ndarray, *, mpp: float,
                     threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(foreground 0/1 float32, boundary energy, the watershed's landscape) of one tile: the
    part of :func:`hv_instances` before its markers (``benchmarks/segment_diagnosis.py`` puts
    other markers on the same landscape)."""
    _, comp = remove_small((prob > threshold).astype(np.uint8), MIN_OBJECT_UM2 / mpp**2)
    foreground = (comp > 0).astype(np.float32)
    if not foreground.any():
        return foreground, np.zeros_like(foreground), np.zeros_like(foreground)
    energy = boundary_energy(h, v, foreground, mpp=mpp)
    g = odd(SMOOTH_UM / mpp)
    return foreground, energy, -cv2.GaussianBlur((1 - energy) * foreground, (g, g), 0)


def hv_instances(
    prob: np.ndarray,
    h: np.ndarray,
    v: np.ndarray,
    *,
    mpp: float,
    threshold: float = 0.5,
    marker_threshold: float = 0.5,
) -> np.ndarray:
    """HxW int32 instance labels (0 = background; not renumbered) from P(nucleus) and the
    horizontal/vertical maps of one tile at ``mpp`` µm/px."""
    min_px = MIN_OBJECT_UM2 / mpp**2
    foreground, energy, landscape = watershed_inputs(prob, h, v, mpp=mpp, threshold=threshold)
    if not foreground.any():
        return np.zeros(prob.shape, np.int32)
    marker = ((foreground > 0) & (energy < marker_threshold)).astype(np.uint8)
    marker = fill_holes(marker)
    r = odd(OPEN_UM / mpp)
    marker = cv2.morphologyEx(marker, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (r, r)))
    _, markers = remove_small(marker, min_px)
    return watershed(landscape, markers, mask=foreground > 0).astype(np.int32)


def drop_unsure(labels: np.ndarray, prob: np.ndarray, min_probability: float) -> np.ndarray:
    """``labels`` without the instances whose highest nucleus probability in ``prob`` is below
    ``min_probability`` (labels keep their numbers; one pass over the pixels, no loop over
    instances)."""
    if min_probability <= 0 or not labels.any():
        return labels
    flat = labels.ravel()
    best = np.zeros(int(flat.max()) + 1, np.float32)
    order = np.argsort(flat, kind="stable")  # pixels grouped by instance
    ids = flat[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    best[ids[starts]] = np.maximum.reduceat(prob.ravel()[order].astype(np.float32), starts)
    keep = best >= min_probability
    keep[0] = False
    return np.where(keep[labels], labels, 0).astype(labels.dtype)
