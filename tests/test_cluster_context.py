"""Tissue context (cluster/context.py): against a naive loop, banded = in memory, and through
`wsicell cluster` and `wsicell map` on a store whose cell types are spatially coherent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.synthetic import SAMPLE_SIZE, build_store
from sklearn.metrics import adjusted_rand_score

from wsicell.cli import main
from wsicell.cluster import ClusterConfig, cluster_store, load_clustering
from wsicell.cluster.context import (
    CONTEXT_ARRAY,
    Context,
    context_current,
    context_embeddings,
    write_slide_context,
)
from wsicell.mapping import label_slide
from wsicell.store import CellStore


def naive_context(x, centroids, *, mpp, radius_um, weight, groups):
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    out = np.empty_like(u)
    for i in range(len(x)):
        d = np.linalg.norm((centroids - centroids[i]) * mpp, axis=1)
        near = [j for j in range(len(x)) if j != i and d[j] <= radius_um and groups[j] == groups[i]]
        v = u[i] + weight * u[near].mean(axis=0) if near else u[i]
        out[i] = v / np.linalg.norm(v)
    return out


def test_context_equals_a_naive_loop() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    centroids = rng.uniform(0, 200, size=(300, 2))
    groups = rng.integers(0, 2, 300)
    got = context_embeddings(x, centroids, mpp=0.5, context=Context(radius_um=10, weight=1.5), groups=groups)
    want = naive_context(x, centroids, mpp=0.5, radius_um=10, weight=1.5, groups=groups)
    np.testing.assert_allclose(got, want, atol=1e-5)
    alone = context_embeddings(x[:1], centroids[:1], mpp=0.5, context=Context(radius_um=10))
    np.testing.assert_allclose(alone, x[:1] / np.linalg.norm(x[:1]), atol=1e-6)  # no neighbour: itself
    off = context_embeddings(x, centroids, mpp=0.5, context=Context())
    np.testing.assert_allclose(np.linalg.norm(off, axis=1), 1.0, atol=1e-5)  # radius 0: unit embeddings


def test_context_settings_are_validated() -> None:
    for bad in ({"radius_um": -1.0}, {"radius_um": float("nan")}, {"weight": 0.0}, {"weight": -2.0}):
        with pytest.raises(ValueError, match="context"):
            Context(**bad)
    with pytest.raises(ValueError, match="context radius"):
        ClusterConfig(context_radius_um=-5)
    assert not ClusterConfig().context.enabled and ClusterConfig(context_radius_um=20).context.enabled


def spatial_store(path: Path, *, noise: float = 2.2) -> tuple[CellStore, dict[str, np.ndarray]]:
    """Cells whose type is their quadrant of the slide; each embedding = its type's direction
    plus noise large enough that single cells are often misplaced."""
    store, _ = build_store(path, slides=(3000,), k=4, dim=16, embed=True)
    centres = np.eye(16, dtype=np.float32)[:4]
    truth = {}
    for s in store.slides():
        c = s.array("centroid")[:]
        labels = (c[:, 0] > SAMPLE_SIZE[0] / 2).astype(int) + 2 * (c[:, 1] > SAMPLE_SIZE[1] / 2)
        rng = np.random.default_rng(1)
        x = centres[labels] + rng.normal(scale=noise / 4, size=(s.n_cells, 16)).astype(np.float32)
        s.create_array("embedding", shape=x.shape, dtype="float16", chunks=(1024, 16))[:] = x.astype(np.float16)
        truth[s.id] = labels
    return store, truth


def test_banded_context_equals_in_memory_and_is_reused(tmp_path: Path) -> None:
    store, _ = spatial_store(tmp_path / "cells.zarr")
    (slide,) = store.slides()
    context = Context(radius_um=30, weight=1.0)
    assert write_slide_context(slide, context, band_rows=1024)  # 3 bands of 1024 rows
    got = slide.array(CONTEXT_ARRAY)[:].astype(np.float32)
    x = slide.array("embedding")[:].astype(np.float32)
    want = context_embeddings(x, slide.array("centroid")[:], mpp=slide.mpp, context=context)
    np.testing.assert_allclose(got, want, atol=2e-3)  # float16 storage
    assert context_current(slide, context)
    assert not write_slide_context(slide, context)  # current: not redone
    assert write_slide_context(slide, Context(radius_um=30, weight=2.0))  # other settings: redone
    slide.array("embedding")[:10] = 0  # embeddings rewritten (new attrs would say so too)
    slide.array("embedding").attrs["model_sha256"] = "changed"
    assert not context_current(slide, Context(radius_um=30, weight=2.0))


def test_cluster_with_context_recovers_spatial_types_and_map_follows(tmp_path: Path) -> None:
    path = tmp_path / "cells.zarr"
    store, truth = spatial_store(path)
    (slide,) = store.slides()
    # the synthetic measurements follow other (non-spatial) types: the embedding alone here
    cluster_store(store, config=ClusterConfig(k=4, restarts=2, morphology_weight=0.0))
    plain = adjusted_rand_score(truth[slide.id], slide.array("cluster")[:])
    cluster_store(store, config=ClusterConfig(k=4, restarts=2, morphology_weight=0.0, context_radius_um=60))
    labels = slide.array("cluster")[:]
    with_context = adjusted_rand_score(truth[slide.id], labels)
    assert with_context > 0.8 and with_context > plain + 0.2, (plain, with_context)
    clustering = load_clustering(CellStore.open(path))
    assert clustering.attrs["context"] == {"radius_um": 60.0, "weight": 1.0} and clustering.context.enabled

    # map assigns a slide the same way: cell vectors, context vectors, then the model
    writable = CellStore.open(path, mode="r+")
    for name in ("cluster", "distance", CONTEXT_ARRAY, "cell_vector"):
        del writable.slide(slide.id).group[name]
    done: list[int] = []
    relabelled = label_slide(path, slide.id, clustering, progress=done.append)
    assert np.array_equal(relabelled.array("cluster")[:], labels)
    assert sum(done) == 3 * slide.n_cells  # progress: vectors, context, then the assignment


def test_cli_cluster_context_option(tmp_path: Path) -> None:
    path = tmp_path / "cells.zarr"
    spatial_store(path)
    result = CliRunner().invoke(main, ["cluster", "--store", str(path), "-k", "4", "--context-radius", "25",
                                       "--morphology-weight", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "context" in result.output
    assert load_clustering(CellStore.open(path)).context == Context(radius_um=25.0, weight=1.0)
    bad = CliRunner().invoke(main, ["cluster", "--store", str(path), "-k", "4", "--context-weight", "0"])
    assert bad.exit_code != 0 and "context weight" in bad.output and "Traceback" not in bad.output


def test_tiles_of_a_labelled_store_are_never_neighbours(tmp_path: Path) -> None:
    """A `wsicell evaluate` split store holds many tiles in one coordinate frame: its per-cell
    `tile` array keeps their cells apart, as the in-memory scoring does."""
    store, _ = spatial_store(tmp_path / "cells.zarr")
    (slide,) = store.slides()
    tiles = (np.arange(slide.n_cells) % 3).astype(np.int32)  # 3 interleaved "tiles"
    slide.create_array("tile", shape=tiles.shape, dtype="int32", chunks=(4096,))[:] = tiles
    context = Context(radius_um=40)
    write_slide_context(slide, context, band_rows=1024)
    x = slide.array("embedding")[:].astype(np.float32)
    centroids = slide.array("centroid")[:]
    want = context_embeddings(x, centroids, mpp=slide.mpp, context=context, groups=tiles)
    ignoring_tiles = context_embeddings(x, centroids, mpp=slide.mpp, context=context)
    got = slide.array(CONTEXT_ARRAY)[:].astype(np.float32)
    np.testing.assert_allclose(got, want, atol=2e-3)
    assert np.abs(got - ignoring_tiles).max() > 0.05
