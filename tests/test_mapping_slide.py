"""`wsicell map` and `wsicell gallery`: a slide in the store, a new slide, and bad input."""

from __future__ import annotations

import gzip
import json
import shutil
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from helpers.synthetic import SAMPLE_SIZE, build_store

from wsicell.cli import main
from wsicell.cluster import ClusterConfig, cluster_store
from wsicell.errors import SlideError, StoreError
from wsicell.io.slide import fingerprint
from wsicell.mapping import map_slide, png_path
from wsicell.mapping.slide import ANNOTATED
from wsicell.provenance import DOUBTED
from wsicell.store import CellStore


@pytest.fixture(scope="module")
def clustered(tmp_path_factory: pytest.TempPathFactory, sample_slide: Path) -> Path:
    """A synthetic store whose first slide is the sample slide (by fingerprint), clustered."""
    path = tmp_path_factory.mktemp("map") / "cells.zarr"
    store, _ = build_store(path, slides=(2500, 800), k=4, dim=16, fingerprints=(fingerprint(sample_slide), "9" * 64))
    cluster_store(store, config=ClusterConfig(k=4, restarts=2))
    return path


@pytest.mark.slow
def test_in_store_slide_to_geojson_and_png(clustered: Path, sample_slide: Path, tmp_path: Path) -> None:
    import geopandas as gpd

    out = tmp_path / "sample.geojson"
    result = map_slide(sample_slide, store=clustered, out=out, png=True, png_size=800, progress=False)
    assert not result.added and result.n_cells == 2500 and result.counts.sum() == 2500
    frame = gpd.read_file(out, engine="pyogrio")
    assert len(frame) == 2500 == result.geojson.written
    assert shapely.is_valid(frame.geometry.values).all()
    x0, y0, x1, y1 = frame.total_bounds
    assert x0 >= 0 and y0 >= 0 and x1 <= SAMPLE_SIZE[0] and y1 <= SAMPLE_SIZE[1]
    doc = json.loads(out.read_text())
    ids = [f["id"] for f in doc["features"]]
    assert len(set(ids)) == len(ids) and all(uuid.UUID(i).version == 5 for i in ids)
    labels = CellStore.open(clustered).find_slide(fingerprint=fingerprint(sample_slide)).array("cluster")[:]
    got = [f["properties"]["measurements"]["cluster"] for f in doc["features"]]
    assert got == labels.tolist()  # feature i is cell i
    image = cv2.imread(str(result.png))
    assert result.png == png_path(out) == tmp_path / "sample.png"
    assert image.shape[0] == 800 and image.shape[1] > 800 * SAMPLE_SIZE[0] / SAMPLE_SIZE[1] + 100


@pytest.mark.slow
def test_cli_map_names_gzip_force_and_rerun(clustered: Path, sample_slide: Path, tmp_path: Path) -> None:
    names = tmp_path / "names.yaml"
    names.write_text("clusters:\n  0: {name: Tumour, color: [10, 20, 30]}\n")
    out = tmp_path / "s.geojson.gz"
    args = ["map", str(sample_slide), "--store", str(clustered), "--out", str(out), "--names", str(names), "-q"]
    runner = CliRunner()
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    with gzip.open(out, "rt") as fh:
        doc = json.load(fh)
    classes = {f["properties"]["classification"]["name"]: f["properties"]["classification"]["color"]
               for f in doc["features"]}  # fmt: skip
    assert classes["Tumour"] == [10, 20, 30] and "Cluster 1" in classes
    before = out.read_bytes()
    again = runner.invoke(main, args)
    assert again.exit_code == 1 and "already exists; pass --force" in again.output and "Traceback" not in again.output
    picture = tmp_path / "pictures" / "overlay.png"
    forced = runner.invoke(main, [*args, "--force", "--png", str(picture), "--png-size", "512"])
    assert forced.exit_code == 0, forced.output
    assert cv2.imread(str(picture)).shape[0] == 512
    with gzip.open(out, "rb") as a:
        assert a.read() == gzip.decompress(before)  # same ids and content on rerun


