"""Typed provenance records: round trips, and older stores read with the documented defaults."""

from __future__ import annotations

import dataclasses

import pytest

from wsicell.errors import StoreError
from wsicell.provenance import EMBEDDING_MODEL, ClusteringRecord, EmbeddingModel, SlideEmbedding


def test_embedding_model_round_trip_and_old_stores() -> None:
    model = EmbeddingModel(run="runs/a", checkpoint="/r/last.pt", sha256="ab" * 32, encoder="query", dim=512,
                           crop_size=24, precision="bf16", views=8)  # fmt: skip
    assert EmbeddingModel.from_attrs(model.to_attrs()) == model
    assert EmbeddingModel.of_store({EMBEDDING_MODEL: model.to_attrs()}) == model
    assert EmbeddingModel.from_attrs(None) is None and EmbeddingModel.of_store({}) is None
    old = EmbeddingModel.from_attrs({"run": "r", "checkpoint": "c", "sha256": "s", "future_key": 1})
    assert (old.encoder, old.precision, old.views, old.dim, old.source) == ("momentum", "fp32", 1, None, "crops")  # the defaults
    assert model.array_attrs() == {"model_sha256": "ab" * 32, "run": "runs/a", "encoder": "query", "precision": "bf16", "views": 8,
                                   "source": "crops"}  # fmt: skip


def test_slide_embedding_progress() -> None:
    assert SlideEmbedding.from_attrs({"name": "x"}) == SlideEmbedding()  # never embedded
    model = EmbeddingModel(sha256="s", encoder="momentum", views=8)
    state = SlideEmbedding(model="s", encoder="momentum", views=8, rows=4096)
    attrs = state.to_attrs()
    assert attrs == {"embedding_model": "s", "embedding_encoder": "momentum", "embedding_views": 8,
                     "embedding_rows": 4096, "embedding_complete": False}  # fmt: skip
    assert SlideEmbedding.from_attrs({**attrs, "n_cells": 9}) == state and state.made_with(model)
    assert not state.made_with(dataclasses.replace(model, views=1))
    old = SlideEmbedding.from_attrs({"embedding_model": "s", "embedding_encoder": "momentum", "embedding_complete": True})
    assert old.views == 1 and old.made_with(dataclasses.replace(model, views=1))


def test_clustering_record_round_trip_and_defaults() -> None:
    record = ClusteringRecord(k=5, metric="cosine", created="2026-01-01T00:00:00+00:00", algorithm="spectral",
                              model=EmbeddingModel(sha256="s"), context={"radius_um": 20.0, "weight": 1.0},
                              sizes={"a": [1, 2, 3, 4, 5]}, complete=True)  # fmt: skip
    attrs = record.to_attrs()
    assert attrs["model"]["sha256"] == "s" and attrs["context"]["radius_um"] == 20.0
    assert ClusteringRecord.from_attrs(attrs) == record
    old = ClusteringRecord.from_attrs({"k": 3, "metric": "l2", "created": "t", "complete": True, "unknown": 0})
    assert (old.algorithm, old.graph_neighbours, old.context, old.model, old.representation) == ("kmeans", 15, None, None, None)
    with pytest.raises(StoreError, match="records no k, created"):
        ClusteringRecord.from_attrs({"metric": "l2"}, where="cells.zarr")
