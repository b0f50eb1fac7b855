"""Atomic output: every file (or folder) wsicell writes appears complete or not at all.

One way to write: :func:`atomic_path` yields a temporary sibling of the target; when the
block ends without error the temporary is flushed to disk (fsync) and renamed over the
target in one step; on any error it is removed and an existing target is left untouched.
Failures of the place itself (an unwritable folder, a full disk) raise
:class:`~wsicell.errors.OutputError` naming the target and the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from wsicell.errors import OutputError
from wsicell.types import PathLikeStr

# errors of the place written to rather than of the data (write() reports them without a name)
_PLACE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def output_folder(path: PathLikeStr) -> Path:
    """Create the folder ``path`` (and its parents) for outputs; :class:`OutputError` if impossible."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(p, _reason(exc)) from None
    if not p.is_dir():
        raise OutputError(p, "not a folder")
    return p


def check_writable(path: PathLikeStr) -> Path:
    """Fail early if ``path``'s folder cannot take a new file: creates it, then a probe file there."""
    p = Path(path)
    try:
        folder = output_folder(p.parent)
    except OutputError as exc:
        raise OutputError(p, f"its folder cannot be created: {exc.reason}") from None
    probe = folder / f".{p.name}.{os.getpid()}.probe"
    try:
        probe.open("xb").close()
    except OSError as exc:
        raise OutputError(p, _reason(exc)) from None
    probe.unlink(missing_ok=True)
    return p


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLikeStr) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write (a file, or a folder such as a Zarr store);
    on success it is synced and replaces ``path``. See the module docstring."""
    p = Path(path)
    check_writable(p)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    _remove(tmp)
    try:
        yield tmp
        if tmp.is_file():
            _fsync(tmp)
        if tmp.is_dir() and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)  # a folder cannot be renamed over a non-empty one
        os.replace(tmp, p)
    except OSError as exc:
        _remove(tmp)
        named = exc.filename is not None and (str(exc.filename) == str(p) or str(exc.filename).startswith(str(tmp)))
        if named or (exc.filename is None and exc.errno in _PLACE_ERRORS):
            raise OutputError(p, _reason(exc)) from None
        raise
    except BaseException:
        _remove(tmp)
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a crash
        _fsync(p.parent)


def write_bytes_atomic(path: PathLikeStr, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: PathLikeStr, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
