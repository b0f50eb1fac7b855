"""A pathologist's labels from QuPath, matched to the store's cells.

QuPath's *File > Export objects as GeoJSON* writes a FeatureCollection (or, without
"Export as FeatureCollection", a bare list of Features). Each labelled object gives one or
more points: a Point or MultiPoint (the Points tool: one annotation holds many points of
one class), or a Polygon / MultiPolygon (a detection, cell or small annotation: its
centroid; for a cell with a ``nucleusGeometry``, the nucleus's). The class is ``properties.classification.name`` (QuPath 0.4+; a plain string
and the older ``colorRGB`` are accepted too); objects without a class, and wsicell's own
default classes ("Cluster N": the map's nuclei exported back by mistake), are ignored.
Coordinates are level-0 pixels, as in wsicell's own GeoJSON.

Each point is matched to the nearest nucleus centroid of its slide within
``max_distance_um``; points farther from every nucleus are reported, never forced onto
one. Two points on one nucleus: the nearer is kept, the other reported as a duplicate.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from scipy.spatial import cKDTree

from wsicell.errors import ConfigError
from wsicell.export.palette import RGB
from wsicell.types import PathLikeStr

DEFAULT_CLASS = re.compile(r"Cluster \d+")


@dataclass(frozen=True)
class Labels:
    """Labelled points of one file: (m, 2) level-0 px and each point's class name."""

    path: Path
    xy: np.ndarray  # (m, 2) float64
    classes: list[str]
    colors: dict[str, RGB]  # class -> colour given by QuPath (where it gave one)
    ignored_cluster_objects: int = 0  # objects classified "Cluster N" (wsicell's defaults)


@dataclass(frozen=True)
class Match:
    """Each label's cell row (-1 = none) and distance to it (µm); why unmatched ones are."""

    cell: np.ndarray  # (m,) int64
    distance_um: np.ndarray  # (m,) float64, to the nearest nucleus
    status: list[str]  # "matched", "too far", "duplicate"

    @property
    def matched(self) -> np.ndarray:
        return np.flatnonzero(self.cell >= 0)


def _color(cls: dict) -> RGB | None:
    color = cls.get("color")
    if isinstance(color, list) and len(color) == 3 and all(isinstance(c, int) for c in color):
        return (color[0] & 255, color[1] & 255, color[2] & 255)
    rgb = cls.get("colorRGB")
    if isinstance(rgb, int):
        return ((rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255)
    return None


def read_labels(path: PathLikeStr) -> Labels:
    """The classified points of a QuPath GeoJSON export (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: labels file not found")
    try:
        data = json.loads(p.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features") or []
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, list):
        features = data
    else:
        raise ConfigError(f"{p}: expected a GeoJSON FeatureCollection, Feature or list of Features")
    xy: list[np.ndarray] = []
    classes: list[str] = []
    colors: dict[str, RGB] = {}
    ignored = 0
    for feature in features:
        if not isinstance(feature, dict):
            continue
        props = feature.get("properties") or {}
        cls = props.get("classification")
        name = cls.get("name") if isinstance(cls, dict) else cls if isinstance(cls, str) else None
        if not name or feature.get("geometry") is None:
            continue
        if DEFAULT_CLASS.fullmatch(str(name)):
            ignored += 1
            continue
        try:  # a QuPath cell: its nucleus, not the cell boundary around it
            geom = shapely.geometry.shape(feature.get("nucleusGeometry") or feature["geometry"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(f"{p}: feature {feature.get('id', '?')} has an unreadable geometry") from None
        if geom.is_empty:
            continue
        if geom.geom_type in ("Point", "MultiPoint"):
            points = shapely.get_coordinates(geom)
        else:
            points = shapely.get_coordinates(geom.centroid)
        xy.append(points[:, :2])
        classes.extend([str(name)] * len(points))
        if isinstance(cls, dict) and (c := _color(cls)) is not None:
            colors.setdefault(str(name), c)
    if not classes:
        hint = f"; {ignored} objects carry wsicell's own 'Cluster N' classes" if ignored else ""
        raise ConfigError(f"{p}: no classified objects (give the points or detections a class in QuPath){hint}")
    return Labels(p, np.concatenate(xy).astype(np.float64), classes, colors, ignored)


def match_labels(xy: np.ndarray, centroids: np.ndarray, *, mpp: float, max_distance_um: float) -> Match:
    """Each point's nearest nucleus within ``max_distance_um`` (``xy``, ``centroids`` in
    level-0 px, ``mpp`` µm/px), at most one point per nucleus (the nearest)."""
    if not max_distance_um > 0:
        raise ConfigError(f"the matching distance must be > 0 µm, got {max_distance_um}")
    m = len(xy)
    if len(centroids) == 0:
        return Match(np.full(m, -1, np.int64), np.full(m, np.inf), ["too far"] * m)
    dist_px, cell = cKDTree(np.asarray(centroids, np.float64)).query(np.asarray(xy, np.float64))
    dist = dist_px * mpp
    cell = np.where(dist <= max_distance_um, cell, -1).astype(np.int64)
    status = ["matched" if c >= 0 else "too far" for c in cell]
    order = np.argsort(dist, kind="stable")
    taken: set[int] = set()
    for i in order:
        c = int(cell[i])
        if c < 0:
            continue
        if c in taken:
            cell[i] = -1
            status[i] = "duplicate"
        taken.add(c)
    return Match(cell, dist, status)
