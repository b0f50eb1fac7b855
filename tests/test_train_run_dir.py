"""RunDir: the run directory's files, its settings check, its metrics and its checkpoints."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import yaml

from wsicell.errors import CheckpointError, ConfigError, StoreError
from wsicell.train.config import TrainConfig
from wsicell.train.run_dir import RunDir, config_differences


def test_paths_and_checkpoints(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    assert run.config_path == tmp_path / "run" / "config.yaml"
    assert run.store_path.name == "store.json" and run.metrics_path.name == "metrics.jsonl"
    assert run.checkpoint() == tmp_path / "run" / "last.pt"
    assert run.checkpoint(3) == tmp_path / "run" / "epoch_0003.pt"
    assert not run.has_checkpoint() and run.epoch_checkpoints() == []
    assert run.read_config() is None and run.read_fingerprint() is None
    assert run.metrics() == [] and run.epochs_done() == 0 and math.isnan(run.training_seconds())
    with pytest.raises(CheckpointError, match="no checkpoint"):
        RunDir.resolve_checkpoint(tmp_path)  # a directory without last.pt
    run.path.mkdir()
    for name in ("last.pt", "epoch_0010.pt", "epoch_0002.pt"):
        (run.path / name).write_bytes(b"x")
    assert run.has_checkpoint() and RunDir.resolve_checkpoint(run.path) == run.checkpoint()
    assert run.epoch_checkpoints() == [(2, run.checkpoint(2)), (10, run.checkpoint(10))]
    assert RunDir.resolve_checkpoint(run.checkpoint(2)) == run.checkpoint(2)  # a file as it is
    assert RunDir.of(run.checkpoint(2)).path == run.path and RunDir.of(run.path).path == run.path


def test_config_round_trip_and_differences(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    config = TrainConfig(epochs=3, projector_dims=(128, 64))
    run.write_config(config)
    saved = run.read_config()
    assert saved["epochs"] == 3 and saved["projector_dims"] == [128, 64]  # tuples as YAML lists
    run.check_config_matches(config)
    run.check_config_matches(dataclasses.replace(config, epochs=9, threads=2))  # a run may change these
    with pytest.raises(ConfigError, match=r"temperature: 0\.07 -> 0\.5.*another --out"):
        run.check_config_matches(dataclasses.replace(config, temperature=0.5))
    with pytest.raises(ConfigError, match="last.pt: .*lr.*--resume"):
        run.check_config_matches(dataclasses.replace(config, lr=0.5), saved=saved, source=run.checkpoint(), remedy="--resume")
    # a setting the run does not record (added to TrainConfig later) is not a difference
    old = {k: v for k, v in saved.items() if k != "embed_encoder"}
    run.config_path.write_text(yaml.safe_dump(old))
    run.check_config_matches(dataclasses.replace(config, embed_encoder="query"))
    assert config_differences(old, dataclasses.replace(config, seed=7)) == [("seed", 0, 7)]
    RunDir(tmp_path / "empty").check_config_matches(config)  # nothing saved: nothing to check


def test_metrics_fingerprint_and_training_time(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.reset_metrics(0)
    assert run.metrics_path.read_text() == ""
    for epoch in (1, 2, 3):
        run.append_metrics({"epoch": epoch, "loss": 1.0 / epoch, "seconds": 10.0 * epoch})
    assert run.epochs_done() == 3 and run.training_seconds() == 60.0
    assert run.training_seconds(upto_epoch=2) == 30.0
    run.reset_metrics(2)  # a resume from epoch 2 rewrites epoch 3
    assert [r["epoch"] for r in run.metrics()] == [1, 2]
    fingerprint = {"path": "/x.zarr", "fingerprint": "abc", "n_cells": 5, "slides": []}
    run.write_fingerprint(fingerprint)
    assert run.read_fingerprint() == fingerprint
    run.check_fingerprint(fingerprint, saved="abc", store="x.zarr")
    with pytest.raises(StoreError, match="not the store this run was trained on"):
        run.check_fingerprint(fingerprint, saved="def", store="x.zarr")
