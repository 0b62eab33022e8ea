"""``suho-mt5 ingest run`` and ``suho-mt5 streams setup``: the Data Bridge."""

from __future__ import annotations

import click

from suho_mt5.cli._common import nats_url_option, reports_errors, url_option
from suho_mt5.commands.ingest import configure_logging, run_bridge, setup_streams
from suho_mt5.db import database_url_from_env

__all__ = ["ingest", "streams"]

_config_option = click.option(
    "--config", type=click.Path(exists=True, dir_okay=False),
    help="Bus contract YAML (default: the one shipped, same as config/nats-subjects.yaml).",
)


@click.group()
def streams() -> None:
    """Declare the NATS JetStream streams and consumers of the bus contract."""


@streams.command("setup")
@nats_url_option
@_config_option
@reports_errors
def streams_setup(nats_url: str, config: str | None) -> None:
    """Create or update every stream and consumer (idempotent)."""
    for line in setup_streams(nats_url, config):
        click.echo(line)


@click.group()
def ingest() -> None:
    """The Data Bridge: NATS JetStream -> database."""


@ingest.command("run")
@url_option
@nats_url_option
@_config_option
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Pull workers in this process (each with its own connection).")
@click.option("--batch-size", type=click.IntRange(1, 10000), default=500, show_default=True,
              help="Messages per fetch.")
@click.option("--metrics-port", type=int, default=None, help="Serve /metrics on this port.")
@click.option("--offline-after", type=float, default=90.0, show_default=True,
              help="Seconds without a heartbeat before an EA is marked offline.")
@click.option("--offline-check-every", type=float, default=15.0, show_default=True,
              help="Seconds between offline checks.")
@click.option("--log-json", is_flag=True, help="Log one JSON object per line.")
@reports_errors
def ingest_run(url: str | None, nats_url: str, config: str | None, workers: int,
               batch_size: int, metrics_port: int | None, offline_after: float,
               offline_check_every: float, log_json: bool) -> None:
    """Consume mt5.account.> and write it to the database until SIGTERM (exit 0)."""
    configure_logging(log_json)
    run_bridge(url or database_url_from_env(), nats_url, workers=workers, batch_size=batch_size,
               metrics_port=metrics_port, config=config, offline_after=offline_after,
               offline_check_every=offline_check_every)
