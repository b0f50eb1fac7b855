"""The ``foreground: cnn`` segmenter (small U-Net shipped in the package), on real pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from wsicell.io.slide import open_slide
from wsicell.segment import SegmentConfig, make_segmenter
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
    config = SegmentConfig(foreground="cnn")
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
