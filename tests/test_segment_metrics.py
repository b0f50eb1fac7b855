"""Detection F1, AJI and PQ against hand-computed tiny examples."""

from __future__ import annotations

import numpy as np
import pytest

from wsicell.segment.metrics import aji, centroids_of, match_centroids, panoptic, pq


def test_detection_counts_and_f1():
    true = np.array([[0, 0], [10, 0], [20, 0]])
    pred = np.array([[1, 0], [10, 5], [50, 50], [60, 60]])
    d = match_centroids(pred, true, radius=6)
    assert (d.tp, d.fp, d.fn) == (2, 2, 1)
    assert d.f1 == pytest.approx(4 / 7)
    assert d.precision == pytest.approx(0.5) and d.recall == pytest.approx(2 / 3)


def test_detection_matching_is_one_to_one_and_optimal():
    # greedy nearest would pair pred 0 with true 1 (distance 1) and leave true 0 unmatched
    true = np.array([[0, 0], [5, 0]])
    pred = np.array([[4, 0], [9, 0]])
    d = match_centroids(pred, true, radius=5)
    assert (d.tp, d.fp, d.fn) == (2, 0, 0)


def test_detection_empty_inputs():
    assert match_centroids(np.zeros((0, 2)), np.array([[1, 1]])).fn == 1
    assert match_centroids(np.zeros((0, 2)), np.zeros((0, 2))).f1 == 1.0


def test_aji_and_pq_hand_computed():
    true = np.zeros((4, 6), int)
    true[0:2, 0:2] = 1  # 4 px
    true[0:2, 3:6] = 2  # 6 px
    pred = np.zeros((4, 6), int)
    pred[0:2, 0:3] = 5  # covers true 1 (4 px) + 2 extra: IoU 4/6
    pred[3, 0:3] = 6  # matches nothing (3 px)
    # AJI: true 1 <-> pred 5: I 4, U 6; true 2 has no overlap: U += 6; unused pred 6: U += 3
    assert aji(true, pred) == pytest.approx(4 / 15)
    p = panoptic(true, pred)
    assert (p.tp, p.fp, p.fn) == (1, 1, 1)
    assert p.sq == pytest.approx(4 / 6)
    assert p.dq == pytest.approx(1 / 2)
    assert pq(true, pred) == pytest.approx(1 / 3)


def test_perfect_and_empty_segmentations():
    true = np.zeros((5, 5), int)
    true[1:3, 1:3] = 1
    true[4, 4] = 2
    assert aji(true, true) == pytest.approx(1.0)
    assert pq(true, true) == pytest.approx(1.0)
    assert aji(true, np.zeros_like(true)) == 0.0
    assert pq(true, np.zeros_like(true)) == 0.0


def test_centroids_of_label_image():
    labels = np.zeros((4, 4), int)
    labels[0, 0:2] = 3
    labels[2:4, 2:4] = 1
    np.testing.assert_allclose(centroids_of(labels), [[2.5, 2.5], [0.5, 0.0]])
