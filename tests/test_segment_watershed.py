"""Nucleus segmentation (watershed) and the crop & measurement rule, on real pixels."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import shapely

from wsicell.io.slide import open_slide
from wsicell.segment import (
    CONTOUR_POINTS,
    FEATURE_NAMES,
    SegmentConfig,
    cells_from_labels,
    make_segmenter,
)
from wsicell.segment.metrics import centroids_of, match_centroids


@pytest.fixture(scope="module")
def region(sample_slide):
    with open_slide(sample_slide) as slide:
        return slide.read((1000, 1400, 1512, 1912), slide.mpp), slide.mpp


def two_touching_discs(mpp: float = 0.5) -> np.ndarray:
    """White background, two overlapping dark purple discs (radius 5 µm, centres 8 µm apart)."""
    image = np.full((96, 96, 3), 235, np.uint8)
    r = round(5 / mpp)
    for cx in (48 - round(4 / mpp), 48 + round(4 / mpp)):
        cv2.circle(image, (cx, 48), r, (70, 40, 130), thickness=-1)
    return cv2.GaussianBlur(image, (0, 0), 1.0)


@pytest.mark.parametrize("foreground", ["classifier", "haematoxylin"])
def test_watershed_finds_nuclei_on_the_sample_slide(region, foreground):
    image, mpp = region
    config = SegmentConfig(method="watershed", foreground=foreground)
    labels = make_segmenter(config).segment(image, mpp=mpp)
    assert labels.shape == image.shape[:2] and labels.dtype == np.int32
    n = int(labels.max())
    assert set(np.unique(labels)) == set(range(n + 1))  # labels 0..n, no gaps
    # 256 µm x 256 µm of tissue: tens to a few thousand nuclei
    assert 30 <= n <= 3000
    areas_um2 = np.bincount(labels.ravel())[1:] * mpp**2
    assert areas_um2.min() >= config.min_area_um2 - 1e-6
    assert areas_um2.max() <= config.max_area_um2 + 1e-6


@pytest.mark.parametrize("foreground", ["classifier", "haematoxylin"])
def test_touching_nuclei_are_split(foreground):
    image = two_touching_discs(0.5)
    labels = make_segmenter(SegmentConfig(method="watershed", foreground=foreground)).segment(image, mpp=0.5)
    assert labels.max() == 2
    centres = centroids_of(labels)
    assert sorted(np.round(centres[:, 0])) == pytest.approx([40, 56], abs=2.5)


def test_blank_tile_has_no_nuclei():
    image = np.full((128, 128, 3), 240, np.uint8)
    assert make_segmenter(SegmentConfig(method="watershed")).segment(image, mpp=0.5).max() == 0


def test_segmenter_reports_largest_nucleus():
    assert make_segmenter(SegmentConfig(method="watershed", max_diameter_um=25)).max_nucleus_um == 25


@pytest.mark.parametrize(
    "bad",
    [{"min_area_um2": 0}, {"max_area_um2": 5, "min_area_um2": 10}, {"probability_threshold": 1.5},
     {"method": "magic"}, {"peak_min_distance_um": -1}],
)  # fmt: skip
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        SegmentConfig(**bad)


def test_segment_rejects_non_rgb():
    with pytest.raises(ValueError, match="uint8 RGB"):
        make_segmenter(SegmentConfig(method="watershed")).segment(np.zeros((8, 8), np.uint8), mpp=0.5)


# -- cells_from_labels ---------------------------------------------------------------


def square_labels() -> tuple[np.ndarray, np.ndarray]:
    """A 100x80 tile with three nuclei: a 10x10 square at x 20-29 / y 30-39, a disc
    centred (60, 50), and a 6x6 square in the top-left corner (x, y 0-5)."""
    labels = np.zeros((80, 100), np.int32)
    labels[30:40, 20:30] = 7  # non-consecutive ids are fine
    cv2.circle(labels, (60, 50), 8, 3, thickness=-1)
    labels[0:6, 0:6] = 12
    rng = np.random.default_rng(0)
    image = rng.integers(150, 230, (80, 100, 3), dtype=np.uint8)
    image[labels > 0] = (80, 40, 140)
    return image, labels


def test_cells_geometry_in_level0_coordinates():
    image, labels = square_labels()
    batch = cells_from_labels(image, labels, mpp=0.5, origin=(1000.0, 2000.0), scale=2.0)
    assert len(batch) == 3
    # rows by centroid y then x: corner square (y 2.5), square (y 34.5), disc (y 50)
    cx = [2.5, 24.5, 60.0]
    cy = [2.5, 34.5, 50.0]
    expected = np.stack([1000 + (np.array(cx) + 0.5) * 2, 2000 + (np.array(cy) + 0.5) * 2], axis=1)
    np.testing.assert_allclose(batch.centroid, expected, atol=1e-3)
    np.testing.assert_array_equal(batch.bbox[1], [1000 + 40, 2000 + 60, 1000 + 60, 2000 + 80])
    np.testing.assert_array_equal(batch.bbox[0], [1000, 2000, 1012, 2012])
    assert batch.centroid.dtype == np.float32 and batch.bbox.dtype == np.int32
    assert batch.contour.shape == (3, CONTOUR_POINTS, 2) and batch.contour.dtype == np.float32
    polygons = shapely.polygons(batch.contour)
    assert shapely.is_valid(polygons).all()
    # the square's outline follows its pixel edges: 20 x 20 level-0 px (minus corner rounding)
    assert shapely.area(polygons[1]) == pytest.approx(400, rel=0.08)
    assert shapely.contains_xy(polygons, batch.centroid[:, 0], batch.centroid[:, 1]).all()
    # the contour lies within the bbox (pixel-edge outline)
    assert (batch.contour[1, :, 0] >= 1040 - 1e-3).all() and (batch.contour[1, :, 0] <= 1060 + 1e-3).all()


def test_cells_features_in_physical_units():
    image, labels = square_labels()
    batch = cells_from_labels(image, labels, mpp=0.5, origin=(0, 0), scale=1.0)
    f = dict(zip(FEATURE_NAMES, batch.features[1], strict=True))
    assert batch.features.shape == (3, len(FEATURE_NAMES)) and batch.features.dtype == np.float32
    assert np.isfinite(batch.features).all()
    assert f["area_um2"] == pytest.approx(100 * 0.25)
    assert f["perimeter_um"] == pytest.approx(40 * 0.5, rel=0.1)
    assert f["extent"] == pytest.approx(1.0)
    assert f["solidity"] == pytest.approx(1.0, abs=0.05)
    assert f["eccentricity"] == pytest.approx(0.0, abs=1e-6)
    assert f["aspect_ratio"] == pytest.approx(1.0)
    assert f["haematoxylin_od_mean"] > 0.2  # purple nucleus
    disc = dict(zip(FEATURE_NAMES, batch.features[2], strict=True))
    assert disc["circularity"] == pytest.approx(1.0, abs=0.15)
    assert disc["equivalent_diameter_um"] == pytest.approx(2 * np.sqrt((labels == 3).sum() / np.pi) * 0.5)
    assert disc["major_axis_um"] == pytest.approx(disc["equivalent_diameter_um"], rel=0.05)


def test_cells_core_keeps_centroids_inside_only():
    image, labels = square_labels()
    batch = cells_from_labels(image, labels, mpp=0.5, origin=(0, 0), scale=1.0, core=(10, 10, 50, 80))
    assert len(batch) == 1  # only the square (centroid 25, 35); disc at x 60.5 and corner out
    np.testing.assert_allclose(batch.centroid[0], [25.0, 35.0])
    # half-open: a centroid exactly on x1 belongs to the next tile
    assert len(cells_from_labels(image, labels, mpp=0.5, origin=(0, 0), scale=1.0, core=(0, 0, 25, 80))) == 1
    assert len(cells_from_labels(image, labels, mpp=0.5, origin=(0, 0), scale=1.0, core=(25, 0, 100, 80))) == 2


def test_cells_crops_shape_and_border_padding():
    image, labels = square_labels()
    batch = cells_from_labels(image, labels, mpp=0.5, origin=(0, 0), scale=1.0, crop_size=24, window_scale=2.0)
    assert batch.crops.shape == (3, 24, 24, 3) and batch.crops.dtype == np.uint8
    # the corner nucleus' 12 px window reaches 3 px outside the tile on the top and left:
    # replicated border pixels, so the crop's top-left is the nucleus colour, not white/black
    np.testing.assert_array_equal(batch.crops[0, 0, 0], [80, 40, 140])
    # the square's window (20 px) sits inside the tile and is centred on the nucleus
    centre = batch.crops[1, 10:14, 10:14].reshape(-1, 3)
    assert (centre == [80, 40, 140]).all()


def test_cells_of_an_empty_tile():
    image = np.zeros((16, 16, 3), np.uint8)
    batch = cells_from_labels(image, np.zeros((16, 16), np.int32), mpp=0.5, origin=(0, 0), scale=1.0)
    assert len(batch) == 0 and batch.crops.shape == (0, 32, 32, 3)
    assert batch.features.shape == (0, len(FEATURE_NAMES))


def test_cells_of_tiny_and_thin_objects_still_get_valid_polygons():
    labels = np.zeros((20, 20), np.int32)
    labels[5, 5] = 1  # one pixel
    labels[10, 2:12] = 2  # a 1-pixel-wide line
    labels[15:17, 15] = 3
    image = np.full((20, 20, 3), 200, np.uint8)
    batch = cells_from_labels(image, labels, mpp=0.5, origin=(0, 0), scale=1.0)
    assert len(batch) == 3
    assert shapely.is_valid(shapely.polygons(batch.contour)).all()
    assert np.isfinite(batch.features).all()


def test_cells_reject_mismatched_labels():
    with pytest.raises(ValueError, match="do not match"):
        cells_from_labels(np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4), np.int32), mpp=0.5, origin=(0, 0), scale=1)
    with pytest.raises(ValueError, match=">= 0"):
        cells_from_labels(np.zeros((4, 4, 3), np.uint8), -np.ones((4, 4), np.int32), mpp=0.5, origin=(0, 0), scale=1)


def test_full_foreground_tile_has_finite_distances():
    from wsicell.segment.watershed import distance_to_background

    dist = distance_to_background(np.ones((5, 7), np.uint8))
    assert np.isfinite(dist).all() and dist.max() == pytest.approx(3.0, abs=0.1)


def test_segment_then_cells_on_the_sample_slide(region):
    image, mpp = region
    labels = make_segmenter(SegmentConfig(method="watershed")).segment(image, mpp=mpp)
    batch = cells_from_labels(image, labels, mpp=mpp, origin=(1000, 1400), scale=1.0, core=(32, 32, 480, 480))
    assert 0 < len(batch) <= labels.max()
    assert shapely.is_valid(shapely.polygons(batch.contour)).all()
    assert (batch.centroid[:, 0] >= 1032).all() and (batch.centroid[:, 0] < 1480).all()
    assert np.isfinite(batch.features).all()


# -- CoNSeP --------------------------------------------------------------------------


def test_consep_tiles_detection_well_above_chance(shared_data):
    folder = shared_data / "consep-tiles" / "test"
    names = sorted(p.stem for p in folder.glob("*.npz"))[::28][:8]
    assert names, f"{folder}: no tiles"
    segmenter = make_segmenter(SegmentConfig(method="watershed"))
    total = random_total = None
    rng = np.random.default_rng(0)
    for name in names:
        image = cv2.cvtColor(cv2.imread(str(folder / f"{name}.jpg")), cv2.COLOR_BGR2RGB)
        truth = np.load(folder / f"{name}.npz")["centroid"].reshape(-1, 2)
        pred = centroids_of(segmenter.segment(image, mpp=0.25 / 1.024))
        chance = rng.uniform(0, 256, size=pred.shape)  # as many points, placed at random
        d, r = match_centroids(pred, truth, radius=6), match_centroids(chance, truth, radius=6)
        total = d if total is None else total + d
        random_total = r if random_total is None else random_total + r
    assert total.f1 > 0.45
    assert total.f1 > 2 * random_total.f1


def test_pixel_classifier_probabilities(region):
    from wsicell.segment.pixels import FEATURES, PixelClassifier, pixel_features

    image, mpp = region
    features = pixel_features(image[:64, :80], mpp=mpp)
    assert features.shape == (len(FEATURES), 64, 80) and features.dtype == np.float32
    prob = PixelClassifier.default().probability(image[:64, :80], mpp=mpp)
    assert prob.shape == (2, 64, 80)
    assert (prob >= 0).all() and (prob <= 1).all()
    white = PixelClassifier.default().probability(np.full((32, 32, 3), 245, np.uint8), mpp=mpp)
    assert white[0].max() < 0.5  # blank glass is not nucleus
