"""Ingest commands: declare the bus contract, run the Data Bridge."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

__all__ = ["configure_logging", "run_bridge", "setup_streams"]


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


def setup_streams(nats_url: str, config: str | Path | None = None) -> list[str]:
    """Declare the streams and consumers of the bus contract; one line per object."""
    from suho_mt5.ingest.streams import DEFAULT_CONTRACT, load_contract
    from suho_mt5.ingest.streams import setup_streams as declare

    contract = load_contract(config) if config is not None else DEFAULT_CONTRACT

    async def go() -> list[str]:
        from suho_mt5.commands._connect import connect_nats

        nc = await connect_nats(nats_url, "streams setup")
        try:
            return await declare(nc.jetstream(), contract)
        finally:
            await nc.close()

    return asyncio.run(go())


def run_bridge(
    url: str,
    nats_url: str,
    *,
    workers: int = 1,
    batch_size: int = 500,
    metrics_port: int | None = None,
    config: str | Path | None = None,
    offline_after: float = 90.0,
    offline_check_every: float = 15.0,
    cache_url: str | None = None,
    cache_ttls: Any = None,
    cache_timeout: float = 0.5,
) -> None:
    """Run the bridge until SIGTERM or SIGINT, then finish the in-flight batches and return.

    With ``cache_url`` the bridge tells a :class:`suho_mt5.cache.CacheWriter` every commit;
    its metrics join the bridge's ``/metrics``."""
    from datetime import timedelta

    from suho_mt5.ingest.bridge import Bridge, BridgeSettings
    from suho_mt5.ingest.metrics import BridgeMetrics
    from suho_mt5.ingest.streams import DEFAULT_CONTRACT, load_contract

    contract = load_contract(config) if config is not None else DEFAULT_CONTRACT
    settings = BridgeSettings(
        url=url, nats_url=nats_url, contract=contract, workers=workers, batch_size=batch_size,
        metrics_port=metrics_port, offline_after=timedelta(seconds=offline_after),
        offline_check_every=offline_check_every,
    )
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
