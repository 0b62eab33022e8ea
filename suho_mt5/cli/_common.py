"""What every ``suho-mt5`` command shares: error reporting and the common options."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from suho_mt5.errors import SuhoError

__all__ = ["nats_url_option", "reports_errors", "url_option"]

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn a :class:`SuhoError` into one ``error: ...`` line and exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SuhoError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


url_option = click.option(
    "--url",
    envvar="SUHO_DATABASE_URL",
    help="Database URL [env: SUHO_DATABASE_URL].",
)

nats_url_option = click.option(
    "--nats-url",
    envvar="SUHO_NATS_URL",
    default="nats://127.0.0.1:4222",
    show_default=True,
    help="NATS server URL [env: SUHO_NATS_URL].",
)
