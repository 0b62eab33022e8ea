"""``suho-mt5 db ...``: the database commands."""

from __future__ import annotations

import click

from suho_mt5.cli._common import reports_errors, url_option
from suho_mt5.commands.db import server_info
from suho_mt5.db import database_url_from_env

__all__ = ["db"]


@click.group()
def db() -> None:
    """Inspect and migrate the database."""


@db.command("info")
@url_option
@reports_errors
def db_info(url: str | None) -> None:
    """Show the server version and the schema edition it supports."""
    info = server_info(url or database_url_from_env())
    click.echo(f"server_version_num  {info.server_version_num}")
    click.echo(f"edition             {info.edition.value}")
    click.echo(f"timescaledb         {info.timescaledb_version or 'not installed'}"
               f"{' (available)' if info.timescaledb_available else ''}")
    click.echo(f"pgcrypto available  {'yes' if info.pgcrypto_available else 'no'}")
    click.echo(f"single backend      {'yes' if info.single_backend else 'no'}")
