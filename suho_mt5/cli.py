"""The ``suho-mt5`` command line: a thin click layer over plain typed functions.

Each command parses options, calls a function that tests call directly, and turns a
:class:`~suho_mt5.errors.SuhoError` into a one-line message and exit status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from suho_mt5 import __version__
from suho_mt5.db import ServerInfo, database_url_from_env, inspect_server, make_engine
from suho_mt5.errors import SuhoError

__all__ = ["main", "server_info"]

F = TypeVar("F", bound=Callable[..., Any])


def _reports_errors(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except SuhoError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def server_info(url: str) -> ServerInfo:
    """What the server at ``url`` offers (see :func:`suho_mt5.db.inspect_server`)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return inspect_server(conn)
    finally:
        engine.dispose()


_url_option = click.option(
    "--url",
    envvar="SUHO_DATABASE_URL",
    help="Database URL [env: SUHO_DATABASE_URL].",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="suho-mt5")
def main() -> None:
    """Connect MetaTrader 5 Expert Advisors to a multi-tenant TimescaleDB backend."""


@main.group()
def db() -> None:
    """Inspect the database (migrations run through `alembic upgrade head`)."""


@db.command("info")
@_url_option
@_reports_errors
def db_info(url: str | None) -> None:
    """Show the server version and the schema edition it supports."""
    info = server_info(url or database_url_from_env())
    click.echo(f"server_version_num  {info.server_version_num}")
    click.echo(f"edition             {info.edition.value}")
    click.echo(f"timescaledb         {info.timescaledb_version or 'not installed'}"
               f"{' (available)' if info.timescaledb_available else ''}")
    click.echo(f"pgcrypto available  {'yes' if info.pgcrypto_available else 'no'}")
    click.echo(f"single backend      {'yes' if info.single_backend else 'no'}")
