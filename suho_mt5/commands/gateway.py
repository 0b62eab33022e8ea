"""Gateway commands: run the EA gateway, run the EA simulator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from suho_mt5.commands._connect import check_database, check_nats
from suho_mt5.errors import ConfigError, GatewayError, SessionClosedError
from suho_mt5.gateway import DatabaseAuthenticator, Gateway, GatewayConfig, run_fast, tune_gc
from suho_mt5.gateway.simulator import (
    Rates,
    SimAccount,
    SimulationReport,
    load_accounts,
    simulate,
)

__all__ = ["check_gateway", "check_record", "resolve_accounts", "run_gateway", "run_simulation"]


async def _serve(config: GatewayConfig, url: str, nats_url: str,
                 cache_url: str | None = None) -> None:
    from suho_mt5.gateway._metrics import GatewayMetrics

    metrics = GatewayMetrics()
    writer = None
    if cache_url:  # the gateway serving each EA, in its cached status
        import socket

        from suho_mt5.cache import CacheWriter
        from suho_mt5.cache.metrics import CacheMetrics

        writer = CacheWriter(cache_url, name=f"gateway@{socket.gethostname()}:{os.getpid()}",
                             metrics=CacheMetrics(metrics.registry))
    gateway = Gateway(
        config,
        nats_url=nats_url,
        authenticator=DatabaseAuthenticator(url, workers=config.auth_workers),
        metrics=metrics,
        sessions=writer,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGHUP, gateway.reload_tls)
    await gateway.start()
    tune_gc()
    try:
        await stop.wait()
    finally:
        await gateway.stop()
        if writer is not None:
            await writer.close()


def run_gateway(config: GatewayConfig, url: str, nats_url: str,
                cache_url: str | None = None) -> None:
    """Check the servers, then run the gateway until SIGINT or SIGTERM; sessions are closed
    with GOING_AWAY. ``url`` is a login in ``mt5_app`` (it checks API keys). With
    ``cache_url`` (a writer's user) each EA's cached status names this gateway while it
    serves the EA.

    Once running, the gateway rides out outages; a server that is not there at the start is
    a mistake to report, not to wait for silently."""
    check_database(url)
    check_nats(nats_url, "gateway run")
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    run_fast(_serve(config, url, nats_url, cache_url))


def check_gateway(gateway_url: str) -> None:
    """Open one connection to the gateway and close it: a URL it cannot reach is one
    :class:`~suho_mt5.errors.GatewayError` now, not simulated EAs retrying for minutes."""
    from suho_mt5.gateway.client import open_connection

    async def probe() -> None:
        try:
            conn = await open_connection(gateway_url)
        except SessionClosedError as exc:  # "cannot connect to URL: reason", no close code
            raise GatewayError(exc.reason) from exc
        await conn.close()

    asyncio.run(probe())


def resolve_accounts(accounts: str, url: str | None) -> list[SimAccount]:
    """``accounts`` is a JSON file of accounts and keys, or a number of demo accounts to
    create in the database at ``url``."""
    if accounts.isdigit():
        if url is None:
            raise ConfigError("--accounts N creates demo accounts: give --url of the database")
        from suho_mt5.commands.account import provision_accounts

        return provision_accounts(url, int(accounts))
    return load_accounts(accounts)


def check_record(record: str | Path) -> None:
    """A :class:`ConfigError` now if ``record`` cannot be written, before any EA runs (the
    file itself is created when the run starts)."""
    path = Path(record)
    if path.is_dir():
        raise ConfigError(f"cannot write {record}: it is a directory")
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {record}: No such file or directory")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"cannot write {record}: Permission denied")


def run_simulation(gateway_url: str, accounts: Sequence[SimAccount], duration_s: float,
                   rates: Rates, *, record: str | Path | None = None) -> SimulationReport:
    """Run the simulated EAs for ``duration_s`` and return what they saw. With ``record``,
    every data packet they send is appended to that file (144-byte packets end to end: what
    ``suho-mt5 ingest replay`` reads)."""
    if record is None:
        return run_fast(simulate(gateway_url, accounts, duration_s, rates))
    try:
        out = Path(record).open("wb")  # noqa: SIM115 (closed below, after the run)
    except OSError as exc:
        raise ConfigError(f"cannot write {record}: {exc.strerror or exc}") from exc
    with out:
        return run_fast(simulate(gateway_url, accounts, duration_s, rates, record=out.write))
