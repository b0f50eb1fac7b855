"""`wsicell export --anndata`: the AnnData round trip, read back by anndata and used by scanpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.synthetic import build_store

from wsicell.cli import main
from wsicell.cluster import ClusterConfig, cluster_store
from wsicell.export.palette import cluster_color
from wsicell.store import CellStore

anndata = pytest.importorskip("anndata")


@pytest.fixture(scope="module")
def clustered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("h5ad") / "cells.zarr"
    store, _ = build_store(path, slides=(1500, 700), k=3, dim=16)
    cluster_store(store, config=ClusterConfig(k=3, restarts=2))
    return path


def test_round_trip_values_match_the_store(clustered: Path, tmp_path: Path) -> None:
    names = tmp_path / "names.yaml"
    names.write_text("clusters:\n  0: {name: Tumour, color: '#ff0000'}\n  2: {name: Tumour, color: '#ff0000'}\n")
    out = tmp_path / "study.h5ad"
    result = CliRunner().invoke(main, ["export", "-s", str(clustered), "--anndata", str(out), "--names", str(names), "-q"])
    assert result.exit_code == 0, result.output
    adata = anndata.read_h5ad(out)
    slides = CellStore.open(clustered).slides()
    assert adata.shape == (2200, 4) and list(adata.var_names) == slides[0].feature_names
    offset = 0
    for s in slides:
        rows = slice(offset, offset + s.n_cells)
        np.testing.assert_array_equal(adata.obsm["X_wsicell"][rows], s.array("embedding")[:].astype(np.float32))
        np.testing.assert_allclose(adata.obsm["spatial"][rows], s.array("centroid")[:] * s.mpp, rtol=1e-6)
        np.testing.assert_array_equal(adata.X[rows], s.array("features")[:])
        labels = s.array("cluster")[:]
        np.testing.assert_array_equal(adata.obs["cluster"].to_numpy()[rows].astype(int), labels)
        np.testing.assert_allclose(adata.obs["x_um"].to_numpy()[rows], s.array("centroid")[:, 0] * s.mpp, rtol=1e-6)
        assert (adata.obs["slide"].to_numpy()[rows] == s.id).all()
        assert adata.obs_names[offset] == f"{s.id}:0"
        offset += s.n_cells
    expected = np.where(adata.obs["cluster"].astype(int) == 1, "Cluster 1", "Tumour")
    assert (adata.obs["cluster_name"].astype(str).to_numpy() == expected).all()
    assert list(adata.obs["cluster_name"].cat.categories) == ["Tumour", "Cluster 1"]
    assert list(adata.uns["cluster_colors"]) == ["#ff0000", "#{:02x}{:02x}{:02x}".format(*cluster_color(1)), "#ff0000"]
    assert json.loads(adata.uns["wsicell"]["clustering"])["k"] == 3 and adata.uns["wsicell"]["k"] == 3
    assert "area_um2" in adata.obs and "eccentricity" in adata.obs
    backed = anndata.read_h5ad(out, backed="r")  # X stays on disk
    np.testing.assert_array_equal(backed.obsm["X_wsicell"][:5], adata.obsm["X_wsicell"][:5])
    backed.file.close()


def test_scanpy_runs_on_the_export(clustered: Path, tmp_path: Path) -> None:
    sc = pytest.importorskip("scanpy")
    out = tmp_path / "study.h5ad"
    assert CliRunner().invoke(main, ["export", "-s", str(clustered), "-o", str(out), "-q"]).exit_code == 0
    adata = anndata.read_h5ad(out)
    sc.pp.neighbors(adata, use_rep="X_wsicell", n_neighbors=10, random_state=0)
    graph = adata.obsp["connectivities"].tocoo()
    cluster = adata.obs["cluster"].to_numpy().astype(int)
    assert graph.nnz > 10 * 2200 / 2
    assert (cluster[graph.row] == cluster[graph.col]).mean() > 0.95  # the blobs are the clusters


def test_export_refuses_bad_output(clustered: Path, tmp_path: Path) -> None:
    bad = CliRunner().invoke(main, ["export", "-s", str(clustered), "-o", str(tmp_path / "x.csv")])
    assert bad.exit_code == 1 and ".h5ad" in bad.output
    (tmp_path / "y.h5ad").write_text("keep")
    again = CliRunner().invoke(main, ["export", "-s", str(clustered), "-o", str(tmp_path / "y.h5ad")])
    assert again.exit_code == 1 and (tmp_path / "y.h5ad").read_text() == "keep"
