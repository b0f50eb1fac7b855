"""The ``foreground: cnn`` segmenter (small U-Net shipped in the package), on real pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from wsicell.io.slide import open_slide
from wsicell.segment import SegmentConfig, make_segmenter
from wsicell.segment.metrics import centroids_of, match_centroids
from wsicell.segment.unet import WEIGHTS_PATH, UNetForeground, build_unet


def test_weights_are_small_and_load_with_weights_only():
    assert WEIGHTS_PATH.stat().st_size < 1_000_000
    state = torch.load(WEIGHTS_PATH, map_location="cpu", weights_only=True)
    net = build_unet()
    net.load_state_dict(state)  # strict: every tensor present, shapes match
    assert set(state) == set(net.state_dict())


@pytest.fixture(scope="module")
def region(sample_slide):
    with open_slide(sample_slide) as slide:
        return slide.read((1000, 1400, 1512, 1912), slide.mpp), slide.mpp


def test_cnn_finds_nuclei_on_the_sample_slide(region):
    image, mpp = region  # 512² at 0.499 µm/px
    config = SegmentConfig(method="watershed", foreground="cnn")
    labels = make_segmenter(config).segment(image, mpp=mpp)
    assert labels.shape == image.shape[:2] and labels.dtype == np.int32
    n = int(labels.max())
    assert set(np.unique(labels)) == set(range(n + 1))
    assert 30 <= n <= 3000  # 256 µm x 256 µm of tissue
    areas_um2 = np.bincount(labels.ravel())[1:] * mpp**2
    assert areas_um2.min() >= config.min_area_um2 - 1e-6
    assert 5 <= np.median(areas_um2) <= 150  # nucleus-sized, not specks or clumps


def test_probabilities_follow_the_input_resolution(region):
    image, mpp = region
    model = UNetForeground()
    at_native = model.probability(image[:250, :250], mpp=mpp)  # odd side: padded inside
    assert at_native.shape == (2, 250, 250) and at_native.dtype == np.float32
    assert at_native.min() >= 0 and at_native.max() <= 1
    # the same tissue given at twice the resolution: the network still sees 0.5 µm/px


    doubled = cv2.resize(image[:250, :250], (500, 500), interpolation=cv2.INTER_LINEAR)
    at_double = model.probability(doubled, mpp=mpp / 2)
    assert at_double.shape == (2, 500, 500)
    back = cv2.resize(at_double[0], (250, 250), interpolation=cv2.INTER_AREA)
    agree = ((back > 0.5) == (at_native[0] > 0.5)).mean()
    assert agree > 0.85


def test_missing_weights_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights not found"):
        UNetForeground(tmp_path / "none.pt")


def test_bf16_autocast_matches_fp32(region):
    """The ``precision`` setting runs the same network under bf16 autocast: probabilities
    within bf16 rounding, and nearly the same nuclei (the quality figure: docs/segmentation.md)."""
    image, mpp = region
    fp32, bf16 = UNetForeground(precision="fp32"), UNetForeground(precision="bf16")
    assert not fp32.bf16 and bf16.bf16
    p32, p16 = fp32.probability(image, mpp=mpp), bf16.probability(image, mpp=mpp)
    assert p16.dtype == np.float32 and p16.shape == p32.shape
    assert 0 < np.abs(p16 - p32).mean() < 1e-2  # bf16 did run, and stays close
    assert ((p16[0] > 0.6) == (p32[0] > 0.6)).mean() > 0.99
    l32 = make_segmenter(SegmentConfig(precision="fp32")).segment(image, mpp=mpp)
    l16 = make_segmenter(SegmentConfig(precision="bf16")).segment(image, mpp=mpp)
    same = match_centroids(centroids_of(l16), centroids_of(l32), radius=1.0 / mpp)  # within 1 µm
    assert l32.max() > 100 and same.f1 > 0.95


def test_precision_is_validated():
    with pytest.raises(ValueError, match="precision must be one of"):
        SegmentConfig(precision="fp16")
    with pytest.raises(ValueError, match="precision must be"):
        UNetForeground(precision="half")
