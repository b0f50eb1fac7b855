"""`wsicell name`: QuPath labels matched to cells, clusters named by majority, the names
YAML read back by `map --names`, labels too far away reported, and the cell classifier."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.synthetic import build_store
from scipy.spatial import cKDTree

from wsicell.cli import main
from wsicell.cluster import ClusterConfig, cluster_store
from wsicell.errors import ConfigError
from wsicell.export.names import load_styles
from wsicell.store import CellStore
from wsicell.study.labels import match_labels, read_labels

CLASSES = ["Tumor", "Lymphocyte", "Stroma"]
COLORS = [[200, 0, 0], [160, 90, 160], [150, 200, 150]]


@pytest.fixture(scope="module")
def clustered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("naming") / "cells.zarr"
    store, truth = build_store(path, slides=(1500, 600), k=3, dim=16)
    cluster_store(store, config=ClusterConfig(k=3, restarts=2))
    return path, truth


def far_point(centroids: np.ndarray, *, min_px: float) -> list[float]:
    """A point inside the slide farther than ``min_px`` from every centroid."""
    tree = cKDTree(centroids)
    for x in range(50, 2200, 37):
        for y in range(50, 2900, 41):
            if tree.query([x, y])[0] > min_px:
                return [float(x), float(y)]
    raise AssertionError("no empty spot")


def qupath_labels(path: Path, slide, truth: np.ndarray, *, per_class: int = 12) -> Path:
    """Labels as QuPath exports them: one Points annotation (MultiPoint) per class, plus two
    classified detections (polygons) and one point far from any nucleus."""
    centroids = slide.array("centroid")[:]
    rng = np.random.default_rng(3)
    features = []
    for c, name in enumerate(CLASSES):
        rows = rng.choice(np.flatnonzero(truth == c), per_class, replace=False)
        pts = (centroids[rows] + rng.uniform(-1.5, 1.5, (per_class, 2))).tolist()  # a click is never exact
        features.append({"type": "Feature", "id": f"points-{c}", "geometry": {"type": "MultiPoint", "coordinates": pts},
                         "properties": {"objectType": "annotation", "classification": {"name": name, "color": COLORS[c]}}})
    row = int(np.flatnonzero(truth == 0)[-1])
    x, y = centroids[row].tolist()
    features.append({"type": "Feature", "id": "det", "geometry": {"type": "Polygon", "coordinates": [[
        [x - 4, y - 4], [x + 4, y - 4], [x + 4, y + 4], [x - 4, y + 4], [x - 4, y - 4]]]},
        "properties": {"objectType": "detection", "classification": {"name": "Tumor", "color": COLORS[0]}}})
    features.append({"type": "Feature", "id": "far", "geometry": {"type": "Point", "coordinates": far_point(centroids, min_px=40)},
                     "properties": {"objectType": "annotation", "classification": {"name": "Stroma", "color": COLORS[2]}}})
    features.append({"type": "Feature", "id": "unclassified", "geometry": {"type": "Point", "coordinates": [x, y]},
                     "properties": {"objectType": "annotation"}})  # no class: ignored
    features.append({"type": "Feature", "id": "wsicell", "geometry": {"type": "Point", "coordinates": [x, y]},
                     "properties": {"objectType": "detection", "classification": {"name": "Cluster 2", "color": [1, 2, 3]}}})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def test_name_round_trip_and_far_label_reported(clustered: tuple[Path, dict], tmp_path: Path) -> None:
    store_path, truth = clustered
    slide = CellStore.open(store_path).slides()[0]
    labels = qupath_labels(tmp_path / f"{slide.attrs['name']}-labels.geojson", slide, truth[slide.id])
    out = tmp_path / "names.yaml"
    result = CliRunner().invoke(main, ["name", "-s", str(store_path), "--labels", str(labels), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "37 labels matched" in result.output.replace("\n", " ") or "37 of 38" in result.output
    assert "not matched: Stroma" in result.output and "µm away" in result.output
    assert "ignored 1 objects classified 'Cluster N'" in result.output
    styles = load_styles(out, k=3)  # what `map --names` reads
    cluster = slide.array("cluster")[:]
    for c in range(3):  # each cluster is one blob: named after it, in the class's QuPath colour
        true = np.bincount(truth[slide.id][cluster == c], minlength=3).argmax()
        assert styles[c].name == CLASSES[true] and list(styles[c].color) == COLORS[true]
    assert "agreement 100 %" in out.read_text()


def test_match_labels_reports_far_and_duplicates() -> None:
    centroids = np.array([[100.0, 100.0], [200.0, 100.0]])
    xy = np.array([[101.0, 100.0], [100.0, 103.0], [150.0, 100.0], [199.0, 99.0]])
    m = match_labels(xy, centroids, mpp=0.5, max_distance_um=5.0)  # 10 px
    assert m.cell.tolist() == [0, -1, -1, 1]
    assert m.status == ["matched", "duplicate", "too far", "matched"]
    assert m.distance_um[2] == pytest.approx(25.0)
    with pytest.raises(ConfigError):
        match_labels(xy, centroids, mpp=0.5, max_distance_um=0)


def test_read_labels_accepts_qupath_lists_and_rejects_junk(tmp_path: Path) -> None:
    p = tmp_path / "l.geojson"
    p.write_text(json.dumps([{"type": "Feature", "geometry": {"type": "Point", "coordinates": [5, 6]},
                              "properties": {"classification": {"name": "Tumor", "colorRGB": -65536}}}]))  # fmt: skip
    lab = read_labels(p)
    assert lab.classes == ["Tumor"] and lab.xy.tolist() == [[5.0, 6.0]] and lab.colors["Tumor"] == (255, 0, 0)
    cell = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [40, 0], [40, 40], [0, 40], [0, 0]]]},
            "nucleusGeometry": {"type": "Polygon", "coordinates": [[[2, 2], [6, 2], [6, 6], [2, 6], [2, 2]]]},
            "properties": {"objectType": "cell", "classification": {"name": "Lymphocyte", "color": [1, 2, 3]}}}
    p.write_text(json.dumps({"type": "FeatureCollection", "features": [cell]}))
    assert read_labels(p).xy.tolist() == [[4.0, 4.0]]  # the nucleus's centroid, not the cell's (20, 20)
    p.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(ConfigError, match="no classified"):
        read_labels(p)
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        read_labels(p)


def test_classifier_classifies_every_cell(clustered: tuple[Path, dict], tmp_path: Path) -> None:
    import shutil

    store_path = tmp_path / "cells.zarr"
    shutil.copytree(clustered[0], store_path)
    truth = clustered[1]
    slide = CellStore.open(store_path).slides()[0]
    labels = qupath_labels(tmp_path / "labels.geojson", slide, truth[slide.id])
    result = CliRunner().invoke(main, ["name", "-s", str(store_path), "--labels", str(labels), "--slide", slide.id,
                                       "-o", str(tmp_path / "n.yaml"), "--classifier"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cross-validated accuracy" in result.output
    cells = CellStore.open(store_path)
    assert cells.root.attrs["cell_classes"]["names"] == sorted(CLASSES)
    for s in cells.slides():
        pred = np.asarray(s.array("cell_class")[:])
        want = np.array([sorted(CLASSES).index(CLASSES[t]) for t in truth[s.id]])
        assert (pred == want).mean() > 0.95  # every cell, the unlabelled slide too


def classified_copy(clustered: tuple[Path, dict], tmp_path: Path) -> Path:
    """A copy of the clustered store whose cells `wsicell name --classifier` classified."""
    import shutil

    store_path = tmp_path / "cells.zarr"
    shutil.copytree(clustered[0], store_path)
    slide = CellStore.open(store_path).slides()[0]
    labels = qupath_labels(tmp_path / "labels.geojson", slide, clustered[1][slide.id])
    args = ["name", "-s", str(store_path), "--labels", str(labels), "--slide", slide.id, "-o", str(tmp_path / "n.yaml")]
    assert CliRunner().invoke(main, [*args, "--classifier", "-q"]).exit_code == 0
    return store_path


def test_classes_reach_the_anndata_export(clustered: tuple[Path, dict], tmp_path: Path) -> None:
    anndata = pytest.importorskip("anndata")
    store_path = classified_copy(clustered, tmp_path)
    assert CliRunner().invoke(main, ["export", "-s", str(store_path), "-o", str(tmp_path / "a.h5ad"), "-q"]).exit_code == 0
    adata = anndata.read_h5ad(tmp_path / "a.h5ad")
    assert list(adata.obs["class"].cat.categories) == sorted(CLASSES)
    assert list(adata.uns["class_colors"]) == ["#a05aa0", "#96c896", "#c80000"]  # Lymphocyte, Stroma, Tumor


def test_summarize_by_class(clustered: tuple[Path, dict], tmp_path: Path) -> None:
    import pandas as pd

    store_path = classified_copy(clustered, tmp_path)
    out = tmp_path / "classes.csv"
    result = CliRunner().invoke(main, ["summarize", "-s", str(store_path), "-o", str(out), "--classes",
                                       "--permutations", "5", "--png"])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert list(table["name"][:3]) == sorted(CLASSES) and "class" in table.columns
    for s in CellStore.open(store_path).slides():
        rows = table[table["slide_id"] == s.id].sort_values("class")
        np.testing.assert_array_equal(rows["count"], np.bincount(s.array("cell_class")[:], minlength=3))


def test_which_slide_a_labels_file_belongs_to(clustered: tuple[Path, dict]) -> None:
    from wsicell.study.naming import slide_for

    cells = CellStore.open(clustered[0])
    first, second = cells.slides()  # named synthetic0, synthetic1
    assert slide_for(cells, Path("x.geojson"), second.id).id == second.id
    assert slide_for(cells, Path("x.geojson"), "/data/synthetic1").id == second.id
    assert slide_for(cells, Path("synthetic0-labels.geojson"), None).id == first.id
    with pytest.raises(ConfigError, match="no such slide"):
        slide_for(cells, Path("x.geojson"), "synthetic7")
    with pytest.raises(ConfigError, match="which slide"):
        slide_for(cells, Path("labels.geojson"), None)
