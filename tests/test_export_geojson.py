"""The streaming GeoJSON writer, checked by real readers (pyogrio/GDAL, shapely, gzip, json)
against each QuPath rule of docs/qupath.md."""

from __future__ import annotations

import gzip
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
import shapely
from helpers.synthetic import FEATURES, nuclei

from wsicell.errors import WsicellError
from wsicell.export.geojson import (
    UUID_NAMESPACE,
    CellChunk,
    cell_uuid,
    star_shaped,
    uuids,
    write_geojson,
)
from wsicell.export.names import default_styles
from wsicell.geometry import signed_area

SIZE = (2220, 2967)
FP = "f" * 64


def chunks(n: int = 3000, *, rows: int = 1000, seed: int = 0, broken: bool = True) -> list[CellChunk]:
    """Cells in chunks; with ``broken``: a bow-tie, a collapsed outline, a point out of the
    slide and a NaN measurement, as a real segmenter can produce."""
    contour, _, _ = nuclei(n, seed=seed, size=SIZE)
    rng = np.random.default_rng(seed)
    features = rng.uniform(0, 50, (n, len(FEATURES))).astype(np.float32)
    if broken:
        contour[5] = contour[5][[*range(0, 16), *range(31, 15, -1)]]  # crosses itself (bow-tie-ish)
        contour[5, 8:24] = contour[5, 8:24][::-1]
        contour[6] = contour[6, :1]  # all points equal: no area
        contour[7, 0] = (-40.0, SIZE[1] + 50.0)  # outside the slide
        features[8, 1] = np.nan
    cluster = rng.integers(0, 5, n)
    distance = rng.uniform(0, 1, n).astype(np.float32)
    return [CellChunk(s, contour[s : s + rows], cluster[s : s + rows], distance[s : s + rows], features[s : s + rows])
            for s in range(0, n, rows)]  # fmt: skip


def write(path: Path, **kwargs) -> object:
    options = {"fingerprint": FP, "styles": default_styles(5), "feature_names": FEATURES, "size": SIZE,
               "mpp": 0.5, **kwargs}  # fmt: skip
    return write_geojson(path, kwargs.pop("cells", chunks()), **{k: v for k, v in options.items() if k != "cells"})


def load(path: Path) -> dict:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as fh:
        return json.load(fh)


def test_qupath_rules_and_readers(tmp_path: Path) -> None:
    import geopandas as gpd

    out = tmp_path / "slide.geojson"
    stats = write(out)
    assert stats.written == 2999 and stats.skipped == 1 and stats.repaired >= 1
    doc = load(out)
    assert doc["type"] == "FeatureCollection" and isinstance(doc["features"], list)  # not a bare list
    ids = []
    for f in doc["features"]:
        assert f["type"] == "Feature"
        ids.append(f["id"])
        assert str(uuid.UUID(f["id"])) == f["id"]  # a UUID string
        props = f["properties"]
        assert props["objectType"] == "detection"  # inside properties
        cls = props["classification"]
        assert isinstance(cls, dict) and set(cls) == {"name", "color"}  # an object, not a string
        assert len(cls["color"]) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in cls["color"])
        meas = props["measurements"]
        assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in meas.values())  # flat numbers
        assert {"cluster", "distance"} <= set(meas) and cls["name"] == f"Cluster {meas['cluster']}"
        ring = f["geometry"]["coordinates"][0]
        assert f["geometry"]["type"] == "Polygon" and ring[0] == ring[-1]  # closed
        assert signed_area(np.asarray(ring[:-1]))[()] < 0  # exterior counter-clockwise on screen (y down)
    assert len(set(ids)) == len(ids)
    nan_cell = next(f for f in doc["features"] if f["id"] == cell_uuid(FP, 8))
    assert "perimeter_um" not in nan_cell["properties"]["measurements"]  # NaN left out, not written
    assert "area_um2" in nan_cell["properties"]["measurements"]

    frame = gpd.read_file(out, engine="pyogrio")  # GDAL's GeoJSON driver
    assert len(frame) == 2999
    assert shapely.is_valid(frame.geometry.values).all()
    x0, y0, x1, y1 = frame.total_bounds
    assert x0 >= 0 and y0 >= 0 and x1 <= SIZE[0] and y1 <= SIZE[1]
    assert (shapely.area(frame.geometry.values) > 0).all()


