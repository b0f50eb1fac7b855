"""Streaming GeoJSON for QuPath: one Feature per nucleus, constant memory.

What QuPath 0.4-0.7 parses (docs/qupath.md): a FeatureCollection; ``id`` a UUID
string; ``geometry`` a Polygon in level-0 pixels; ``properties.objectType`` "detection" or
"cell" (with ``nucleusGeometry``); ``properties.classification`` {"name", "color": [r, g, b]};
``properties.measurements`` a flat name -> number object.

Cells arrive in chunks (:class:`CellChunk`); each chunk is checked with shapely (vectorised),
turned into features and serialised by orjson in one call, then written. The file is
written under a temporary name and renamed at the end; ``.gz`` names are gzip-compressed.
"""

from __future__ import annotations

import gzip
import hashlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
import shapely

from wsicell import geometry
from wsicell.atomic import atomic_path
from wsicell.export.names import ClusterStyle
from wsicell.export.output import check_output
from wsicell.types import PathLikeStr

ObjectType = Literal["detection", "cell"]

UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "wsicell/nucleus")
"""Ids are uuid5(UUID_NAMESPACE, "<slide fingerprint>/<cell index>"): the same on every run."""

COORD_DECIMALS = 1  # level-0 px; 0.1 px is far below any scanner's resolution
VALUE_DECIMALS = 4
GZIP_LEVEL = 3


@dataclass(frozen=True)
class CellChunk:
    """Consecutive cells of one slide, row-aligned."""

    start: int  # slide index of the first cell (for the ids)
    contour: np.ndarray  # (m, P, 2) level-0 px, open ring
    cluster: np.ndarray | None  # (m,) int; None: nuclei without cell types (no classification)
    distance: np.ndarray | None  # (m,) float; None with cluster
    features: np.ndarray  # (m, F) float
    style: np.ndarray | None = None  # (m,) index into the styles; None = the cluster (e.g. a cell class)

    @property
    def classification(self) -> np.ndarray | None:
        """(m,) index into the styles of each cell's QuPath class, or None (unclassified)."""
        return self.cluster if self.style is None else self.style


@dataclass(frozen=True)
class ExportStats:
    path: Path
    written: int
    repaired: int  # invalid polygons made valid (largest part kept)
    skipped: int  # polygons that could not be repaired (no area)
    seconds: float


def cell_uuid(fingerprint: str, index: int) -> str:
    """The deterministic id of cell ``index`` of the slide with this content fingerprint."""
    return str(uuid.uuid5(UUID_NAMESPACE, f"{fingerprint}/{index}"))


