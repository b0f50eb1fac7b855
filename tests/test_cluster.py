"""FAISS k-means, -k auto, streamed assignment and what `wsicell cluster` writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.synthetic import blobs, build_store
from sklearn.metrics import adjusted_rand_score

from wsicell.cli import main
from wsicell.cluster import (
    ClusterConfig,
    choose_k,
    cluster_store,
    elbow,
    load_clustering,
    prepare,
    train_kmeans,
)
from wsicell.cluster.run import LABEL_CHUNK
from wsicell.errors import ConfigError, StoreError
from wsicell.store import CellStore


def test_kmeans_recovers_well_separated_blobs() -> None:
    x, truth = blobs(4000, k=5, dim=64, seed=1)
    for spherical in (True, False):
        data = prepare(x, spherical=spherical)
        result = train_kmeans(data, k=5, iterations=20, restarts=1, seed=0, spherical=spherical)
        _, labels = _nearest(data, result.centroids)
        assert adjusted_rand_score(truth, labels) == pytest.approx(1.0)
        assert result.n_train == 4000  # every point used, not FAISS's k x 256 default
        sse = ((data - result.centroids[labels]) ** 2).sum()
        assert result.objective == pytest.approx(sse, rel=1e-4)


def test_cosine_groups_directions_l2_groups_positions() -> None:
    """Two rays 25 degrees apart, lengths 1-10: cosine splits by direction, L2 by length."""
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, 3000)
    angle = np.where(truth == 0, 0.0, np.radians(25)) + rng.normal(0, 0.02, 3000)
    length = rng.uniform(1, 10, 3000)
    x = np.zeros((3000, 8), np.float32)
    x[:, 0], x[:, 1] = length * np.cos(angle), length * np.sin(angle)
    scores = {}
    for metric in ("cosine", "l2"):
        spherical = metric == "cosine"
        data = prepare(x, spherical=spherical)
        result = train_kmeans(data, k=2, iterations=25, restarts=2, seed=0, spherical=spherical)
        scores[metric] = adjusted_rand_score(truth, _nearest(data, result.centroids)[1])
    assert scores["cosine"] == pytest.approx(1.0)
    assert scores["l2"] < 0.5


def test_elbow_rule() -> None:
    ks = [1, 2, 3, 4, 5, 6, 7, 8]
    explained = [0.0, 0.3, 0.6, 0.9, 0.91, 0.92, 0.93, 0.94]
    assert elbow(ks, explained) == 4


def test_auto_k_picks_the_true_k_on_clear_blobs() -> None:
    x, _ = blobs(3000, k=5, dim=32, seed=4)
    choice = choose_k(prepare(x, spherical=True), k_min=2, k_max=9, iterations=15, restarts=2, seed=0,
                      spherical=True)  # fmt: skip
    assert choice.k == 5
    assert [p.k for p in choice.curve] == list(range(2, 10))
    ev = [p.explained for p in choice.curve]
    assert ev[3] > 0.8 and ev[3] - ev[2] > 0.1  # the jump at k = 5
    assert choice.silhouette_k == 5


def test_cluster_store_writes_centroids_labels_and_provenance(tmp_path: Path) -> None:
    store, truth = build_store(tmp_path / "cells.zarr", slides=(2500, 1500), k=4, dim=32)
    config = ClusterConfig(k=4, seed=7, restarts=2, algorithm="kmeans", morphology_weight=0.0, metric="cosine")
    result = cluster_store(store, config=config)
    assert result.k == 4 and result.n_cells == 4000 and result.n_train == 4000
    clustering = load_clustering(CellStore.open(tmp_path / "cells.zarr"))
    assert clustering.centroids.shape == (4, 32) and clustering.centroids.dtype == np.float32
    attrs = clustering.attrs
    for key in ("k", "algorithm", "seed", "metric", "model", "sample_size", "objective", "iterations", "created", "representation"):
        assert key in attrs, key
    assert attrs["seed"] == 7 and attrs["metric"] == "cosine" and attrs["model"]["run"] == "synthetic"
    assert attrs["objective"] == pytest.approx(result.objective_sample)
    assert sum(sum(v) for v in attrs["sizes"].values()) == 4000
    for s in store.slides():
        labels = s.array("cluster")[:]
        assert labels.dtype == np.int32 and s.array("distance").dtype == np.float32
        assert adjusted_rand_score(truth[s.id], labels) == pytest.approx(1.0)
        d = s.array("distance")[:]
        assert np.all((d >= 0) & (d <= 2))  # 1 - cos


def test_streamed_assignment_equals_one_shot(tmp_path: Path) -> None:
    """Slides larger than one batch: the stored labels equal a one-shot NumPy argmin."""
    n = 2 * LABEL_CHUNK + 1234
    store, _ = build_store(tmp_path / "big.zarr", slides=(n, 500), k=6, dim=8, crop_size=4)
    config = ClusterConfig(k=6, algorithm="kmeans", metric="l2", sample_size=3000, batch_size=LABEL_CHUNK)
    cluster_store(store, config=config)
    clustering = load_clustering(store)
    centroids = clustering.centroids
    for s in store.slides():
        # the clustered vectors are the representation of embedding + measurements
        x = clustering.representation.transform(s.array("embedding")[:], s.array("features")[:])
        np.testing.assert_allclose(s.array("cell_vector")[:], x, rtol=1e-5, atol=1e-5)
        dist, labels = _nearest(x, centroids)
        stored = s.array("cluster")[:]
        same = stored == labels
        # ties aside (none expected), streamed == one shot
        assert same.mean() > 0.9999
        np.testing.assert_allclose(s.array("distance")[:][same], np.sqrt(dist[same]), rtol=1e-3, atol=1e-4)


def test_same_seed_same_result(tmp_path: Path) -> None:
    store, _ = build_store(tmp_path / "c.zarr", slides=(3000,), k=5, dim=16)
    config = ClusterConfig(k=5, seed=3, sample_size=1000)
    cluster_store(store, config=config)
    first = load_clustering(store).centroids, store.slides()[0].array("cluster")[:]
    cluster_store(store, config=config)
    second = load_clustering(store).centroids, store.slides()[0].array("cluster")[:]
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_store_without_embeddings_says_run_embed(tmp_path: Path) -> None:
    store, _ = build_store(tmp_path / "raw.zarr", slides=(300,), embed=False)
    with pytest.raises(StoreError, match="run `wsicell embed"):
        cluster_store(store, config=ClusterConfig(k=3))


def test_k_larger_than_cells(tmp_path: Path) -> None:
    store, _ = build_store(tmp_path / "tiny.zarr", slides=(20,), k=2, dim=8, crop_size=4)
    with pytest.raises(StoreError, match="k=50 is larger than the number of cells \\(20\\)"):
        cluster_store(store, config=ClusterConfig(k=50))


def test_config_validation() -> None:
    for bad in ({"k": 1}, {"metric": "manhattan"}, {"k_min": 5, "k_max": 4}, {"iterations": 0}):
        with pytest.raises(ValueError):
            ClusterConfig(**bad)


def test_cli_cluster_table_and_errors(tmp_path: Path) -> None:
    build_store(tmp_path / "cells.zarr", slides=(1200, 800), k=3, dim=16)
    runner = CliRunner()
    ok = runner.invoke(main, ["cluster", "--store", str(tmp_path / "cells.zarr"), "-k", "auto",
                              "--k-max", "12", "--seed", "1"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "elbow" in ok.output and "3 clusters, 2,000 cells" in ok.output and "share" in ok.output
    bad_k = runner.invoke(main, ["cluster", "--store", str(tmp_path / "cells.zarr"), "-k", "many"])
    assert bad_k.exit_code != 0 and "neither an integer nor 'auto'" in bad_k.output
    missing = runner.invoke(main, ["cluster", "--store", str(tmp_path / "nope.zarr"), "-k", "3"])
    assert missing.exit_code == 1 and "Traceback" not in missing.output and "no cell store" in missing.output


def test_config_file_errors_are_config_errors(tmp_path: Path) -> None:
    from wsicell.config import load_config

    bad = tmp_path / "c.yaml"
    bad.write_text("k: 1\n")
    with pytest.raises(ConfigError, match="k must be"):
        load_config(ClusterConfig, bad)


def _nearest(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = ((x[:, None, :].astype(np.float64) - centroids[None].astype(np.float64)) ** 2).sum(-1)
    return d.min(1), d.argmin(1)


@pytest.mark.parametrize("algorithm", ["spectral", "kmeans"])
def test_in_memory_clustering_equals_the_store_path(tmp_path: Path, algorithm: str) -> None:
    """What `wsicell evaluate` scores (cluster_cells) is what `wsicell cluster` writes."""
    from wsicell.cluster.cells import cluster_cells

    store, truth = build_store(tmp_path / "one.zarr", slides=(2000,), k=4, dim=16)
    config = ClusterConfig(k=4, algorithm=algorithm, seed=2, sample_size=1500, graph_sample_size=1000)
    cluster_store(store, config=config)
    (s,) = store.slides()
    labels = cluster_cells(
        embedding=s.array("embedding")[:], features=s.array("features")[:], feature_names=s.feature_names,
        centroids=s.array("centroid")[:], mpp=s.mpp, config=config,
    )  # fmt: skip
    np.testing.assert_array_equal(labels, s.array("cluster")[:])
    assert adjusted_rand_score(truth[s.id], labels) == pytest.approx(1.0)
    assert load_clustering(store).algorithm == algorithm


def test_clear_errors_for_too_few_cells_and_flat_measurements(tmp_path: Path) -> None:
    store, _ = build_store(tmp_path / "few.zarr", slides=(12,), k=2, dim=8, crop_size=4)
    with pytest.raises(StoreError, match="only 12 cells, too few for a 15-neighbour graph; use --algorithm kmeans"):
        cluster_store(store, config=ClusterConfig(k=2))
    cluster_store(store, config=ClusterConfig(k=2, algorithm="kmeans"))  # k-means copes
    flat, _ = build_store(tmp_path / "flat.zarr", slides=(300,), k=2, dim=8, crop_size=4)
    (s,) = flat.slides()
    s.array("features")[:] = 1.0  # measurements that never vary
    with pytest.raises(StoreError, match="flat.zarr: the morphology measurements carry no variation"):
        cluster_store(flat, config=ClusterConfig(k=2))
    cluster_store(flat, config=ClusterConfig(k=2, morphology_weight=0.0))  # the embedding alone works
