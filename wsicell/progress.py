"""Shared rich helpers: progress bars and tables on stderr, silenced by ``--quiet``.

The one progress convention: every bar goes through :func:`progress_bars` or :func:`track`
(stderr, so stdout stays for results that scripts read).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sized
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Off a terminal (logs, CI, `make demo | tee`) rich falls back to 80 columns and folds
# every table; give it room instead.
_stderr = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


def stderr_console() -> Console:
    return _stderr


class NullProgress:
    """Stands in for a rich Progress when output is off."""

    def add_task(self, *args: object, **kwargs: object) -> int:
        return 0

    def update(self, *args: object, **kwargs: object) -> None:
        pass

    def advance(self, *args: object, **kwargs: object) -> None:
        pass

    def remove_task(self, *args: object, **kwargs: object) -> None:
        pass


@contextmanager
def progress_bars(enabled: bool = True, *, unit: str = "tiles") -> Iterator[Progress | NullProgress]:
    """A rich Progress on stderr (with ``info`` field text after the bar), or a no-op."""
    if not enabled:
        yield NullProgress()
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=_stderr,
        transient=False,
    )
    with progress:
        yield progress


def track(items: Iterable, *, label: str, total: int | None = None, enabled: bool = True, unit: str = "") -> Iterator:
    """Yield ``items`` under one progress bar (:func:`progress_bars`) advanced per item."""
    if total is None and isinstance(items, Sized):
        total = len(items)
    with progress_bars(enabled, unit=unit) as bars:
        task = bars.add_task(label, total=total, info="")
        for item in items:
            yield item
            bars.advance(task)
