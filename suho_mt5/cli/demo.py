"""``suho-mt5 demo``."""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import click

from suho_mt5.cli._common import check_nats_url, reports_errors

__all__ = ["demo"]


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@click.command("demo")
@click.option("--engine", type=click.Choice(["auto", "native", "pglite"]), default="auto",
              show_default=True,
              help="native: the TimescaleDB `make setup` installs; pglite: the PGlite engine "
                   "(no root needed); auto: native when it can run here.")
@click.option("--database-url", default=None,
              help="Run against this PostgreSQL or TimescaleDB instead (a login that may "
                   "migrate it; the demo's tenants and accounts stay in it).")
@click.option("--edition", type=click.Choice(["timescale", "apache", "postgresql"]),
              default=None,
              help="Schema flavour for --database-url (default: what the server supports).")
@click.option("--nats-url", default=None, callback=check_nats_url,
              help="Use this NATS server (with JetStream) instead of starting one. (The demo "
                   "starts its own servers: $SUHO_DATABASE_URL and $SUHO_NATS_URL are not "
                   "read.)")
@click.option("--cluster", is_flag=True,
              help="Start a 3-node NATS JetStream cluster on loopback (streams kept in 3 "
                   "copies) instead of one nats-server.")
@click.option("--duration", type=click.FloatRange(5, 3600), default=20.0, show_default=True,
              help="Seconds the simulated EAs stream.")
@click.option("--accounts-per-tenant", type=click.IntRange(1, 200), default=3,
              show_default=True, help="Accounts (simulated EAs) in each of the two tenants.")
@click.option("--speed", type=click.FloatRange(0.1, 1000), default=10.0, show_default=True,
              help="Multiply the seed's per-account rates (1 quote/s, a snapshot and a "
                   "heartbeat every 30 s).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@reports_errors
def demo(engine: str, database_url: str | None, edition: str | None, nats_url: str | None,
         cluster: bool, duration: float, accounts_per_tenant: int, speed: float,
         as_json: bool) -> None:
    """Run the seed's data flow end to end on servers of its own and print what it measured.

    Starts nats-server and a database in a temporary directory, migrates, creates two
    tenants, runs the Data Bridge and the gateway, connects simulated EAs over WebSocket and
    TCP, feeds reference quotes, publishes signals the EAs execute and close, refreshes the
    aggregates, and prints the seed's queries, signal latency and a proof of tenant
    isolation. Everything it started is stopped when it ends, also on Ctrl-C.

    \b
    Example:
      suho-mt5 demo                     # native TimescaleDB when installed
      suho-mt5 demo --engine pglite     # no root, no server: the PGlite engine
      suho-mt5 demo --cluster           # on a 3-node NATS JetStream cluster
      suho-mt5 demo --database-url postgresql://me@db/scratch --json
    """
    from rich.console import Console

    # The demo is a scripted user of the commands layer (it migrates, creates accounts,
    # declares the streams through it), so it sits above it, beside this module.
    from suho_mt5.demo import DemoOptions
    from suho_mt5.demo import run_demo as run

    if cluster and nats_url is not None:
        raise click.UsageError("--cluster starts NATS servers of its own: not with --nats-url")
    err = Console(stderr=True)
    options = DemoOptions(engine=engine,  # type: ignore[arg-type]
                          database_url=database_url, edition=edition, nats_url=nats_url,
                          cluster=cluster, duration_s=duration,
                          accounts_per_tenant=accounts_per_tenant, speed=speed)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if err.is_terminal:
            with err.status("starting") as status:
                report = run(options, lambda step: status.update(f"{step} ..."))
        else:  # a log or a pipe: one line per step
            report = run(options, lambda step: click.echo(f"demo: {step}", err=True))
    except KeyboardInterrupt:
        click.echo("interrupted: every process the demo started has been stopped", err=True)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        from suho_mt5.demo.report import render

        render(report, Console())
