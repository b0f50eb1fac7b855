"""The training loop on real crops: the loss falls, resume is exact, the run dir is complete."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from wsicell.errors import CheckpointError, ConfigError, StoreError, WsicellError
from wsicell.store import CellStore
from wsicell.train import checkpoint
from wsicell.train.config import TrainConfig
from wsicell.train.loop import lr_at, train

TINY = {
    "width": 8, "crop_size": 16, "batch_size": 128, "queue_size": 256, "warmup_epochs": 1, "momentum": 0.99,
    "device": "cpu", "precision": "fp32", "threads": 1,
}  # fmt: skip


@pytest.mark.slow
def test_a_few_epochs_lower_the_loss(crop_store: Path, tmp_path: Path) -> None:
    config = TrainConfig(**{**TINY, "epochs": 4, "warmup_epochs": 0})
    run = train(store=crop_store, out=tmp_path / "run", config=config, progress=False)
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 4
    assert losses[-1] < losses[0] - 0.1, losses  # ~0.4 lower here (seeds fixed)


@pytest.mark.slow
def test_run_directory_contents(crop_store: Path, tmp_path: Path) -> None:
    config = TrainConfig(**{**TINY, "epochs": 2, "checkpoint_every": 1})
    run = train(store=crop_store, out=tmp_path / "run", config=config, progress=True)
    assert sorted(p.name for p in run.iterdir()) == [
        "config.yaml", "epoch_0001.pt", "epoch_0002.pt", "last.pt", "metrics.jsonl", "store.json",
    ]  # fmt: skip
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["batch_size"] == 128 and saved["temperature"] == 0.07 and saved["projector_dims"] == [128, 64]
    store = json.loads((run / "store.json").read_text())
    n = 1200
    assert store["n_cells"] == n and len(store["slides"]) == 2 and len(store["fingerprint"]) == 64
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert all(r["crops_per_s"] > 0 and r["seconds"] > 0 and r["steps"] == n // 128 for r in rows)
    state = checkpoint.load(run / "last.pt")
    assert state["epoch"] == 2 and state["step"] == 2 * (n // 128) and state["store_fingerprint"] == store["fingerprint"]
    with pytest.raises(WsicellError, match="--resume"):
        train(store=crop_store, out=run, config=config, progress=False)


@pytest.mark.slow
def test_resume_is_exact(crop_store: Path, tmp_path: Path) -> None:
    config = TrainConfig(**{**TINY, "epochs": 2})
    straight = train(store=crop_store, out=tmp_path / "straight", config=config, progress=False)
    split = train(store=crop_store, out=tmp_path / "split", config=config, progress=False, stop_after=1)
    assert checkpoint.load(split / "last.pt")["epoch"] == 1
    train(store=crop_store, out=split, config=config, progress=False, resume=True)
    a, b = checkpoint.load(straight / "last.pt"), checkpoint.load(split / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    assert a["model"].keys() == b["model"].keys()
    for name in a["model"]:  # query + momentum weights, BN statistics, queue and its pointer
        assert torch.equal(a["model"][name], b["model"][name]), name
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert torch.equal(a["rng"]["augment"], b["rng"]["augment"])
    la = (straight / "metrics.jsonl").read_text().splitlines()
    lb = (split / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["loss"] for x in la] == [json.loads(x)["loss"] for x in lb]


@pytest.mark.slow
def test_resume_refuses_other_settings_and_missing_checkpoint(crop_store: Path, tmp_path: Path) -> None:
    config = TrainConfig(**{**TINY, "epochs": 2})
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(store=crop_store, out=tmp_path / "none", config=config, resume=True, progress=False)
    run = train(store=crop_store, out=tmp_path / "run", config=config, progress=False, stop_after=1)
    with pytest.raises(ConfigError, match="temperature"):
        train(store=crop_store, out=run, config=TrainConfig(**{**TINY, "epochs": 2, "temperature": 0.2}), resume=True)


def test_bad_stores_and_batches(extracted_store: Path, tmp_path: Path) -> None:
    config = TrainConfig(**{**TINY, "epochs": 1})
    with pytest.raises(StoreError, match="no cell store"):
        train(store=tmp_path / "missing.zarr", out=tmp_path / "a", config=config)
    CellStore.create_or_open(tmp_path / "empty.zarr")
    with pytest.raises(StoreError, match="no cells"):
        train(store=tmp_path / "empty.zarr", out=tmp_path / "b", config=config)
    n = CellStore.open(extracted_store).total_cells()
    big = TrainConfig(**{**TINY, "epochs": 1, "batch_size": n + 2, "queue_size": n + 2})
    with pytest.raises(ConfigError, match=f"batch_size {n + 2} is larger than the {n} cells"):
        train(store=extracted_store, out=tmp_path / "c", config=big)
    assert not (tmp_path / "c").exists()
    # an untrained encoder (epochs 0) needs no batch: a store smaller than one batch is fine
    untrained = TrainConfig(**{**TINY, "epochs": 0, "warmup_epochs": 0, "batch_size": n + 2, "queue_size": n + 2})
    run = train(store=extracted_store, out=tmp_path / "d", config=untrained, progress=False)
    assert (run / "last.pt").exists()


def test_schedule_warms_up_then_decays() -> None:
    config = TrainConfig(epochs=20, warmup_epochs=10, lr=1e-3)
    lrs = [lr_at(s, config=config, steps_per_epoch=10) for s in range(200)]
    assert lrs[0] == pytest.approx(1e-5) and lrs[99] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(lrs[:99], lrs[1:100], strict=False))
    assert all(a >= b for a, b in zip(lrs[100:], lrs[101:], strict=False)) and lrs[-1] < 1e-5
    assert TrainConfig(epochs=4, warmup_epochs=10).effective_warmup_epochs == 2


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"queue_size": 1000}, "multiple of batch_size"),
        ({"temperature": 0}, "temperature"),
        ({"momentum": 1.0}, "momentum"),
        ({"epochs": -1}, "epochs"),  # 0 is allowed: an untrained encoder
        ({"jitter_p": 1.5}, "probability"),
        ({"method": "byol"}, "method"),
    ],
)
def test_bad_config_values(bad: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)
