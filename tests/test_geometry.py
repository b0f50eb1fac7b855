"""One orientation rule and one repair for every outline (segmenter contours, GeoJSON)."""

from __future__ import annotations

import numpy as np
import shapely

from wsicell import geometry


def square(clockwise_on_screen: bool) -> np.ndarray:
    ring = np.array([[0.0, 0.0], [0.0, 4.0], [4.0, 4.0], [4.0, 0.0]])  # down, right, up: ccw on screen
    return ring[::-1].copy() if clockwise_on_screen else ring


def test_orient_makes_rings_counter_clockwise_on_screen() -> None:
    rings = np.stack([square(False), square(True)])
    out = geometry.orient(rings)
    assert out.shape == rings.shape and (geometry.signed_area(out) < 0).all()
    np.testing.assert_array_equal(out[0], rings[0])  # already right: unchanged
    np.testing.assert_array_equal(out[1][0], rings[1][0])  # the first point stays first
    assert geometry.orient(np.zeros((0, 4, 2))).shape == (0, 4, 2)


def test_usable_and_closed() -> None:
    bow_tie = np.array([[0.0, 0.0], [4.0, 4.0], [4.0, 0.0], [0.0, 4.0]])
    flat = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    assert geometry.usable(np.stack([square(False), bow_tie, flat])).tolist() == [True, False, False]
    ring = geometry.closed(square(False))
    assert ring.shape == (5, 2) and (ring[0] == ring[-1]).all()


def test_repair_keeps_the_largest_part_oriented() -> None:
    bow_tie = np.array([[0.0, 0.0], [6.0, 4.0], [6.0, 0.0], [0.0, 4.0]])  # two triangles of area 6
    fixed = geometry.repair(bow_tie)
    assert fixed is not None and (fixed[0] == fixed[-1]).all() and shapely.Polygon(fixed).is_valid
    assert shapely.Polygon(fixed).area == 6.0 and geometry.signed_area(fixed[:-1][None])[0] < 0
    assert geometry.repair(np.zeros((5, 2))) is None  # no area: nothing to keep
    assert geometry.repair(np.array([[0, 0], [0.01, 0], [0.01, 0.01], [0, 0.01]]), decimals=1) is None  # rounds away