@pytest.mark.slow
def test_cli_gallery(clustered: Path, tmp_path: Path) -> None:
    out = tmp_path / "gallery.png"
    result = CliRunner().invoke(main, ["gallery", "--store", str(clustered), "--out", str(out), "--per-cluster", "8"])
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(out))
    assert image is not None and image.shape[0] > 4 * 64


@pytest.mark.slow
def test_map_bad_input(clustered: Path, sample_slide: Path, tmp_path: Path) -> None:
    with pytest.raises(SlideError, match="file not found"):
        map_slide(tmp_path / "missing.svs", store=clustered, out=tmp_path / "a.geojson")
    not_a_slide = tmp_path / "notes.svs"
    not_a_slide.write_text("hello")
    unclustered = tmp_path / "raw.zarr"
    build_store(unclustered, slides=(200,), k=2, dim=8)
    with pytest.raises(StoreError, match="run `wsicell cluster --store"):
        map_slide(sample_slide, store=unclustered, out=tmp_path / "b.geojson")
    runner = CliRunner()
    bad = runner.invoke(main, ["map", str(not_a_slide), "--store", str(clustered), "--out", str(tmp_path / "c.geojson")])
    assert bad.exit_code == 1 and "notes.svs" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "c.geojson").exists()
    no_store = runner.invoke(main, ["map", str(sample_slide), "--store", str(tmp_path / "none.zarr"),
                                    "--out", str(tmp_path / "d.geojson")])  # fmt: skip
    assert no_store.exit_code == 1 and "no cell store" in no_store.output


@pytest.mark.slow
def test_new_slide_is_extracted_embedded_and_assigned(
    extracted_store: Path, sample_slide: Path, tmp_path: Path
) -> None:
    """The sample slide, mapped as a new slide, gets the labels it had in the store."""
    from helpers.stores import build_crop_store

    from wsicell.embed import embed_store
    from wsicell.train.config import TrainConfig
    from wsicell.train.loop import train

    build_crop_store(tmp_path / "train.zarr", sample_slide, sizes=(256,))  # a tiny model, trained for real
    run = train(store=tmp_path / "train.zarr", out=tmp_path / "run", progress=False, config=TrainConfig(
        epochs=1, batch_size=64, queue_size=128, width=8, stem="imagenet", warmup_epochs=0, num_workers=1))  # fmt: skip
    store_path = tmp_path / "cells.zarr"
    shutil.copytree(extracted_store, store_path)
    embed_store(store=store_path, run=run, progress=False)
    store = CellStore.open(store_path, mode="r+")
    cluster_store(store, config=ClusterConfig(k=3, restarts=1))
    (sid,) = store.slide_ids()
    before = store.slide(sid).array("cluster")[:]
    del store.root["slides"][sid]  # the store now has centroids but not this slide

    result = map_slide(sample_slide, store=store_path, out=tmp_path / "new.geojson", progress=False)
    assert result.added and result.n_cells == len(before)
    after = CellStore.open(store_path).slide(sid).array("cluster")[:]
    assert (after == before).mean() > 0.999  # same settings + same model -> same clusters
    assert result.geojson.written + result.geojson.skipped == len(before)


