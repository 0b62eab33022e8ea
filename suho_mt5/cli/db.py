"""``suho-mt5 db ...``: the database commands, over :mod:`suho_mt5.commands.db`.

Each command parses, calls one function there, and formats the result; ``--json`` prints
what a program reads. Errors are one ``error: ...`` line on stderr and exit status 1.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import click

from suho_mt5.cli._common import reports_errors, url_option
from suho_mt5.commands import db as commands
from suho_mt5.commands._connect import database_url
from suho_mt5.db import Edition

__all__ = ["db"]

_EDITIONS = [e.value for e in Edition]

edition_option = click.option(
    "--edition",
    type=click.Choice(_EDITIONS),
    help="Build this schema flavour instead of what the server offers.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
quiet_option = click.option(
    "-q", "--quiet", is_flag=True, help="Do not log each migration step."
)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


class _EchoHandler(logging.Handler):
    """Alembic's progress lines to the current stderr (also the one CliRunner captures)."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Running "):  # not "Context impl ...", "Will assume ..."
            click.echo(message, err=True)


@contextmanager
def _progress(quiet: bool) -> Iterator[None]:
    if quiet:
        yield
        return
    logger = logging.getLogger("alembic.runtime.migration")
    handler, level = _EchoHandler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _heads() -> set[str]:
    return {r.revision for r in commands.history() if r.is_head}


def _describe_revisions(revisions: list[str]) -> str:
    if not revisions:
        return "base (not migrated)"
    heads = _heads()
    return ", ".join(f"{r} (head)" if r in heads else r for r in revisions)


def _print_revisions(at: list[str], as_json: bool) -> None:
    """Where the database is after a migration (the progress lines went to stderr)."""
    if as_json:
        heads = sorted(_heads())
        _print_json({"revisions": at, "heads": heads, "at_head": sorted(at) == heads})
    else:
        click.echo(f"at {_describe_revisions(at)}")


@click.group()
def db() -> None:
    """Migrate, inspect, check and maintain the database.

    The URL comes from --url or $SUHO_DATABASE_URL. Migrating needs a superuser (it
    creates extensions and roles).
    """


@db.command("upgrade")
@url_option
@edition_option
@quiet_option
@click.argument("revision", default="head")
@json_option
@reports_errors
def db_upgrade(url: str | None, edition: str | None, quiet: bool, revision: str,
               as_json: bool) -> None:
    """Migrate the database up to REVISION (default: head).

    \b
    Example:
      suho-mt5 db upgrade --url postgresql://postgres@localhost/suho
      suho-mt5 db upgrade 0004 --edition postgresql --json
    """
    with _progress(quiet):
        at = commands.upgrade(database_url(url), revision, edition=edition)
    _print_revisions(at, as_json)


@db.command("downgrade")
@url_option
@quiet_option
@click.argument("revision")
@json_option
@reports_errors
def db_downgrade(url: str | None, quiet: bool, revision: str, as_json: bool) -> None:
    """Migrate the database down to REVISION ("base" removes every suho-mt5 object).

    \b
    Example:
      suho-mt5 db downgrade 0010
    """
    with _progress(quiet):
        at = commands.downgrade(database_url(url), revision)
    _print_revisions(at, as_json)


@db.command("current")
@url_option
@json_option
@reports_errors
def db_current(url: str | None, as_json: bool) -> None:
    """Show the revision the database is at.

    \b
    Example:
      suho-mt5 db current --json
    """
    at = commands.current(database_url(url))
    if as_json:
        _print_revisions(at, as_json)
    else:
        click.echo(_describe_revisions(at))


@db.command("history")
@json_option
@reports_errors
def db_history(as_json: bool) -> None:
    """List the migrations this package ships, newest first (no database needed).

    \b
    Example:
      suho-mt5 db history --json
    """
    revisions = commands.history()
    if as_json:
        _print_json([asdict(r) for r in revisions])
        return
    for r in revisions:
        head = " (head)" if r.is_head else ""
        click.echo(f"{r.down_revision or '<base>'} -> {r.revision}{head}, {r.doc}")


@db.command("sql")
@click.option(
    "--edition",
    type=click.Choice(_EDITIONS),
    required=True,
    help="The schema flavour to generate (no server is asked).",
)
@click.argument("revisions", default="head")
@reports_errors
def db_sql(edition: str, revisions: str) -> None:
    """Print the SQL of an upgrade to REVISIONS (head, or a range such as 0001:0003), as a
    script a DBA can review and apply with psql.

    \b
    Example:
      suho-mt5 db sql --edition timescale > suho.sql
    """
    click.echo(commands.render_sql(edition, revisions), nl=False)


@db.command("check")
@url_option
@json_option
@reports_errors
def db_check(url: str | None, as_json: bool) -> None:
    """Compare the models with the database; exit status 1 when they differ.

    \b
    Example:
      suho-mt5 db check --json
    """
    drift = commands.check(database_url(url))
    if as_json:
        _print_json([{"kind": d.kind, "table": d.table, "detail": d.detail} for d in drift])
    elif drift:
        for d in drift:
            click.echo(str(d))
    else:
        click.echo("no drift: the models match the database")
    if drift:
        raise SystemExit(1)


@db.command("maintain")
@url_option
@click.option("--batch-size", type=click.IntRange(min=1), help="Rows per DELETE (postgresql).")
@click.option("--role", help="SET ROLE first, e.g. mt5_maintenance.")
@reports_errors
def db_maintain(url: str | None, batch_size: int | None, role: str | None) -> None:
    """CALL mt5_maintain(): refresh the aggregates and apply retention (run it from cron
    every few minutes on the apache and postgresql editions).

    \b
    Example:
      suho-mt5 db maintain --role mt5_maintenance
    """
    commands.maintain(database_url(url), batch_size=batch_size, role=role)
    click.echo("mt5_maintain() done")


@db.command("health")
@url_option
@json_option
@reports_errors
def db_health(url: str | None, as_json: bool) -> None:
    """SELECT * FROM health_check(); exit status 1 when a component reports an error.

    \b
    Example:
      suho-mt5 db health --json
    """
    rows = commands.health(database_url(url))
    if as_json:
        _print_json([asdict(r) for r in rows])
    else:
        width = max((len(r.component) for r in rows), default=0)
        for r in rows:
            click.echo(f"{r.component:<{width}}  {r.status:<7}  {r.detail}")
    if any(r.status == "error" for r in rows):
        raise SystemExit(1)


@db.command("info")
@url_option
@json_option
@reports_errors
def db_info(url: str | None, as_json: bool) -> None:
    """Show the server version and the schema edition it supports.

    \b
    Example:
      suho-mt5 db info --json
    """
    info = commands.info(database_url(url))
    if as_json:
        _print_json({**asdict(info), "edition": info.edition.value})
        return
    click.echo(f"server_version_num  {info.server_version_num}")
    click.echo(f"edition             {info.edition.value}")
    click.echo(f"timescaledb         {info.timescaledb_version or 'not installed'}"
               f"{' (available)' if info.timescaledb_available else ''}")
    click.echo(f"pgcrypto available  {'yes' if info.pgcrypto_available else 'no'}")
    click.echo(f"single backend      {'yes' if info.single_backend else 'no'}")
