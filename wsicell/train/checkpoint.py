"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint holds only tensors and plain Python values (dicts, lists, numbers, strings),
so loading never unpickles arbitrary objects. ``load`` turns every way a file can be
wrong (missing, empty, truncated, corrupt, someone else's) into a :class:`CheckpointError`.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import torch

from wsicell.atomic import atomic_path
from wsicell.errors import CheckpointError
from wsicell.types import PathLikeStr

FORMAT = "wsicell-train-checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "config", "epoch", "step", "model")


def save(path: PathLikeStr, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus format/version) to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
    return path


def load(path: PathLikeStr, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a wsicell checkpoint; raise :class:`CheckpointError` naming the file and the reason."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickles before failing on them
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a damaged file can fail anywhere in unpickling (KeyError, ...)
        reason = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
        raise CheckpointError(f"{path}: corrupt, truncated or not a PyTorch checkpoint ({reason})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a wsicell training checkpoint")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {state.get('version')!r}, expected {VERSION}")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return state


def sha256(path: PathLikeStr) -> str:
    """Content hash of a file (identifies the model that produced embeddings)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
