"""The annotator filter: which HV-net nuclei would an annotator have outlined?"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from wsicell.segment import SegmentConfig, cells_from_labels, make_segmenter
from wsicell.segment.annotator_filter import FILTER_PATHS, AnnotatorFilter, drop_unannotated
from wsicell.segment.cells import FEATURE_NAMES, label_ids_in_order
from wsicell.segment.hvnet import HVNetModel
from wsicell.segment.metrics import centroid_pairs, instance_centroids


@pytest.fixture(scope="module")
def consep_tile(shared_data):
    from wsicell.evaluate.dataset import CONSEP_MPP

    name = shared_data / "consep-tiles" / "test" / "test_1_005"
    image = cv2.cvtColor(cv2.imread(f"{name}.jpg"), cv2.COLOR_BGR2RGB)
    return image, np.load(f"{name}.npz")["inst"].astype(np.int32), CONSEP_MPP


def test_label_ids_come_in_the_order_of_the_cells(consep_tile):
    image, inst, mpp = consep_tile
    ids = label_ids_in_order(inst)
    cells = cells_from_labels(image, inst, mpp=mpp, origin=(0, 0), scale=1.0)
    np.testing.assert_allclose(cells.centroid, instance_centroids(inst)[ids - 1], atol=1e-3)
    assert len(label_ids_in_order(np.zeros((8, 8), np.int32))) == 0


def test_drop_unannotated_against_a_naive_reference(consep_tile):
    """A filter that only looks at the area (P > 0.5 above 20 µm²) drops exactly the instances
    whose pixel count, counted one instance at a time, is under 20 µm²: rows and ids align."""
    image, inst, mpp = consep_tile
    _, maps = HVNetModel(precision="fp32", runtime="torch").maps_and_features(image, mpp=mpp)
    d = len(FEATURE_NAMES) + maps.dim
    coef = np.zeros(d)
    coef[FEATURE_NAMES.index("area_um2")] = 1.0
    area_only = AnnotatorFilter(mean=np.zeros(d), scale=np.ones(d), coef=coef, intercept=-20.0)
    got = drop_unannotated(inst, image, maps, mpp=mpp, keep=area_only, threshold=0.5)
    expected = inst.copy()
    for i in np.unique(inst)[1:]:
        if (inst == i).sum() * mpp**2 < 20.0:
            expected[inst == i] = 0
    assert 0 < len(np.unique(expected)) - 1 < len(np.unique(inst)) - 1  # some kept, some dropped
    assert np.array_equal(got, expected)
    assert drop_unannotated(inst, image, maps, mpp=mpp, keep=area_only, threshold=0.0) is inst  # off


def test_save_and_load_round_trip(tmp_path: Path):
    rng = np.random.default_rng(0)
    keep = AnnotatorFilter(mean=rng.normal(size=5), scale=rng.random(5) + 0.5, coef=rng.normal(size=5), intercept=0.3)
    keep.save(tmp_path / "f.npz")
    back = AnnotatorFilter.load(tmp_path / "f.npz")
    x = rng.normal(size=(7, 5))
    np.testing.assert_allclose(back.probability(x), keep.probability(x))
    np.testing.assert_allclose(keep.probability(np.zeros((1, 5))), 1 / (1 + np.exp(-((0 - keep.mean) / keep.scale) @ keep.coef - 0.3)))


def test_the_threshold_is_checked():
    assert SegmentConfig().hv_annotator_threshold == 0.0  # off by default
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="hv_annotator_threshold must be in"):
            SegmentConfig(hv_annotator_threshold=bad)


@pytest.mark.parametrize("method", sorted(FILTER_PATHS))
def test_the_shipped_filters_drop_mostly_what_no_annotator_marked(shared_data, method):
    """Each HV method's shipped filter takes the 30 measurements and 224 tile features. At 0.5,
    on the 16 tiles of a CoNSeP test image, its output is a subset of the segmenter's with the
    same outlines, it drops under 15 % of the nuclei, and those it drops have a labelled nucleus
    within 3 µm less often than those it keeps (measured: 0.58 vs 0.93 for hvnet, 0.75 vs 0.92
    for hvnet-fine: on CoNSeP it also drops real nuclei, docs/segmentation.md)."""
    from wsicell.evaluate.dataset import CONSEP_MPP as mpp

    keep = AnnotatorFilter.load(FILTER_PATHS[method])
    assert keep.coef.shape == (len(FEATURE_NAMES) + 224,)
    plain = make_segmenter(SegmentConfig(method=method, runtime="torch", precision="fp32"))
    filtered = make_segmenter(SegmentConfig(method=method, runtime="torch", precision="fp32", hv_annotator_threshold=0.5))
    dropped, kept = [], []
    for t in range(16):
        name = shared_data / "consep-tiles" / "test" / f"test_1_{t:03d}"
        image = cv2.cvtColor(cv2.imread(f"{name}.jpg"), cv2.COLOR_BGR2RGB)
        inst = np.load(f"{name}.npz")["inst"].astype(np.int32)
        a, b = plain.segment(image, mpp=mpp), filtered.segment(image, mpp=mpp)
        assert np.array_equal(np.where(b > 0, a, 0), b) and set(np.unique(b)) <= set(np.unique(a))  # a subset, same outlines
        ids = np.unique(a)[1:]
        truth = instance_centroids(inst)
        rows, _ = centroid_pairs(instance_centroids(a)[ids - 1], truth[np.isfinite(truth[:, 0])], radius=3.0 / mpp)
        matched = np.zeros(len(ids), bool)
        matched[rows] = True
        stays = np.isin(ids, np.unique(b)[1:])
        dropped += list(matched[~stays])
        kept += list(matched[stays])
    assert 0 < len(dropped) < 0.15 * (len(dropped) + len(kept))
    assert np.mean(dropped) < np.mean(kept) - 0.1


def test_the_share_doubted_is_higher_where_fewer_nuclei_are_real(shared_data):
    """With the filter off, the segmenter counts the nuclei it would drop (what `wsicell
    extract` records per slide). On two held-out CoNSeP images (never fitted on) the share
    doubted is higher on the one where fewer of its nuclei have a labelled nucleus within
    3 µm (measured: 1.3 % doubted, precision 0.91 on image 9; 11.8 %, 0.77 on image 21;
    benchmarks/segment_doubted.py). A segmenter that applies the filter counts nothing."""
    from wsicell.evaluate.dataset import CONSEP_MPP as mpp
    from wsicell.segment.metrics import centroids_of, match_centroids

    segmenter = make_segmenter(SegmentConfig(runtime="torch", precision="fp32"))
    figures = {}
    for image_no in (9, 21):
        doubted = nuclei = tp = 0
        for t in range(16):
            name = shared_data / "consep-tiles" / "train" / f"train_{image_no}_{t:03d}"
            image = cv2.cvtColor(cv2.imread(f"{name}.jpg"), cv2.COLOR_BGR2RGB)
            labels, maps = segmenter.segment_with_features(image, mpp=mpp)
            cells = cells_from_labels(image, labels, mpp=mpp, origin=(0, 0), scale=1.0)
            tile = maps.at(cells.centroid.astype(np.float64) - 0.5)
            doubted += segmenter.count_doubted(features=cells.features, tile_features=tile)
            nuclei += len(cells.features)
            inst = np.load(f"{name}.npz")["inst"].astype(np.int32)
            tp += match_centroids(centroids_of(labels), centroids_of(inst), radius=3.0 / mpp).tp
        figures[image_no] = (doubted / nuclei, tp / nuclei)
    (low, good), (high, poor) = figures[9], figures[21]
    assert low < 0.05 < 0.08 < high and good > poor + 0.08, figures
    filtered = make_segmenter(SegmentConfig(runtime="torch", precision="fp32", hv_annotator_threshold=0.5))
    assert filtered.count_doubted(features=cells.features, tile_features=tile) is None
    assert make_segmenter(SegmentConfig(method="watershed")).count_doubted(features=cells.features, tile_features=tile) is None
