"""Errors a user can cause and fix. The CLI turns these into one-line messages.

Anything that is not a :class:`WsicellError` is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class WsicellError(Exception):
    """Base class of every error wsicell raises for bad input or bad state."""


class ConfigError(WsicellError):
    """A configuration value is missing, of the wrong type or out of range."""


class SlideError(WsicellError):
    """A slide cannot be used: missing, not a slide, truncated, or lacking metadata."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class StoreError(WsicellError):
    """The cell store is missing, unwritable, of another schema, or lacks a needed step."""


class CheckpointError(WsicellError):
    """A checkpoint is missing, corrupt, truncated or not a wsicell checkpoint."""


class DatasetError(WsicellError):
    """A labelled dataset folder is missing or not in the expected layout."""


class OutputError(WsicellError):
    """An output file or folder cannot be written (unwritable place, disk full, ...)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: cannot write it ({reason})")