def test_gzip_by_name_and_deterministic_ids(tmp_path: Path) -> None:
    a, b = tmp_path / "a.geojson.gz", tmp_path / "b.geojson.gz"
    write(a)
    write(b)
    with gzip.open(a, "rb") as fa, gzip.open(b, "rb") as fb:
        assert fa.read() == fb.read()  # reruns: same ids, same bytes
    doc = load(a)
    assert doc["features"][0]["id"] == cell_uuid(FP, 0) == str(uuid.uuid5(UUID_NAMESPACE, f"{FP}/0"))
    other = write(tmp_path / "c.geojson", fingerprint="0" * 64)
    assert load(other.path)["features"][0]["id"] != doc["features"][0]["id"]  # per slide


def test_vectorised_uuids_equal_uuid5() -> None:
    assert uuids(FP, 123, 500) == [cell_uuid(FP, i) for i in range(123, 623)]
    assert all(uuid.UUID(u).version == 5 for u in uuids(FP, 0, 50))


def test_star_shaped_is_only_said_of_valid_polygons() -> None:
    rng = np.random.default_rng(1)
    rings = rng.uniform(0, 10, (5000, 7, 2))
    rings = np.concatenate([rings, rings[:, :1]], axis=1)
    star = star_shaped(rings)
    assert shapely.is_valid(shapely.polygons(rings[star])).all()
    contour, _, _ = nuclei(200, seed=2)
    closed = np.concatenate([contour, contour[:, :1]], axis=1).astype(np.float64)
    assert star_shaped(closed).all() and star_shaped(closed[:, ::-1]).all()  # both orientations


def test_cell_objects_carry_nucleus_geometry(tmp_path: Path) -> None:
    out = tmp_path / "cells.geojson"
    write(out, object_type="cell", cell_expansion_um=2.0, cells=chunks(300, rows=100, broken=False))
    doc = load(out)
    for f in doc["features"]:
        assert f["properties"]["objectType"] == "cell"
        cell, nucleus = shapely.geometry.shape(f["geometry"]), shapely.geometry.shape(f["nucleusGeometry"])
        assert cell.is_valid and nucleus.is_valid
        assert cell.buffer(1e-6).contains(nucleus) and cell.area > nucleus.area


def test_existing_output_needs_force_and_survives_failure(tmp_path: Path) -> None:
    out = tmp_path / "x.geojson"
    out.write_text("precious")
    with pytest.raises(WsicellError, match="already exists; pass --force"):
        write(out)
    assert out.read_text() == "precious"

    def failing():
        yield from chunks(200, rows=100)
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write(out, force=True, cells=failing())
    assert out.read_text() == "precious"  # nothing already written is lost
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind
    write(out, force=True)
    assert load(out)["type"] == "FeatureCollection"


def test_tiatoolbox_annotation_store_imports_it(tmp_path: Path) -> None:
    pytest.importorskip("tiatoolbox")
    # DictionaryStore parses like SQLiteStore; the latter needs a Python whose sqlite3 can
    # load extensions, which some Python builds lack.
    from tiatoolbox.annotation.storage import DictionaryStore

    out = tmp_path / "t.geojson"
    write(out, cells=chunks(500, rows=250))
    store = DictionaryStore.from_geojson(out)
    assert len(store) == 499
    classes = {a.properties["classification"]["name"] for a in store.values()}
    assert classes and all(name.startswith("Cluster ") for name in classes)


def test_self_intersecting_contour_is_repaired_oriented_and_closed(tmp_path: Path) -> None:
    """A figure eight drawn clockwise on screen: the export keeps its larger lobe, valid,
    closed and counter-clockwise on screen, like every other ring."""
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    eight = np.stack([500 + 40 * np.sin(t), 600 + 25 * np.sin(2 * t) * (1 + 0.3 * (t < np.pi))], axis=1)
    assert not shapely.Polygon(eight).is_valid
    cells = [CellChunk(0, eight[None].astype(np.float32), np.zeros(1, np.int64), np.zeros(1, np.float32),
                       np.ones((1, len(FEATURES)), np.float32))]  # fmt: skip
    stats = write(tmp_path / "eight.geojson", cells=cells)
    assert (stats.written, stats.repaired, stats.skipped) == (1, 1, 0)
    ring = np.asarray(load(tmp_path / "eight.geojson")["features"][0]["geometry"]["coordinates"][0])
    assert (ring[0] == ring[-1]).all() and shapely.Polygon(ring).is_valid
    assert signed_area(ring[:-1])[()] < 0
    lobes = shapely.make_valid(shapely.Polygon(eight)).geoms
    assert shapely.Polygon(ring).area == pytest.approx(max(g.area for g in lobes), rel=0.01)