def write_geojson(
    path: PathLikeStr,
    chunks: Iterable[CellChunk],
    *,
    fingerprint: str,
    styles: list[ClusterStyle],
    feature_names: list[str],
    size: tuple[int, int],
    mpp: float,
    object_type: ObjectType = "detection",
    cell_expansion_um: float = 5.0,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ExportStats:
    """Write the cells as a QuPath GeoJSON FeatureCollection at ``path`` (.geojson[.gz]).

    ``size`` is the slide's level-0 (width, height): coordinates are clipped to it.
    ``object_type`` "cell" writes the nucleus expanded by ``cell_expansion_um`` (clipped to
    the slide) as the cell and the nucleus as ``nucleusGeometry``, as QuPath's cell detection
    does. Fails before writing anything if ``path`` exists and ``force`` is false.
    ``progress(m)`` is called after each chunk of ``m`` cells.
    """
    if object_type not in ("detection", "cell"):
        raise ValueError(f"object_type must be 'detection' or 'cell', got {object_type!r}")
    out = check_output(path, force=force)
    t0 = time.perf_counter()
    classes = [{"name": s.name, "color": list(s.color)} for s in styles]
    written = repaired = skipped = 0
    with atomic_path(out) as tmp:
        gz = out.name.endswith(".gz")
        with gzip.open(tmp, "wb", compresslevel=GZIP_LEVEL) if gz else tmp.open("wb") as fh:  # noqa: SIM115
            fh.write(b'{"type":"FeatureCollection","features":[\n')
            first = True
            for chunk in chunks:
                feats, n_rep, n_skip = chunk_features(
                    chunk, fingerprint=fingerprint, classes=classes, names=feature_names, size=size,
                    object_type=object_type, expansion_px=cell_expansion_um / mpp,
                )  # fmt: skip
                repaired += n_rep
                skipped += n_skip
                if progress is not None:
                    progress(len(chunk.contour))
                if not feats:
                    continue
                data = orjson.dumps(feats, option=orjson.OPT_SERIALIZE_NUMPY)
                if not first:
                    fh.write(b",\n")
                fh.write(memoryview(data)[1:-1])  # without the list's [ ]
                first = False
                written += len(feats)
            fh.write(b"\n]}\n")
    return ExportStats(out, written, repaired, skipped, time.perf_counter() - t0)


def valid_rings(contour: np.ndarray, *, size: tuple[int, int]) -> tuple[list[np.ndarray | None], int, int]:
    """Closed, valid exterior rings for each contour (m, P, 2); None where none exists.

    Rings run counter-clockwise on screen (``wsicell.geometry.orient``: the store's contours
    already do); coordinates are clipped to the slide and rounded; an invalid polygon
    (self-crossing, collapsed by rounding) is repaired by ``wsicell.geometry.repair``
    (shapely.make_valid, the largest polygon's exterior). Returns the rings, the number
    repaired and the number skipped.
    """
    w, h = size
    ring = geometry.closed(geometry.orient(contour))  # (m, P+1, 2) float64
    np.clip(ring[..., 0], 0, w, out=ring[..., 0])
    np.clip(ring[..., 1], 0, h, out=ring[..., 1])
    ring = np.round(ring, COORD_DECIMALS)
    ok = star_shaped(ring)
    unsure = np.flatnonzero(~ok)
    if len(unsure):
        ok[unsure] = shapely.is_valid(shapely.polygons(ring[unsure]))
    rings: list[np.ndarray | None] = list(ring)
    repaired = skipped = 0
    for i in np.flatnonzero(~ok):
        fixed = repair(ring[i])
        rings[i] = fixed
        if fixed is None:
            skipped += 1
        else:
            repaired += 1
    return rings, repaired, skipped


def star_shaped(ring: np.ndarray) -> np.ndarray:
    """Rings (m, P+1, 2) whose vertices turn strictly one way, exactly once, around their mean.

    Such a polygon is star-shaped from that point and therefore simple (valid): a cheap,
    vectorised sufficient test that lets most nuclei skip shapely. False means "not sure".
    Every step turning the same way = all cross products of one sign; turning once = one
    crossing of the ray y = 0, x > 0 (a step with positive cross product crosses y = 0 upward
    only at x > 0).
    """
    d = ring - ring[:, :-1].mean(axis=1, keepdims=True)  # (m, P+1, 2)
    x0, y0, x1, y1 = d[:, :-1, 0], d[:, :-1, 1], d[:, 1:, 0], d[:, 1:, 1]
    cross = x0 * y1 - y0 * x1  # (m, P)
    up = ((y0 < 0) & (y1 >= 0)).sum(axis=1)
    down = ((y0 >= 0) & (y1 < 0)).sum(axis=1)
    return ((cross > 0).all(axis=1) & (up == 1)) | ((cross < 0).all(axis=1) & (down == 1))


def uuids(fingerprint: str, start: int, count: int) -> list[str]:
    """``cell_uuid(fingerprint, i)`` for i in start..start+count-1, vectorised (same values)."""
    prefix = UUID_NAMESPACE.bytes + f"{fingerprint}/".encode()
    sha1 = hashlib.sha1
    raw = b"".join([sha1(prefix + str(i).encode()).digest()[:16] for i in range(start, start + count)])
    b = np.frombuffer(raw, np.uint8).reshape(count, 16).copy()
    b[:, 6] = (b[:, 6] & 0x0F) | 0x50  # version 5
    b[:, 8] = (b[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    hexed = HEX[b].reshape(count, 32)  # (count, 32) single hex digits
    out = np.full((count, 36), b"-", dtype="S1")
    out[:, _HEX_POS] = hexed
    return out.view("S36").ravel().astype(str).tolist()


HEX = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), dtype="S1").reshape(256, 2)
_HEX_POS = np.array([i for i in range(36) if i not in (8, 13, 18, 23)])


def repair(ring: np.ndarray) -> np.ndarray | None:
    """``wsicell.geometry.repair`` at the export's coordinate precision."""
    return geometry.repair(ring, decimals=COORD_DECIMALS)


def cell_rings(rings: list[np.ndarray | None], *, expansion_px: float, size: tuple[int, int]) -> list:
    """Each nucleus ring expanded by ``expansion_px`` and clipped to the slide (or None)."""
    w, h = size
    out: list[np.ndarray | None] = []
    for r in rings:
        if r is None:
            out.append(None)
            continue
        geom = shapely.clip_by_rect(shapely.Polygon(r).buffer(expansion_px, quad_segs=2), 0, 0, w, h)
        polys = [g for g in getattr(geom, "geoms", [geom]) if g.geom_type == "Polygon" and g.area > 0]
        if not polys:
            out.append(r)
            continue
        coords = repair(np.asarray(max(polys, key=lambda g: g.area).exterior.coords))  # oriented, rounded
        out.append(coords if coords is not None else r)
    return out


def measurements(chunk: CellChunk, names: list[str]) -> list[dict[str, Any]]:
    """Flat name -> number objects: ``cluster`` and ``distance`` when the chunk has them, then
    the features ``names``; non-finite values (JSON has no NaN) are left out."""
    columns = [chunk.features.astype(np.float64)]
    value_names = list(names)
    if chunk.distance is not None:
        columns.insert(0, chunk.distance.astype(np.float64)[:, None])
        value_names.insert(0, "distance")
    values = np.round(np.concatenate(columns, axis=1), VALUE_DECIMALS)  # (m, [1 +] F)
    rows = values.tolist()
    if np.isfinite(values).all():
        meas = [dict(zip(value_names, row, strict=True)) for row in rows]
    else:
        meas = [{n: v for n, v in zip(value_names, row, strict=True) if np.isfinite(v)} for row in rows]
    if chunk.cluster is None:
        return meas
    return [{"cluster": c, **m} for c, m in zip(chunk.cluster.astype(np.int64).tolist(), meas, strict=True)]


def chunk_features(
    chunk: CellChunk, *, fingerprint: str, classes: list[dict], names: list[str], size: tuple[int, int],
    object_type: ObjectType, expansion_px: float,
) -> tuple[list[dict[str, Any]], int, int]:  # fmt: skip
    """The GeoJSON features of one chunk (skipping cells without a valid polygon)."""
    rings, repaired, skipped = valid_rings(chunk.contour, size=size)
    meas = measurements(chunk, names)
    index = chunk.classification
    if index is None:  # nuclei without cell types: QuPath shows them unclassified
        props = [{"objectType": object_type, "measurements": m} for m in meas]
    else:
        props = [{"objectType": object_type, "classification": classes[c], "measurements": m}
                 for c, m in zip(index.tolist(), meas, strict=True)]  # fmt: skip
    ids = uuids(fingerprint, chunk.start, len(rings))
    feats = []
    if object_type == "detection":
        for i, ring in enumerate(rings):
            if ring is None:
                continue
            feats.append({
                "type": "Feature",
                "id": ids[i],
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": props[i],
            })  # fmt: skip
    else:
        cells = cell_rings(rings, expansion_px=expansion_px, size=size)
        for i, ring in enumerate(rings):
            if ring is None:
                continue
            feats.append({
                "type": "Feature",
                "id": ids[i],
                "geometry": {"type": "Polygon", "coordinates": [cells[i]]},
                "nucleusGeometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": props[i],
            })  # fmt: skip
    return feats, repaired, skipped
