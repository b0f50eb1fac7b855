"""Tissue detection on the real sample slide and on a blank slide."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from wsicell.io.slide import VirtualSlide, open_slide
from wsicell.io.tissue import detect_tissue, hsv_foreground


def test_hsv_rule_on_the_sample(sample_slide: Path) -> None:
    with open_slide(sample_slide) as s:
        raw = hsv_foreground(s.read_grid((0, 0), s.grid_size(8.0), mpp=8.0))
        tissue = detect_tissue(s, method="hsv")
        otsu = detect_tissue(s, method="otsu")
    assert 0.1 < raw.mean() < 0.4  # purple-pink pixels of a ~40 %-tissue slide
    assert raw.mean() < tissue.fraction < 0.9  # closed + dilated
    assert 0.3 < otsu.fraction < 0.9
    assert (tissue.mask & otsu.mask).sum() > 0.6 * min(tissue.mask.sum(), otsu.mask.sum())


def test_hsv_hue_scale_is_opencv_bytes(sample_slide: Path) -> None:
    """The paper's 0.5 < hue < 0.65 read on a true [0, 1] hue scale finds (almost) no H&E."""
    from skimage.color import rgb2hsv

    with open_slide(sample_slide) as s:
        image = s.read_grid((0, 0), s.grid_size(8.0), mpp=8.0)
    hsv = rgb2hsv(image)
    true_scale = (hsv[..., 0] > 0.5) & (hsv[..., 0] < 0.65) & (hsv[..., 1] > 0.1)
    assert true_scale.mean() < 0.02 < 0.1 < hsv_foreground(image).mean()


@pytest.mark.parametrize("method", ["hsv", "otsu"])
def test_blank_slide_has_no_tissue(method: str) -> None:
    s = VirtualSlide(np.full((2000, 1500, 3), 250, np.uint8), mpp=0.5)
    assert detect_tissue(s, method=method).fraction == 0.0
    assert detect_tissue(s, method="none").fraction == 1.0


def test_margin_dilates_the_mask() -> None:
    image = np.full((2000, 2000, 3), 255, np.uint8)
    cv2.circle(image, (1000, 1000), 200, (150, 60, 170), -1)  # an H&E-purple disc
    s = VirtualSlide(image, mpp=0.5)
    tight = detect_tissue(s, margin_um=0.0)
    wide = detect_tissue(s, margin_um=80.0)
    assert tight.fraction == pytest.approx(np.pi * 200**2 / 2000**2, rel=0.15)
    assert wide.mask.sum() > tight.mask.sum() and (wide.mask | tight.mask).sum() == wide.mask.sum()


def test_tissue_area_is_measured_before_the_margin() -> None:
    image = np.full((2000, 2000, 3), 255, np.uint8)
    cv2.circle(image, (1000, 1000), 200, (150, 60, 170), -1)  # radius 100 µm at 0.5 µm/px
    s = VirtualSlide(image, mpp=0.5)
    disc_mm2 = np.pi * 0.1**2
    for margin in (0.0, 80.0):  # the margin widens the mask, not the tissue area
        assert detect_tissue(s, margin_um=margin).area_mm2 == pytest.approx(disc_mm2, rel=0.15)
    assert detect_tissue(s, method="none").area_mm2 == pytest.approx(1.0, rel=0.02)  # 1 mm x 1 mm
