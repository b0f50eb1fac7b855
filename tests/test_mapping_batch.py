"""`wsicell map FOLDER --out DIR`: a whole study's maps, skipping, resuming and bad slides."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers.synthetic import build_store

from wsicell.cli import main
from wsicell.cluster import ClusterConfig, cluster_store
from wsicell.io.slide import fingerprint
from wsicell.mapping.batch import map_study


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, sample_slide: Path) -> tuple[Path, Path]:
    """A clustered store holding the sample slide (by fingerprint), and a folder of three
    slide files: two copies of the sample (same content, so the same cells) and a bad one."""
    root = tmp_path_factory.mktemp("batch")
    store, _ = build_store(root / "cells.zarr", slides=(900, 300), k=3, dim=16,
                           fingerprints=(fingerprint(sample_slide), "9" * 64))  # fmt: skip
    cluster_store(store, config=ClusterConfig(k=3, restarts=2))
    slides = root / "slides"
    (slides / "sub").mkdir(parents=True)
    shutil.copy(sample_slide, slides / "a.svs")
    shutil.copy(sample_slide, slides / "sub" / "b.svs")
    (slides / "bad.svs").write_bytes(b"not a slide" * 100)
    return root / "cells.zarr", slides


def test_folder_to_maps_with_a_bad_slide(study: tuple[Path, Path], tmp_path: Path) -> None:
    store, slides = study
    out = tmp_path / "maps"
    result = CliRunner().invoke(main, ["map", str(slides), "-s", str(store), "-o", str(out), "--png", "--workers", "2"])
    assert result.exit_code == 1, result.output
    assert "bad.svs" in result.output and "Error:" in result.output
    assert sorted(p.name for p in out.iterdir()) == [".wsicell-maps.json", "a.geojson", "a.png", "b.geojson", "b.png"]
    a = json.loads((out / "a.geojson").read_text())
    assert len(a["features"]) == 900 and a == json.loads((out / "b.geojson").read_text())

    # rerun: the done slides are skipped (their files untouched), the bad one fails again
    before = (out / "a.geojson").stat().st_mtime_ns
    report = map_study([slides], store=store, out_dir=out, png=True, progress=False)
    assert [(Path(s.path).name, s.status) for s in report.slides] == [
        ("a.svs", "skipped"), ("bad.svs", "failed"), ("b.svs", "skipped")]  # fmt: skip
    assert (out / "a.geojson").stat().st_mtime_ns == before


def test_resume_after_a_kill(study: tuple[Path, Path], tmp_path: Path) -> None:
    store, slides = study
    good = [slides / "a.svs", slides / "sub" / "b.svs"]
    out = tmp_path / "maps"
    map_study(good, store=store, out_dir=out, png=True, progress=False)
    # a kill while b was being written: its GeoJSON is a temporary file, its picture absent
    (out / "b.geojson").rename(out / ".b.geojson.12345.tmp")
    (out / "b.png").unlink()
    (out / "a.png").unlink()  # and a lost its picture: a slide is done only with all its files
    report = map_study(good, store=store, out_dir=out, png=True, progress=False)
    assert [s.status for s in report.slides] == ["done", "done"]
    assert (out / "b.geojson").is_file() and (out / "a.png").is_file() and (out / "b.png").is_file()
    forced = map_study(good, store=store, out_dir=out, png=True, force=True, progress=False)
    assert [s.status for s in forced.slides] == ["done", "done"]


def test_single_slide_mode_unchanged_and_name_clash(study: tuple[Path, Path], tmp_path: Path) -> None:
    store, slides = study
    one = tmp_path / "one.geojson.gz"
    result = CliRunner().invoke(main, ["map", str(slides / "a.svs"), "-s", str(store), "-o", str(one), "-q"])
    assert result.exit_code == 0 and one.is_file()
    shutil.copy(slides / "a.svs", tmp_path / "a.svs")
    clash = CliRunner().invoke(main, ["map", str(slides / "a.svs"), str(tmp_path / "a.svs"), "-s", str(store),
                                      "-o", str(tmp_path / "m")])  # fmt: skip
    assert clash.exit_code == 1 and "would both write a.geojson" in clash.output


@pytest.mark.slow
def test_maps_on_a_distributed_cluster(study: tuple[Path, Path], tmp_path: Path) -> None:
    from distributed import LocalCluster

    store, slides = study
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        report = map_study([slides / "a.svs", slides / "sub" / "b.svs"], store=store, out_dir=tmp_path / "d",
                           gzip=True, scheduler=cluster.scheduler_address, progress=False)  # fmt: skip
    assert [s.status for s in report.slides] == ["done", "done"]
    assert (tmp_path / "d" / "a.geojson.gz").is_file() and (tmp_path / "d" / "b.geojson.gz").is_file()


def test_other_settings_or_no_manifest_redo_the_maps(study: tuple[Path, Path], tmp_path: Path) -> None:
    from wsicell.mapping.batch import MANIFEST

    store, slides = study
    good = [slides / "a.svs", slides / "sub" / "b.svs"]
    out = tmp_path / "maps"
    map_study(good, store=store, out_dir=out, progress=False)
    assert [s.status for s in map_study(good, store=store, out_dir=out, progress=False).slides] == ["skipped"] * 2
    names = tmp_path / "names.yaml"
    names.write_text("clusters:\n  0: {name: Tumour}\n")
    renamed = map_study(good, store=store, out_dir=out, names=names, progress=False)  # new names: maps are stale
    assert [s.status for s in renamed.slides] == ["done"] * 2
    classes = {f["properties"]["classification"]["name"] for f in json.loads((out / "a.geojson").read_text())["features"]}
    assert "Tumour" in classes
    (out / MANIFEST).unlink()  # files of unknown making (an older version, or by hand): redone
    assert [s.status for s in map_study(good, store=store, out_dir=out, names=names, progress=False).slides] == ["done"] * 2


def test_folder_of_nuclei_without_clustering(extracted_store: Path, study: tuple[Path, Path], tmp_path: Path) -> None:
    """--nuclei-only in folder mode: an extracted store maps a folder; the bad slide is reported,
    a rerun skips the done slides, and mapping with cell types later redoes them."""
    _, slides = study
    out = tmp_path / "maps"
    args = ["map", str(slides), "--store", str(extracted_store), "--out", str(out), "--nuclei-only", "-q"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 1 and "bad.svs" in first.output
    docs = [json.loads((out / f"{name}.geojson").read_text()) for name in ("a", "b")]
    assert len(docs[0]["features"]) == len(docs[1]["features"]) > 1000
    assert all("classification" not in f["properties"] for f in docs[0]["features"])
    report = map_study([slides / "a.svs"], store=extracted_store, out_dir=out, nuclei_only=True, progress=False)
    assert [s.status for s in report.slides] == ["skipped"]
    with pytest.raises(Exception, match="no clustering"):
        map_study([slides / "a.svs"], store=extracted_store, out_dir=out, progress=False)
