"""`wsicell summarize`: the study table and the composition picture on a clustered store."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from helpers.synthetic import build_store

from wsicell.cli import main
from wsicell.cluster import ClusterConfig, cluster_store
from wsicell.export.names import load_styles
from wsicell.provenance import DOUBTED
from wsicell.segment.annotator_filter import FILTER_PATHS, AnnotatorFilter, descriptions
from wsicell.store import CellStore
from wsicell.study.enrichment import slide_enrichment
from wsicell.study.summary import (
    StudySummary,
    SummaryConfig,
    summarize_slide,
    summarize_store,
    summary_table,
)
from wsicell.study.tissue import FROM_CELLS, FROM_MASK, occupancy_area_mm2


@pytest.fixture(scope="module")
def clustered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("study") / "cells.zarr"
    store, _ = build_store(path, slides=(1500, 700), k=3, dim=16)
    cluster_store(store, config=ClusterConfig(k=3, restarts=2))
    store.slides()[1].set_attrs(tissue_area_mm2=0.5)  # as recorded by extraction since this version
    return path


def test_cli_table_matches_the_store(clustered: Path, tmp_path: Path) -> None:
    names = tmp_path / "names.yaml"
    names.write_text("clusters:\n  1: {name: Lymphocyte, color: '#3cb44b'}\n")
    out = tmp_path / "study.csv"
    result = CliRunner().invoke(main, ["summarize", "-s", str(clustered), "-o", str(out), "--names", str(names),
                                       "--png", "--permutations", "20", "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    slides = CellStore.open(clustered).slides()
    assert len(table) == 2 * 3 and list(table["name"][:3]) == ["Cluster 0", "Lymphocyte", "Cluster 2"]
    for s in slides:
        rows = table[table["slide_id"] == s.id].sort_values("cluster")
        labels = s.array("cluster")[:]
        counts = np.bincount(labels, minlength=3)
        np.testing.assert_array_equal(rows["count"], counts)
        np.testing.assert_allclose(rows["fraction"], counts / counts.sum(), rtol=1e-5)
        area = s.array("features")[:, 0]  # area_um2
        np.testing.assert_allclose(rows["mean_area_um2"], [area[labels == c].mean() for c in range(3)], rtol=1e-5)
        assert rows["mean_eccentricity"].notna().all() and rows["mean_haematoxylin_od_mean"].isna().all()
        assert rows["doubted_fraction"].isna().all()  # no tile features here: the filter cannot judge them
        z = slide_enrichment(labels, s.array("centroid")[:], mpp=s.mpp, radius_um=20.0, k=3, n_perms=20).zscore
        np.testing.assert_allclose(rows[[f"nhood_z_{j}" for j in range(3)]].to_numpy(), z, rtol=1e-5)
    first, second = (table[table["slide_id"] == s.id] for s in slides)
    assert (first["tissue_source"] == FROM_CELLS).all() and (second["tissue_source"] == FROM_MASK).all()
    np.testing.assert_allclose(second["density_per_mm2"], second["count"] / 0.5, rtol=1e-5)
    png = cv2.imread(str(out.with_suffix(".png")))
    assert png is not None and png.shape[1] > 900
    assert CliRunner().invoke(main, ["summarize", "-s", str(clustered), "-o", str(out)]).exit_code == 1  # exists


def test_parquet_and_no_enrichment(clustered: Path, tmp_path: Path) -> None:
    out = tmp_path / "study.parquet"
    result = CliRunner().invoke(main, ["summarize", "-s", str(clustered), "-o", str(out), "--radius", "0", "-q"])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out)
    assert len(table) == 6 and not any(c.startswith("nhood_z") for c in table.columns)
    bad = CliRunner().invoke(main, ["summarize", "-s", str(clustered), "-o", str(tmp_path / "t.xlsx")])
    assert bad.exit_code == 1 and ".csv or .parquet" in bad.output


def test_summary_reports_progress_per_slide(clustered: Path) -> None:
    seen = []
    summary = summarize_store(clustered, config=SummaryConfig(n_perms=5), progress=seen.append)
    assert [s.slide_id for s in seen] == [s.slide_id for s in summary.slides] and summary.counts().sum() == 2200


def test_occupancy_area_of_a_filled_square() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 2000, (40_000, 2))  # 1 mm x 1 mm at 0.5 µm/px, dense
    assert occupancy_area_mm2(xy, mpp=0.5) == pytest.approx(1.0, rel=0.06)
    assert occupancy_area_mm2(np.zeros((0, 2)), mpp=0.5) == 0.0


def test_exact_enrichment_from_the_cli(clustered: Path, tmp_path: Path) -> None:
    out = tmp_path / "exact.csv"
    result = CliRunner().invoke(main, ["summarize", "-s", str(clustered), "-o", str(out), "--permutations", "0"])
    assert result.exit_code == 0, result.output
    assert "exact permutation moments" in result.output
    z = pd.read_csv(out)[[f"nhood_z_{j}" for j in range(3)]].to_numpy()
    assert np.isfinite(z).all()
    bad = CliRunner().invoke(main, ["summarize", "-s", str(clustered), "-o", str(tmp_path / "b.csv"), "--permutations", "1"])
    assert bad.exit_code == 1 and "0 (exact moments) or >= 2" in bad.output


def test_each_clusters_share_of_doubted_nuclei(extracted_store: Path, tmp_path: Path) -> None:
    """On the real extracted sample slide (HV-net nuclei, tile features), a cluster's
    doubted_fraction is the share of its nuclei whose P(annotated), from the store's own
    measurements and tile features, is under 0.5; the slide's total is extraction's count."""
    store = tmp_path / "cells.zarr"
    shutil.copytree(extracted_store, store)
    slide = CellStore.open(store, mode="r+").slides()[0]
    area = slide.array("features")[:, slide.feature_names.index("area_um2")]
    labels = (area > np.median(area)).astype("int32")  # two "clusters": small and large nuclei
    slide.create_array("cluster", shape=labels.shape, dtype="int32", chunks=(16384,))[:] = labels
    summary = summarize_slide(slide, k=2, config=SummaryConfig(radius_um=0))
    p = AnnotatorFilter.load(FILTER_PATHS["hvnet"]).probability(
        descriptions(slide.array("features")[:], slide.array("tile_features")[:]))  # fmt: skip
    expected = [float((p[labels == c] < 0.5).mean()) for c in range(2)]
    assert summary.doubted is not None and int(summary.doubted.sum()) == slide.attrs[DOUBTED]
    table = summary_table(StudySummary(load_styles(None, k=2), [summary], SummaryConfig(radius_um=0)))
    np.testing.assert_allclose(table["doubted_fraction"], expected, rtol=1e-6)
    assert expected[0] > expected[1]  # measured: the small nuclei (granules) are doubted more
