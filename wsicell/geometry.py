"""Nucleus outlines as polygons: one orientation rule and one repair, both through shapely.

Outlines are rings of level-0 (or tile) pixel coordinates, x right and y down. The rule,
for the store's contours and for every exported GeoJSON ring alike:

- the exterior runs **counter-clockwise as seen on the slide** (y down); in the coordinate
  numbers that is a negative shoelace sum, ``shapely.orient_polygons(..., exterior_cw=True)``
  (``shapely.geometry.polygon.orient(p, sign=-1.0)``);
- a polygon is usable when shapely calls it valid and it has an area;
- an invalid outline (self-crossing, collapsed) is repaired with ``shapely.make_valid``,
  keeping the largest polygon's exterior, oriented as above.

The segmenter's contours (``wsicell.segment.cells``) and the QuPath export
(``wsicell.export.geojson``) both go through :func:`orient`, :func:`usable` and
:func:`repair`; closing a ring for GeoJSON is :func:`closed`.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.polygon import orient as _orient_one


def closed(rings: np.ndarray) -> np.ndarray:
    """Open rings (..., P, 2) -> closed rings (..., P+1, 2), the first point repeated."""
    return np.concatenate([rings, rings[..., :1, :]], axis=-2)


def orient(rings: np.ndarray) -> np.ndarray:
    """Open rings (n, P, 2) turned counter-clockwise on screen; the first point stays first,
    the vertex count is unchanged."""
    out = np.array(rings, np.float64)  # a copy
    flip = np.flatnonzero(signed_area(out) > 0)  # a cheap test first: most rings are already right
    if len(flip) == 0:
        return out
    polys = shapely.polygons(closed(out[flip]))
    if hasattr(shapely, "orient_polygons"):  # shapely >= 2.1: vectorised
        polys = shapely.orient_polygons(polys, exterior_cw=True)
    else:
        polys = np.array([_orient_one(p, sign=-1.0) for p in polys], dtype=object)
    coords = shapely.get_coordinates(shapely.get_exterior_ring(polys))
    out[flip] = coords.reshape(len(flip), out.shape[1] + 1, 2)[:, :-1]
    return out


def signed_area(rings: np.ndarray) -> np.ndarray:
    """(n,) shoelace area of open rings (n, P, 2) in the coordinate numbers: negative for rings
    counter-clockwise on screen (y down)."""
    x, y = rings[..., 0], rings[..., 1]
    return 0.5 * np.sum(x * np.roll(y, -1, axis=-1) - np.roll(x, -1, axis=-1) * y, axis=-1)


def usable(rings: np.ndarray) -> np.ndarray:
    """(n,) bool: each ring (n, P, 2), open or closed, is a valid polygon with an area."""
    polys = shapely.polygons(np.asarray(rings, np.float64))
    return shapely.is_valid(polys) & (shapely.area(polys) > 0)


def repair(ring: np.ndarray, *, decimals: int | None = None) -> np.ndarray | None:
    """The closed exterior (m, 2) of the largest polygon of ``make_valid(Polygon(ring))``,
    oriented counter-clockwise on screen and, with ``decimals``, rounded; None when nothing
    with an area is left (or rounding collapses it)."""
    geom = shapely.make_valid(shapely.Polygon(np.asarray(ring, np.float64)))
    polys = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type == "Polygon" and g.area > 0]
    if not polys:
        return None
    best = _orient_one(shapely.Polygon(max(polys, key=lambda g: g.area).exterior), sign=-1.0)
    coords = np.asarray(best.exterior.coords, np.float64)
    if decimals is not None:
        coords = np.round(coords, decimals)
    if len(coords) < 4 or not usable(coords[None])[0]:
        return None
    return coords
