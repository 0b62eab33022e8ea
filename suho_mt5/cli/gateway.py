"""``suho-mt5 gateway run`` and ``suho-mt5 simulate``."""

from __future__ import annotations

import click

from suho_mt5.cli._common import nats_url_option, reports_errors, url_option
from suho_mt5.cli.cache import cache_url_option

# The gateway's libraries (websockets, nats-py, prometheus-client) are the `gateway` extra:
# they are imported when a gateway command runs, so the other commands work without them.

__all__ = ["gateway", "simulate"]


@click.group()
def gateway() -> None:
    """The EA gateway (WebSocket and TCP/TLS endpoints for MT5 EAs)."""


@gateway.command("run")
@url_option
@nats_url_option
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--ws-port", type=int, default=8000, show_default=True,
              help="WebSocket port (-1: none).")
@click.option("--tcp-port", type=int, default=8001, show_default=True,
              help="TCP/TLS stream port (-1: none).")
@click.option("--tls-cert", metavar="FILE", default=None,
              help="PEM certificate chain: both endpoints then speak TLS.")
@click.option("--tls-key", metavar="FILE", default=None,
              help="PEM private key of --tls-cert.")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus /metrics here.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True,
              help="Address /metrics listens on (loopback unless you name another).")
@click.option("--metrics-account-labels", is_flag=True, default=False,
              help="Per-account series on /metrics (tenant and account id in labels).")
@click.option("--proxy-protocol-from", multiple=True, metavar="ADDRESS[/BITS]",
              help="A load balancer (address or network) whose connections start with a "
                   "PROXY v1/v2 header (HAProxy send-proxy-v2); repeatable.")
@click.option("--backlog", type=int, default=4096, show_default=True,
              help="Listen backlog of both endpoints (capped by net.core.somaxconn).")
@click.option("--heartbeat", type=float, default=30.0, show_default=True,
              help="Heartbeat interval in seconds (idle timeout: three of them).")
@click.option("--ack-timeout", type=float, default=30.0, show_default=True,
              help="Seconds an EA may take to ACK a packet before SLOW_CONSUMER.")
@click.option("--ws-ping", type=float, default=20.0, show_default=True,
              help="WebSocket ping interval, and how long a pong may take (0: no pings).")
@click.option("--tcp-keepalive", type=(int, int, int), default=(30, 10, 3),
              show_default=True, metavar="IDLE INTERVAL COUNT",
              help="TCP keepalive on accepted sockets: seconds idle, seconds between "
                   "probes, unanswered probes.")
@click.option("--session-lease", type=float, default=30.0, show_default=True,
              metavar="SECONDS",
              help="Hold each account's session cluster-wide in the JetStream key-value "
                   "bucket MT5_SESSIONS, the entry renewed every third of this: a connection "
                   "on another gateway supersedes the account's connection here. 0: within "
                   "this process only.")
@cache_url_option
@reports_errors
def gateway_run(url: str | None, nats_url: str, host: str, ws_port: int, tcp_port: int,
                tls_cert: str | None, tls_key: str | None, metrics_port: int | None,
                metrics_host: str, metrics_account_labels: bool,
                proxy_protocol_from: tuple[str, ...], backlog: int,
                heartbeat: float, ack_timeout: float, ws_ping: float,
                tcp_keepalive: tuple[int, int, int], session_lease: float,
                cache_url: str | None) -> None:
    """Accept EA connections, authenticate them, relay packets to and from NATS.

    \b
    Example:
      suho-mt5 gateway run --url postgresql://gateway:secret@db/suho \\
          --nats-url nats://127.0.0.1:4222 --ws-port 8000 --tcp-port 8001

    SIGHUP reads the TLS certificate and key again (open sessions stay).
    """
    import os

    from suho_mt5.commands._connect import database_url
    from suho_mt5.commands.gateway import run_gateway
    from suho_mt5.errors import ConfigError
    from suho_mt5.gateway import GatewayConfig

    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if min(tcp_keepalive) < 1 or ws_ping < 0:
        raise click.UsageError("--tcp-keepalive needs values >= 1, --ws-ping >= 0")
    if session_lease != 0 and session_lease < 3:
        raise click.UsageError("--session-lease is 0 (off) or at least 3 seconds")
    for pem in (tls_cert, tls_key):
        if pem is not None and not (os.path.isfile(pem) and os.access(pem, os.R_OK)):
            raise ConfigError(f"cannot read {pem}: not a readable file")
    config = GatewayConfig(
        host=host,
        ws_port=None if ws_port < 0 else ws_port,
        tcp_port=None if tcp_port < 0 else tcp_port,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        metrics_account_labels=metrics_account_labels,
        proxy_protocol_from=proxy_protocol_from,
        listen_backlog=backlog,
        tls_cert=tls_cert,
        tls_key=tls_key,
        heartbeat_interval_s=heartbeat,
        idle_timeout_s=3 * heartbeat,
        ack_timeout_s=ack_timeout,
        ws_ping_interval_s=ws_ping,
        ws_ping_timeout_s=ws_ping,
        tcp_keepalive_idle_s=tcp_keepalive[0],
        tcp_keepalive_interval_s=tcp_keepalive[1],
        tcp_keepalive_count=tcp_keepalive[2],
        session_lease_s=session_lease,
    )
    run_gateway(config, database_url(url), nats_url, cache_url)


@click.command("simulate")
@click.option("--gateway", "gateway_url", required=True,
              help="ws://, wss://, tcp:// or tls:// host:port (a bare host:port uses "
                   "--transport).")
@click.option("--accounts", required=True,
              help="JSON file [{account_id, api_key}, ...], or N demo accounts to create "
                   "(needs --url).")
@click.option("--duration", type=float, default=60.0, show_default=True, help="Seconds.")
@click.option("--transport", type=click.Choice(["ws", "tcp"]), default="ws",
              show_default=True)
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Multiply the seed's per-account rates.")
@click.option("--record", metavar="FILE",
              help="Write every data packet the EAs send to FILE (for `suho-mt5 ingest "
                   "replay`).")
@url_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@reports_errors
def simulate(gateway_url: str, accounts: str, duration: float, transport: str, speed: float,
             record: str | None, url: str | None, as_json: bool) -> None:
    """Simulated EAs: stream, execute signals, reconnect and resume; print a report.

    \b
    Example:
      suho-mt5 simulate --gateway ws://127.0.0.1:8000 --accounts accounts.json \\
          --duration 60 --record session.bin
    """
    from suho_mt5.commands.gateway import (
        check_gateway,
        check_record,
        resolve_accounts,
        run_simulation,
    )
    from suho_mt5.gateway.simulator import Rates

    if "://" not in gateway_url:
        gateway_url = f"{transport}://{gateway_url}"
    # A file is read first (a bad one is named); demo accounts are created only once the
    # gateway has answered.
    sims = None if accounts.isdigit() else resolve_accounts(accounts, url)
    if record is not None:
        check_record(record)
    check_gateway(gateway_url)
    if sims is None:
        sims = resolve_accounts(accounts, url)
    report = run_simulation(gateway_url, sims, duration, Rates(speed=speed), record=record)
    if as_json:
        import json
        from dataclasses import asdict

        click.echo(json.dumps(asdict(report), indent=2, default=str))
    else:
        click.echo(report.summary())
