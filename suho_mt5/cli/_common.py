"""What every ``suho-mt5`` command shares: error reporting and the common options."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from suho_mt5._nats import nats_servers
from suho_mt5.commands._connect import one_line
from suho_mt5.errors import SuhoError

__all__ = ["SuhoGroup", "check_nats_url", "nats_url_option", "reports_errors", "url_option"]

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn a :class:`SuhoError` into one ``error: ...`` line and exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SuhoError as exc:
            click.echo(f"error: {one_line(exc)}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


class SuhoGroup(click.Group):
    """The top-level group: whatever escapes a command is still one line and exit 1.

    :func:`reports_errors` handles a command's own :class:`SuhoError`; this catches what is
    raised while the options are parsed (an option callback) and any unexpected exception,
    so no traceback reaches the user. ``SUHO_DEBUG=1`` lets the traceback through.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except SuhoError as exc:
            click.echo(f"error: {one_line(exc)}", err=True)
            ctx.exit(1)
        except Exception as exc:
            if os.environ.get("SUHO_DEBUG"):
                raise
            click.echo(f"error: unexpected {type(exc).__name__}: {one_line(exc)} "
                       "(SUHO_DEBUG=1 shows the traceback)", err=True)
            ctx.exit(1)


def check_nats_url(ctx: click.Context, param: click.Parameter, value: str | None
                   ) -> str | None:
    """An option callback: ``value`` must be a NATS URL (``nats://host:port``) or a
    comma-separated list of them (the nodes of a cluster), else one :class:`ConfigError`
    line (raised through :class:`SuhoGroup`)."""
    if value is None or value == "":
        return None
    nats_servers(value)
    return value


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
    callback=check_nats_url,
    help="NATS server URL, or the URLs of a cluster's nodes separated by commas "
         "[env: SUHO_NATS_URL].",
)
