"""What every command shares: turning library errors into one-line messages."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from wsicell.errors import WsicellError

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(func: F) -> F:
    """Report :class:`WsicellError` as ``Error: message`` (exit 1), without a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except WsicellError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def pick_store(store: Path | None, legacy: Path | None, *, legacy_name: str, quiet: bool = False) -> Path:
    """The store from ``-s/--store``, or from its deprecated spelling ``legacy_name`` (still
    accepted so existing scripts work; a note on stderr says so)."""
    if store is not None and legacy is not None and store != legacy:
        raise click.UsageError(f"-s/--store and {legacy_name} name different stores; give only -s/--store")
    if store is None and legacy is None:
        raise click.UsageError("Missing option '-s' / '--store'.")
    if store is None:
        if not quiet:
            click.echo(f"Note: {legacy_name} for the store is deprecated; use -s/--store.", err=True)
        return legacy  # type: ignore[return-value]
    return store


def dataclass_default(cls: type, name: str) -> Any:
    """The default of field ``name`` (dotted for a nested dataclass: ``segment.method``) of
    dataclass ``cls``."""
    import dataclasses

    head, _, rest = name.partition(".")
    for f in dataclasses.fields(cls):
        if f.name == head:
            if f.default is not dataclasses.MISSING:
                value = f.default
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                raise KeyError(f"{cls.__name__}.{head} has no default")
            return getattr(value, rest) if rest else value
    raise KeyError(f"{cls.__name__} has no field {head!r}")


class DefaultFrom(click.Option):
    """An option whose help ends with ``[default: X]``, X read from a config dataclass field,
    so help never repeats a default by hand. The dataclass is imported only when the help is
    drawn (``wsicell --help`` stays instant). ``default_from=("module:Class", "field")``."""

    def __init__(self, *args: Any, default_from: tuple[str, str], **kwargs: Any) -> None:
        self.default_from = default_from
        super().__init__(*args, **kwargs)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        import importlib

        record = super().get_help_record(ctx)
        if record is None:
            return None
        target, field = self.default_from
        module, cls = target.split(":")
        value = dataclass_default(getattr(importlib.import_module(module), cls), field)
        return record[0], f"{record[1]}  [default: {value}]"


def doubted_text(share: float | None) -> str:
    """A slide's share of doubted nuclei for a table (``-``: not counted)."""
    return "-" if share is None else f"{share:.0%}" if share >= 0.1 else f"{share:.1%}"


def doubted_notes(slides: list[tuple[str, float | None]]) -> list[str]:
    """What the "doubted" column means, and one line per slide above the share worth a look."""
    from wsicell.segment.annotator_filter import DOUBTED_SHARE_HIGH

    counted = [(name, share) for name, share in slides if share is not None]
    if not counted:
        return []
    lines = ["doubted: nuclei a filter trained on annotated images says no annotator would have outlined "
             f"(8-9 % on held-out images); above {DOUBTED_SHARE_HIGH:.0%}, look at the nuclei in QuPath "
             "(`wsicell map SLIDE --nuclei-only`) before trusting the cell types"]  # fmt: skip
    lines += [f"  {name}: {share:.0%} of its nuclei doubted" for name, share in counted if share > DOUBTED_SHARE_HIGH]
    return lines
