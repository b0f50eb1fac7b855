"""What every command shares: turning library errors into one-line messages."""

from __future__ import annotations

import functools
from collections.abc import Callable
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