def test_map_classes_from_the_cell_classifier(clustered: Path, sample_slide: Path, tmp_path: Path) -> None:
    """`name --classifier` then `map --classes`: cells named and coloured by class, cluster kept."""
    import numpy as np

    store = tmp_path / "cells.zarr"
    shutil.copytree(clustered, store)
    slide = CellStore.open(store).find_slide(fingerprint=fingerprint(sample_slide))
    cluster = slide.array("cluster")[:]
    xy = slide.array("centroid")[:]
    rng = np.random.default_rng(0)
    features = []
    for c in range(4):
        rows = rng.choice(np.flatnonzero(cluster == c), 10, replace=False)
        features.append({"type": "Feature", "geometry": {"type": "MultiPoint", "coordinates": xy[rows].tolist()},
                         "properties": {"classification": {"name": f"Type {c % 2}", "color": [40 * c, 100, 100]}}})  # fmt: skip
    labels = tmp_path / "labels.geojson"
    labels.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    args = ["name", "-s", str(store), "--labels", str(labels), "--slide", slide.id, "-o", str(tmp_path / "n.yaml")]
    assert CliRunner().invoke(main, [*args, "--classifier", "-q"]).exit_code == 0
    out = tmp_path / "classes.geojson"
    result = CliRunner().invoke(main, ["map", str(sample_slide), "-s", str(store), "-o", str(out), "--classes", "--png", "-q"])
    assert result.exit_code == 0, result.output
    feats = json.loads(out.read_text())["features"]
    names = [f["properties"]["classification"]["name"] for f in feats]
    clusters = [f["properties"]["measurements"]["cluster"] for f in feats]
    assert set(names) == {"Type 0", "Type 1"}
    assert np.mean([n == f"Type {c % 2}" for n, c in zip(names, clusters, strict=True)]) > 0.95
    assert {tuple(f["properties"]["classification"]["color"]) for f in feats} == {(0, 100, 100), (40, 100, 100)}
    assert png_path(out).is_file()
    both = CliRunner().invoke(main, ["map", str(sample_slide), "-s", str(store), "-o", str(out), "--classes",
                                     "--names", str(tmp_path / "n.yaml"), "-f"])  # fmt: skip
    assert both.exit_code == 1 and "give one" in both.output


@pytest.mark.slow
def test_nuclei_alone_from_an_extracted_store(extracted_store: Path, sample_slide: Path, tmp_path: Path) -> None:
    """--nuclei-only: an extracted store (no embedding, no clustering) gives every stored nucleus,
    unclassified, with its measurements; without --nuclei-only such a store is refused, naming it."""
    store_path = tmp_path / "cells.zarr"
    shutil.copytree(extracted_store, store_path)
    with pytest.raises(StoreError, match="no clustering; run `wsicell train`.*--nuclei-only"):
        map_slide(sample_slide, store=store_path, out=tmp_path / "refused.geojson", progress=False)
    out = tmp_path / "nuclei.geojson"
    result = map_slide(sample_slide, store=store_path, out=out, png=True, png_size=600, nuclei_only=True, progress=False)
    (slide,) = CellStore.open(store_path).slides()
    assert not result.added and result.n_cells == slide.n_cells > 1000 and result.counts.tolist() == [slide.n_cells]
    import geopandas as gpd

    assert shapely.is_valid(gpd.read_file(out, engine="pyogrio").geometry.values).all()
    doc = json.loads(out.read_text())
    assert len(doc["features"]) == result.geojson.written == slide.n_cells - result.geojson.skipped
    props = doc["features"][0]["properties"]
    assert props["objectType"] == "detection" and "classification" not in props
    assert set(props["measurements"]) == {*slide.feature_names, ANNOTATED}  # no cluster, no distance
    # P(annotated) of each nucleus: the doubted ones are those extraction counted
    p = np.array([f["properties"]["measurements"][ANNOTATED] for f in doc["features"]])
    assert ((p >= 0) & (p <= 1)).all() and abs(int((p < 0.5).sum()) - slide.attrs[DOUBTED]) <= 2  # (rounded to 4 decimals)
    first = shapely.Polygon(doc["features"][0]["geometry"]["coordinates"][0])
    assert first.centroid.distance(shapely.Polygon(slide.array("contour")[0]).centroid) < 1.0  # feature i is cell i
    assert cv2.imread(str(result.png)).shape[0] == 600
    with pytest.raises(Exception, match="--nuclei-only writes nuclei without cell types"):
        map_slide(sample_slide, store=store_path, out=tmp_path / "x.geojson", nuclei_only=True, classes=True)

    del CellStore.open(store_path, mode="r+").root["slides"][slide.id]  # a new slide: extracted only
    cli = CliRunner().invoke(main, ["map", str(sample_slide), "--store", str(store_path), "--nuclei-only",
                                    "--out", str(tmp_path / "new.geojson")])  # fmt: skip
    assert cli.exit_code == 0, cli.output
    said = " ".join(cli.output.split())  # the console wraps long lines
    assert "extracting it with the store's settings" in said and "the slide was added to the store" in said
    (again,) = CellStore.open(store_path).slides()
    assert again.n_cells == slide.n_cells and not again.has("embedding")
