"""Ingest commands: declare the bus contract, run the Data Bridge."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from suho_mt5.ingest.streams import Declared

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


def setup_streams(nats_url: str, config: str | Path | None = None,
                  replicas: int | None = None) -> list[Declared]:
    """Declare the streams and consumers of the bus contract (``replicas`` copies of each
    on a NATS cluster; default: 3 on a cluster of 3 or more nodes, else 1); one
    :class:`~suho_mt5.ingest.streams.Declared` per object."""
    from suho_mt5.ingest.streams import DEFAULT_CONTRACT, load_contract
    from suho_mt5.ingest.streams import setup_streams as declare

    contract = load_contract(config) if config is not None else DEFAULT_CONTRACT

    async def go() -> list[Declared]:
        from suho_mt5.commands._connect import connect_nats

        nc = await connect_nats(nats_url, "streams setup")
        try:
            return await declare(nc.jetstream(), contract, replicas=replicas)
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
) -> None:
    """Run the bridge until SIGTERM or SIGINT, then finish the in-flight batches and return."""
    from datetime import timedelta

    from suho_mt5.ingest.bridge import Bridge, BridgeSettings
    from suho_mt5.ingest.streams import DEFAULT_CONTRACT, load_contract

    contract = load_contract(config) if config is not None else DEFAULT_CONTRACT
    settings = BridgeSettings(
        url=url, nats_url=nats_url, contract=contract, workers=workers, batch_size=batch_size,
        metrics_port=metrics_port, offline_after=timedelta(seconds=offline_after),
        offline_check_every=offline_check_every,
    )

    async def go() -> None:
        bridge = Bridge(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, bridge.stop)
        await bridge.run()

    asyncio.run(go())
