"""``suho-mt5 monitor``: the database's monitoring views and EA connectivity as terminal
tables (``rich``), or as JSON, over :mod:`suho_mt5.commands.monitor`."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from typing import Any

import click

from suho_mt5.cli._common import check_nats_url, reports_errors, url_option
from suho_mt5.cli.cache import cache_url_option
from suho_mt5.commands import monitor as commands
from suho_mt5.commands._connect import database_url

__all__ = ["monitor"]

_TITLES = {
    "hypertables": "Hypertables",
    "aggregates": "Continuous aggregates",
    "chunks": "Chunks",
    "connectivity": "EA connectivity (latest heartbeat per account)",
    "consumer_lag": "Consumer lag (JetStream)",
    "dead_letters": "Dead letters",
    "cache": "Latest-state cache (keys per tenant)",
    "cache_writers": "Cache writers",
}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, timedelta):  # as PostgreSQL writes intervals: "7 days", "00:15:00"
        days, seconds = value.days, value.seconds
        clock = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        if not days:
            return clock
        day_part = f"{days} day{'s' if days != 1 else ''}"
        return day_part if not seconds else f"{day_part} {clock}"
    return str(value)


@click.command("monitor")
@url_option
@click.option("--role", help="SET ROLE to this role first (e.g. mt5_maintenance).")
@click.option("--nats-url", envvar="SUHO_NATS_URL", callback=check_nats_url,
              help="NATS server whose JetStream consumers' lag to show [env: SUHO_NATS_URL].")
@cache_url_option
@click.option("--json", "as_json", is_flag=True, help="Print the same data as JSON.")
@reports_errors
def monitor(url: str | None, role: str | None, nats_url: str | None, cache_url: str | None,
            as_json: bool) -> None:
    """Show hypertables, aggregates, chunks, EA connectivity, consumer lag, dead letters
    and the latest-state cache (keys per tenant, hit ratio, the writers' lag).

    The views span every tenant: run it as a superuser or a member of mt5_maintenance.
    A section that cannot be read says "not available" and why.

    \b
    Example:
      suho-mt5 monitor --url postgresql://postgres@localhost/suho
      suho-mt5 monitor --nats-url nats://127.0.0.1:4222
      suho-mt5 monitor --cache-url redis://admin:secret@127.0.0.1:6379/0
      suho-mt5 monitor --json | jq '.sections[] | select(.name == "connectivity")'
    """
    report = commands.monitor(database_url(url), role=role, nats_url=nats_url,
                              cache_url=cache_url)
    if as_json:
        click.echo(json.dumps({
            "edition": report.edition,
            "sections": [
                {"name": s.name, "available": s.available, "note": s.note,
                 "columns": s.columns, "rows": s.rows}
                for s in report.sections
            ],
        }, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(f"suho-mt5 database, edition {report.edition}")
    for section in report.sections:
        title = _TITLES.get(section.name, section.name)
        if not section.available:
            # Text, not markup: a database message may contain brackets.
            console.print()
            console.print(Text.assemble((title, "bold"), f": {section.note}"))
            continue
        table = Table(title=title, title_justify="left")
        for column in section.columns:
            table.add_column(column)
        for row in section.rows:
            table.add_row(*(_cell(row[c]) for c in section.columns))
        if not section.rows:
            table.caption = section.note or "no rows"
        console.print()
        console.print(table)
