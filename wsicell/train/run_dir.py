"""A training run directory: the one place that knows its files and their formats.

::

    config.yaml      the resolved TrainConfig (every setting, defaults included)
    store.json       the store's path and fingerprint (slide ids, content fingerprints, cells)
    metrics.jsonl    one JSON line per epoch: epoch, loss, lr, crops_per_s, seconds, ...
    last.pt          the latest checkpoint (end of the last finished epoch), atomic
    epoch_NNNN.pt    every ``checkpoint_every`` epochs, if set

Training writes it (``wsicell.train.loop``), ``wsicell train --resume`` and the evaluation
reuse it, embedding reads its checkpoints. Nobody else spells these names.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from wsicell.atomic import output_folder, write_text_atomic
from wsicell.config import plain, to_mapping
from wsicell.errors import CheckpointError, ConfigError, StoreError
from wsicell.store import CellStore, SlideCells
from wsicell.train.config import RESUMABLE_CHANGES
from wsicell.types import PathLikeStr

CONFIG = "config.yaml"
STORE = "store.json"
METRICS = "metrics.jsonl"
LAST = "last.pt"
EPOCH_PATTERN = "epoch_*.pt"


class RunDir:
    """The files of one training run in ``path`` (which need not exist yet)."""

    def __init__(self, path: PathLikeStr) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @classmethod
    def of(cls, run_or_checkpoint: PathLikeStr) -> RunDir:
        """The run of a run directory or of one of its checkpoint files."""
        path = Path(run_or_checkpoint)
        return cls(path if path.is_dir() else path.parent)

    # -- paths -----------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def store_path(self) -> Path:
        return self.path / STORE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    def checkpoint(self, epoch: int | None = None) -> Path:
        """``last.pt`` (``epoch=None``), else the checkpoint kept after ``epoch``."""
        return self.path / (LAST if epoch is None else f"epoch_{epoch:04d}.pt")

    def has_checkpoint(self) -> bool:
        return self.checkpoint().exists()

    def epoch_checkpoints(self) -> list[tuple[int, Path]]:
        """(epoch, path) of every kept ``epoch_NNNN.pt``, in epoch order."""
        found = ((int(p.stem.split("_")[1]), p) for p in self.path.glob(EPOCH_PATTERN))
        return sorted(found)

    @staticmethod
    def resolve_checkpoint(run_or_checkpoint: PathLikeStr) -> Path:
        """A run directory -> its ``last.pt``; a file is taken as it is."""
        path = Path(run_or_checkpoint)
        if path.is_dir():
            path = RunDir(path).checkpoint()
            if not path.exists():
                raise CheckpointError(f"{path}: no checkpoint in this run directory (has `wsicell train` finished an epoch?)")
        return path

    # -- config ----------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any] | None:
        """The saved settings (a plain mapping), or None when the run has none yet."""
        if not self.config_path.exists():
            return None
        return yaml.safe_load(self.config_path.read_text()) or {}

    def write_config(self, config: Any) -> None:
        output_folder(self.path)
        write_text_atomic(self.config_path, yaml.safe_dump(plain(to_mapping(config)), sort_keys=False))

    def check_config_matches(self, config: Any, *, saved: Mapping[str, Any] | None = None,
                             source: PathLikeStr | None = None, remedy: str = "use another --out") -> None:  # fmt: skip
        """Raise :class:`ConfigError` when ``config`` differs from the run's settings (``saved``,
        default: its config.yaml; nothing to check without one) in anything but the
        settings a run may change (:data:`RESUMABLE_CHANGES`)."""
        saved = self.read_config() if saved is None else saved
        if saved is None:
            return
        changed = config_differences(saved, config)
        if changed:
            details = ", ".join(f"{k}: {old!r} -> {new!r}" for k, old, new in changed)
            raise ConfigError(f"{source or self.path}: the run was made with other settings ({details}); {remedy}")

    # -- the store it was trained on -------------------------------------------------------
    def write_fingerprint(self, fingerprint: Mapping[str, Any]) -> None:
        output_folder(self.path)
        write_text_atomic(self.store_path, json.dumps(fingerprint, indent=1) + "\n")

    def read_fingerprint(self) -> dict[str, Any] | None:
        return json.loads(self.store_path.read_text()) if self.store_path.exists() else None

    def check_fingerprint(self, fingerprint: Mapping[str, Any], *, saved: str | None, store: PathLikeStr) -> None:
        """Raise :class:`StoreError` unless ``store`` (whose :func:`store_fingerprint` is
        ``fingerprint``) is the store of the run (``saved``: the digest its checkpoint holds)."""
        if saved != fingerprint["fingerprint"]:
            raise StoreError(f"{store}: not the store this run was trained on (fingerprint differs); see {self.store_path}")

    # -- metrics ---------------------------------------------------------------------------
    def metrics(self) -> list[dict[str, Any]]:
        """One record per finished epoch (empty when there are none)."""
        if not self.metrics_path.exists():
            return []
        return [json.loads(ln) for ln in self.metrics_path.read_text().splitlines() if ln.strip()]

    def append_metrics(self, record: Mapping[str, Any]) -> None:
        with self.metrics_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def reset_metrics(self, keep_epochs: int) -> None:
        """Keep the records of epochs <= ``keep_epochs`` (a resumed run rewrites the rest)."""
        output_folder(self.path)
        kept = [r for r in self.metrics() if r.get("epoch", 0) <= keep_epochs]
        write_text_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def epochs_done(self) -> int:
        return max((int(r["epoch"]) for r in self.metrics()), default=0)

    def training_seconds(self, *, upto_epoch: int | None = None) -> float:
        """Wall-clock training time (the sum of the epochs' seconds); NaN without metrics."""
        if not self.metrics_path.exists():
            return math.nan
        return sum(float(r["seconds"]) for r in self.metrics() if upto_epoch is None or r["epoch"] <= upto_epoch)


def store_fingerprint(store: CellStore, slides: Sequence[SlideCells]) -> dict[str, Any]:
    """What ties a run to its training data: slide ids, content fingerprints and cell counts."""
    rows = [{"id": s.id, "fingerprint": s.attrs.get("fingerprint", ""), "n_cells": s.n_cells} for s in slides]
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()
    return {"path": str(Path(store.path).resolve()), "fingerprint": digest, "n_cells": sum(r["n_cells"] for r in rows), "slides": rows}


def config_differences(saved: Mapping[str, Any], config: Any) -> list[tuple[str, Any, Any]]:
    """(setting, saved value, value now) of every setting that differs, in name order.

    Settings a run may change (:data:`RESUMABLE_CHANGES`: epochs, threads, ...) are not
    differences, nor are settings the run does not record (added to ``TrainConfig`` after
    the run was made: their defaults reproduce the old behaviour).
    """
    current = plain(to_mapping(config))
    return [
        (k, saved[k], current[k])
        for k in sorted(current)
        if k in saved and k not in RESUMABLE_CHANGES and plain(saved[k]) != current[k]
    ]
