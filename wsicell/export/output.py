"""Output files: refuse to overwrite without --force, write atomically."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from wsicell.errors import WsicellError
from wsicell.types import PathLikeStr


def check_output(path: PathLikeStr, *, force: bool) -> Path:
    """``path`` as a Path, after checking it may be written (its folder is created)."""
    p = Path(path)
    if p.exists() and not force:
        raise WsicellError(f"{p}: already exists; pass --force to overwrite it")
    if p.is_dir():
        raise WsicellError(f"{p}: is a folder, expected a file name")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WsicellError(f"{p.parent}: cannot create the output folder ({exc.strerror or exc})") from None
    return p


@contextlib.contextmanager
def atomic_output(path: PathLikeStr) -> Iterator[Path]:
    """Yield a temporary name next to ``path``; on success it replaces ``path`` in one step.

    On any error the temporary file is removed and an existing ``path`` is left untouched.
    """
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
