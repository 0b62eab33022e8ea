"""Ingest commands: declare the bus contract, run the Data Bridge."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suho_mt5.commands._connect import check_database_url, check_nats, connect_nats

if TYPE_CHECKING:
    from suho_mt5.ingest.settings import BridgeSettings
    from suho_mt5.ingest.streams import BusContract, Declared

__all__ = ["bus_contract", "configure_logging", "run_bridge", "setup_streams"]


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        })


def configure_logging(json_lines: bool = False, level: int = logging.INFO) -> None:
    """One line per event on stderr; JSON objects with ``json_lines``."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = (
        _JsonFormatter() if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    formatter.converter = __import__("time").gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger("suho_mt5")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def bus_contract(config: str | Path | None = None) -> BusContract:
    """The bus contract of the YAML file ``config``, or the one shipped."""
    from suho_mt5.ingest.streams import DEFAULT_CONTRACT, load_contract

    return load_contract(config) if config is not None else DEFAULT_CONTRACT


def setup_streams(nats_url: str, config: str | Path | None = None,
                  replicas: int | None = None) -> list[Declared]:
    """Declare the streams and consumers of the bus contract (``replicas`` copies of each
    on a NATS cluster; default: 3 on a cluster of 3 or more nodes, else 1); one
    :class:`~suho_mt5.ingest.streams.Declared` per object."""
    from suho_mt5.ingest.streams import setup_streams as declare

    contract = bus_contract(config)

    async def go() -> list[Declared]:
        nc = await connect_nats(nats_url, "streams setup")
        try:
            return await declare(nc.jetstream(), contract, replicas=replicas)
        finally:
            await nc.close()

    return asyncio.run(go())


def run_bridge(settings: BridgeSettings, *, log_json: bool = False,
               cache_url: str | None = None, cache_ttls: Any = None,
               cache_timeout: float = 0.5) -> None:
    """Check the servers, then run the bridge until SIGTERM or SIGINT, then finish the
    in-flight batches and return. Logs go to stderr (JSON objects with ``log_json``).

    The bridge rides out a database outage by design (it retries and acks nothing), so only
    the URL is checked; but it would wait silently forever for a NATS server that is not
    there at the start. With ``cache_url`` the bridge tells a
    :class:`suho_mt5.cache.CacheWriter` every commit; its metrics join the bridge's
    ``/metrics``."""
    from suho_mt5.ingest.bridge import Bridge
    from suho_mt5.ingest.metrics import BridgeMetrics

    check_database_url(settings.url)
    check_nats(settings.nats_url, "ingest run")
    configure_logging(log_json)
    metrics = BridgeMetrics()

    async def go() -> None:
        writer = None
        if cache_url:
            from suho_mt5.cache import CacheWriter
            from suho_mt5.cache.metrics import CacheMetrics

            writer = CacheWriter(cache_url, name=f"bridge@{_host()}", timeout=cache_timeout,
                                 ttls=cache_ttls,
                                 mapper=settings.reconciler.mapper,
                                 metrics=CacheMetrics(metrics.registry))
            settings.cache = writer
        bridge = Bridge(settings, metrics)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, bridge.stop)
        try:
            await bridge.run()
        finally:
            if writer is not None:
                await writer.close()

    asyncio.run(go())


def _host() -> str:
    import os
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"
