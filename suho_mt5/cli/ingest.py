"""``suho-mt5 ingest run`` and ``suho-mt5 streams setup``: the Data Bridge."""

from __future__ import annotations

from typing import Any

import click

from suho_mt5.cli._common import check_nats_url, nats_url_option, reports_errors, url_option
from suho_mt5.cli.cache import cache_ttl_option, cache_url_option
from suho_mt5.commands._connect import database_url
from suho_mt5.commands.ingest import bus_contract, run_bridge, setup_streams

__all__ = ["ingest", "streams"]

_config_option = click.option(
    "--config", metavar="FILE",
    help="Bus contract YAML (default: the one shipped, same as config/nats-subjects.yaml).",
)


@click.group()
def streams() -> None:
    """Declare the NATS JetStream streams and consumers of the bus contract."""


@streams.command("setup")
@nats_url_option
@_config_option
@click.option("--replicas", type=click.IntRange(1, 5), default=None,
              help="Copies of each stream and consumer a NATS cluster keeps (JetStream: "
                   "1-5). Default: 3 on a cluster of at least 3 nodes, else 1; an existing "
                   "stream with more copies keeps them.")
@click.option("--json", "as_json", is_flag=True,
              help="Print each stream and consumer with its state and replicas as JSON.")
@reports_errors
def streams_setup(nats_url: str, config: str | None, replicas: int | None,
                  as_json: bool) -> None:
    """Create or update every stream and consumer (idempotent).

    \b
    Example:
      suho-mt5 streams setup --nats-url nats://127.0.0.1:4222
      suho-mt5 streams setup --nats-url nats://n1:4222,nats://n2:4222,nats://n3:4222
    """
    declared = setup_streams(nats_url, config, replicas)
    if as_json:
        import dataclasses
        import json

        click.echo(json.dumps([dataclasses.asdict(d) for d in declared], indent=2))
        return
    for item in declared:
        click.echo(str(item))


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
@cache_url_option
@cache_ttl_option
@click.option("--cache-timeout", type=click.FloatRange(0.01, 30), default=0.5,
              show_default=True,
              help="Seconds a cache round trip may take before it counts as failed (the "
                   "values are kept and written when the cache answers).")
@reports_errors
def ingest_run(url: str | None, nats_url: str, config: str | None, workers: int,
               batch_size: int, metrics_port: int | None, offline_after: float,
               offline_check_every: float, log_json: bool, cache_url: str | None,
               cache_ttls: Any, cache_timeout: float) -> None:
    """Consume mt5.account.> and write it to the database until SIGTERM (exit 0).

    With --cache-url (a writer's user: `suho-mt5 cache grant-writer`) the newest value of
    every key goes to the latest-state cache after each commit; a cache that is down or
    slow never stops or slows ingest (docs/cache.md).

    \b
    Example:
      suho-mt5 ingest run --url postgresql+psycopg://bridge:secret@db/suho \\
          --nats-url nats://127.0.0.1:4222 --workers 2 --metrics-port 9464
    """
    from datetime import timedelta

    from suho_mt5.ingest.settings import BridgeSettings

    settings = BridgeSettings(
        url=database_url(url), nats_url=nats_url, contract=bus_contract(config),
        workers=workers, batch_size=batch_size, metrics_port=metrics_port,
        offline_after=timedelta(seconds=offline_after), offline_check_every=offline_check_every,
    )
    run_bridge(settings, log_json=log_json, cache_url=cache_url, cache_ttls=cache_ttls,
               cache_timeout=cache_timeout)


@ingest.command("replay")
@click.argument("file", metavar="FILE")
@url_option
@click.option("--nats-url", envvar="SUHO_NATS_URL", callback=check_nats_url,
              help="Publish on this NATS server's bus [env: SUHO_NATS_URL]; without it the "
                   "packets are written straight to the database at --url.")
@click.option("--to-database", is_flag=True,
              help="Write to the database at --url even when a NATS URL is set.")
@click.option("--direct", "direct", is_flag=True, hidden=True,
              help="The old spelling of --to-database (deprecated; \"direct\" names the "
                   "writer's COPY mode).")
@click.option("--tenant", "tenant_id",
              help="Bus only, with no --url to look accounts up: every account's tenant.")
@click.option("--frame-packets", type=click.IntRange(1, 10000), default=1000,
              show_default=True, help="Packets per frame (one bus message) at most.")
@click.option("--batch-size", type=click.IntRange(1, 100000), default=5000, show_default=True,
              help="Packets per transaction when writing to the database.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@reports_errors
def ingest_replay(file: str, url: str | None, nats_url: str | None, to_database: bool,
                  direct: bool, tenant_id: str | None, frame_packets: int, batch_size: int,
                  quiet: bool, as_json: bool) -> None:
    """Replay FILE, a recorded packet stream: 144-byte packets end to end, as EAs send
    them (`suho-mt5 simulate --record FILE` writes one).

    The whole file is checked first (whole packets, each one decodes). With --nats-url the
    packets are published in per-account frames on mt5.account.<tenant>.<account>.<kind>
    with the gateway's Nats-Msg-Id, so replaying a file twice stores it once, and
    `suho-mt5 ingest run` writes them; each account's tenant is looked up at --url, or
    given by --tenant. With only --url (or --to-database) they are written straight to the
    tables through the ingest writer (idempotent too; no reconciliation, no risk events).

    \b
    Example:
      suho-mt5 ingest replay session.bin --url "$SUHO_DATABASE_URL" --json
      suho-mt5 ingest replay session.bin --nats-url nats://127.0.0.1:4222 --tenant acme
    """
    import json
    import os
    import sys

    from suho_mt5.commands.replay import Recording, replay

    if to_database or direct:
        nats_url = None
    show = not quiet and sys.stderr.isatty()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), disable=not show, transient=True) as bar:
        # Two passes: the whole file is checked before anything is sent.
        size = os.stat(file).st_size if os.path.isfile(file) else 0
        check = bar.add_task("checking", total=size // 144 or None)
        task = bar.add_task("replaying", total=None, visible=False)

        def started(recording: Recording) -> None:
            bar.update(check, visible=False)
            bar.update(task, total=recording.data_packets, visible=True,
                       description=f"replaying {recording.path.name}")

        summary = replay(file, url=url, nats_url=nats_url, tenant_id=tenant_id,
                         frame_packets=frame_packets, batch_packets=batch_size,
                         on_start=started, progress=lambda n: bar.advance(task, n),
                         checked=lambda n: bar.advance(check, n))
    if as_json:
        click.echo(json.dumps(summary.as_json(), indent=2))
        return
    skipped = sum(summary.skipped.values())
    line = (f"{summary.data_packets} packet(s) of {summary.accounts} account(s) in "
            f"{summary.frames} frame(s)")
    if summary.mode == "bus":
        click.echo(f"{line} published; {summary.duplicate_frames} frame(s) were duplicates")
    else:
        written = sum(summary.written.values())
        click.echo(f"{line}: {written} row(s) written, {summary.duplicate_rows} already "
                   f"there, {summary.dead_letters} dead letter(s)")
    if skipped:
        click.echo(f"skipped {skipped} packet(s) that are not data: "
                   + ", ".join(f"{k} {v}" for k, v in sorted(summary.skipped.items())))
