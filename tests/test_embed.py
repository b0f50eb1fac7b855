"""Embedding a store: float16 (n, 512) per slide, resumable, model recorded, encoders differ."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from wsicell.device import choose_precision
from wsicell.embed import embed_crops, embed_store, load_encoder
from wsicell.errors import CheckpointError
from wsicell.store import CellStore
from wsicell.train.config import TrainConfig
from wsicell.train.loop import train

pytestmark = pytest.mark.slow  # every test embeds with a model trained by the module's fixture

@pytest.fixture(scope="module")
def run(crop_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short epoch of a full-width (512-d) backbone with the fast stem, on real crops."""
    config = TrainConfig(
        epochs=1, batch_size=256, queue_size=512, stem="imagenet", momentum=0.9, device="cpu", precision="fp32",
        threads=1, warmup_epochs=0,
    )  # fmt: skip
    return train(store=crop_store, out=tmp_path_factory.mktemp("embed") / "run", config=config, progress=False)


@pytest.fixture()
def store(extracted_store: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "cells.zarr"
    shutil.copytree(extracted_store, copy)
    return copy


def test_embed_store_writes_float16_per_slide_and_resumes(run: Path, store: Path) -> None:
    n = CellStore.open(store).total_cells()
    assert embed_store(store=store, run=run, progress=True) == n
    cells = CellStore.open(store)
    for s in cells.slides():
        emb = s.array("embedding")
        assert emb.shape == (s.n_cells, 512) and emb.dtype == np.float16 and emb.chunks == (4096, 512)
        assert emb.attrs["encoder"] == "momentum" and len(emb.attrs["model_sha256"]) == 64
        assert s.attrs["embedding_complete"] is True
        values = np.asarray(emb[:], dtype=np.float32)
        assert np.isfinite(values).all() and values.std() > 0
    model = cells.root.attrs["embedding_model"]
    assert model["checkpoint"] == str((run / "last.pt").resolve()) and model["encoder"] == "momentum"
    # the same model again: nothing to do
    assert embed_store(store=store, run=run, progress=False) == 0
    # an interrupted slide continues from its last written chunk, or restarts
    first = CellStore.open(store, mode="r+").slides()[0]
    first.set_attrs(embedding_complete=False, embedding_rows=0)
    assert embed_store(store=store, run=run, progress=False) == n
    before = np.asarray(first.array("embedding")[:])
    first.set_attrs(embedding_complete=False, embedding_rows=1000)  # as if stopped after 1000 rows
    assert embed_store(store=store, run=run, progress=False) == n - 1000
    np.testing.assert_array_equal(np.asarray(first.array("embedding")[:]), before)


def test_store_embeddings_match_embed_crops(run: Path, store: Path) -> None:
    embed_store(store=store, run=run, progress=False)
    s = CellStore.open(store).slides()[0]
    model, config = load_encoder(run, device="cpu")
    assert config.stem == "imagenet" and not model.training
    assert config.embed_views == 8 and s.array("embedding").attrs["views"] == 8  # the default: 8 views
    direct = embed_crops(model, np.asarray(s.array("crops")[:64]), batch_size=20, views=config.embed_views)
    assert direct.shape == (64, 512) and direct.dtype == np.float32
    np.testing.assert_allclose(np.asarray(s.array("embedding")[:64], dtype=np.float32), direct, rtol=2e-3, atol=2e-3)
    exact = embed_crops(model, np.asarray(s.array("crops")[:64]), precision="fp32", views=8)
    fast = embed_crops(model, np.asarray(s.array("crops")[:64]), precision="bf16", views=8)
    for other in (fast, direct):  # bf16 autocast, and the default (auto: bf16 where the CPU has it)
        cos = (other * exact).sum(1) / np.linalg.norm(other, axis=1) / np.linalg.norm(exact, axis=1)
        assert cos.min() > 0.99  # the same features to ~2-3 digits
    resolved = choose_precision("auto", "cpu")[0]
    assert CellStore.open(store).root.attrs["embedding_model"]["precision"] == resolved  # recorded as resolved
    assert s.array("embedding").attrs["precision"] == resolved


def test_momentum_and_query_encoders_differ(run: Path, store: Path) -> None:
    crops = np.asarray(CellStore.open(store).slides()[0].array("crops")[:32])
    momentum, _ = load_encoder(run, encoder="momentum", device="cpu")
    query, _ = load_encoder(run, encoder="query", device="cpu")
    a, b = embed_crops(momentum, crops), embed_crops(query, crops)
    assert not np.allclose(a, b, atol=1e-3)
    n = CellStore.open(store).total_cells()
    assert embed_store(store=store, run=run, encoder="query", progress=False) == n  # other encoder: redo
    assert CellStore.open(store).root.attrs["embedding_model"]["encoder"] == "query"


def test_bad_model_paths(tmp_path: Path, store: Path) -> None:
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        embed_store(store=store, run=tmp_path / "empty_run", progress=False)
    (tmp_path / "junk.pt").write_bytes(b"junk" * 100)
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_encoder(tmp_path / "junk.pt")


def test_views_average_the_dihedral_copies(run: Path, store: Path) -> None:
    """8 views = the mean of the normalised features of the 8 rotated/mirrored crops, so the
    embedding of a rotated or mirrored crop is the same; 1 view is the plain forward pass."""
    crops = np.asarray(CellStore.open(store).slides()[0].array("crops")[:24])
    model, _ = load_encoder(run, device="cpu")
    one = embed_crops(model, crops, views=1)
    copies = [np.rot90(c, k, axes=(1, 2)) for c in (crops, crops[:, :, ::-1]) for k in range(4)]
    naive = np.mean([f / np.linalg.norm(f, axis=1, keepdims=True) for f in (embed_crops(model, c, views=1) for c in copies)], 0)
    eight = embed_crops(model, crops, views=8)
    np.testing.assert_allclose(eight, naive, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(embed_crops(model, np.rot90(crops, 1, axes=(1, 2)), views=8), eight, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(embed_crops(model, crops[:, ::-1], views=8), eight, rtol=1e-4, atol=1e-5)
    assert not np.allclose(embed_crops(model, np.rot90(crops, 1, axes=(1, 2)), views=1), one, atol=1e-3)
    four = embed_crops(model, crops, views=4)
    np.testing.assert_allclose(embed_crops(model, np.rot90(crops, 1, axes=(1, 2)), views=4), four, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="views"):
        embed_crops(model, crops, views=3)


def test_store_records_views_and_redoes_other_views(run: Path, store: Path) -> None:
    n = CellStore.open(store).total_cells()
    assert embed_store(store=store, run=run, views=1, progress=False) == n
    cells = CellStore.open(store)
    assert cells.root.attrs["embedding_model"]["views"] == 1
    assert all(s.attrs["embedding_views"] == 1 for s in cells.slides())
    assert embed_store(store=store, run=run, views=1, progress=False) == 0
    assert embed_store(store=store, run=run, progress=False) == n  # the run's default (8): redone
    assert CellStore.open(store).root.attrs["embedding_model"]["views"] == 8


def test_embed_stages_come_from_the_runs_config(store: Path, tmp_path: Path) -> None:
    """A run with ``embed_stages`` [3, 4] embeds with its last two stages (each normalised,
    concatenated): 4 + 8 x width channels in the store, the same as the module on its own."""
    from wsicell.train.backbone import PooledStages

    config = TrainConfig(epochs=0, stem="imagenet", width=8, crop_size=24, embed_stages=(3, 4), device="cpu", precision="fp32", threads=1)
    run = train(store=store, out=tmp_path / "stages", config=config, progress=False)
    model, loaded = load_encoder(run, device="cpu")
    assert isinstance(model, PooledStages) and loaded.embedding_dim == model.out_dim == 32 + 64
    embed_store(store=store, run=run, progress=False, precision="fp32")
    s = CellStore.open(store).slides()[0]
    crops = np.asarray(s.array("crops")[:32])
    stored = np.asarray(s.array("embedding")[:32], np.float32)
    assert stored.shape == (32, 96)
    np.testing.assert_allclose(stored, embed_crops(model, crops, views=8, precision="fp32"), atol=2e-3)
    # each stage's part is a mean of unit vectors, not the other stage's
    assert not np.allclose(stored[:, :32], stored[:, 32:64], atol=1e-2)


def test_the_cpu_default_joins_crops_and_tile_features_and_names_slides_without_them(store: Path, tmp_path: Path) -> None:
    """``embed_from: crops+tile`` (the CPU default): the crop embedding, then the store's tile
    features as extracted (recorded as such); a slide without them (a watershed extraction) is
    named, with the remedy, before anything is written."""
    from wsicell.errors import StoreError
    from wsicell.provenance import EmbeddingModel
    from wsicell.train.config import train_config
    from wsicell.train.presets import CPU_DEFAULT

    run = train(store=store, out=tmp_path / "tile", config=train_config(CPU_DEFAULT, device="cpu"), progress=False)
    assert embed_store(store=store, run=run, progress=False, precision="fp32") == CellStore.open(store).total_cells()
    cells = CellStore.open(store)
    s = cells.slides()[0]
    stored = np.asarray(s.array("embedding")[:])
    assert np.array_equal(stored[:, 224:], s.array("tile_features")[:])
    model, config = load_encoder(run, device="cpu")
    crops = np.asarray(s.array("crops")[:64])
    np.testing.assert_allclose(stored[:64, :224], embed_crops(model, crops, views=4, precision="fp32"), atol=2e-3)
    record = EmbeddingModel.of_store(cells.root.attrs)
    assert (record.source, record.views, record.dim) == ("crops+tile", 4, 448)
    assert embed_store(store=store, run=run, progress=False, precision="fp32") == 0  # done with this model: skipped

    from wsicell.extract import ExtractConfig, extract_slides
    from wsicell.segment import SegmentConfig

    other = tmp_path / "watershed.zarr"
    config = ExtractConfig(segment=SegmentConfig(method="watershed"))
    assert extract_slides([Path(s.path)], store=other, config=config, progress=False).ok
    with pytest.raises(StoreError, match=r"no 224-d tile features for 1 slide\(s\): .*\(watershed segmenter\).*configs/nucleus-untrained.yaml"):
        embed_store(store=other, run=run, progress=False)
    assert not CellStore.open(other).slides()[0].has("embedding")
