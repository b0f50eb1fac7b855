"""Checkpoints: atomic round trip, weights_only, clear errors for bad files."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from wsicell.errors import CheckpointError
from wsicell.train import checkpoint


def state() -> dict:
    return {"config": {"lr": 0.001}, "epoch": 3, "step": 30, "model": {"w": torch.arange(6.0)}, "rng": (3, (1, 2), None)}


def test_round_trip(tmp_path: Path) -> None:
    path = checkpoint.save(tmp_path / "last.pt", state())
    loaded = checkpoint.load(path)
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["w"], torch.arange(6.0))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp files left
    assert torch.load(path, weights_only=True)["format"] == checkpoint.FORMAT


def test_missing_empty_truncated_corrupt_foreign(tmp_path: Path) -> None:
    good = checkpoint.save(tmp_path / "good.pt", state())
    data = good.read_bytes()
    cases = {
        "missing.pt": None,
        "empty.pt": b"",
        "truncated.pt": data[: len(data) // 2],
        "corrupt.pt": data[:200] + bytes(300) + data[500:],
        "text.pt": b"hello, not a checkpoint\n" * 10,
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match=name.replace(".", r"\.")):
            checkpoint.load(tmp_path / name)
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "foreign.pt")  # someone else's
    with pytest.raises(CheckpointError, match="not a wsicell training checkpoint"):
        checkpoint.load(tmp_path / "foreign.pt")
    (tmp_path / "pickle.pt").write_bytes(pickle.dumps({"format": checkpoint.FORMAT}))  # plain pickle
    with pytest.raises(CheckpointError):
        checkpoint.load(tmp_path / "pickle.pt")


class Evil:
    """Any class: weights_only loading must refuse to build it."""


def test_object_pickles_are_refused(tmp_path: Path) -> None:
    torch.save({"format": checkpoint.FORMAT, "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt"):
        checkpoint.load(tmp_path / "evil.pt")
