"""Output files: refuse to overwrite without --force; fail before any work if unwritable.

Writing itself goes through :func:`wsicell.atomic.atomic_path`.
"""

from __future__ import annotations

from pathlib import Path

from wsicell.atomic import check_writable
from wsicell.errors import WsicellError
from wsicell.types import PathLikeStr


def check_output(path: PathLikeStr, *, force: bool) -> Path:
    """``path`` as a Path, after checking it may be written (its folder is created and takes files)."""
    p = Path(path)
    if p.exists() and not force:
        raise WsicellError(f"{p}: already exists; pass --force to overwrite it")
    if p.is_dir():
        raise WsicellError(f"{p}: is a folder, expected a file name")
    return check_writable(p)

