"""The Data Bridge: NATS JetStream -> TimescaleDB, exactly once in effect.

:class:`Bridge` is the process: it connects to NATS, checks that its durable consumer is
there, and runs its workers and side loops until :meth:`Bridge.stop`. Each worker
(:mod:`~suho_mt5.ingest._worker`) pulls a batch from the consumer, prepares it
(:func:`~suho_mt5.ingest.prepare.prepare`: subjects, accounts, decoding, rows, dead
letters), writes it and runs the risk checks in one transaction
(:meth:`~suho_mt5.ingest.writer.Writer.transaction`), and only after the commit
acknowledges, with confirmed acks (``ack_sync``): a crash before the ack means redelivery,
and the idempotency keys make the second write a no-op. A database outage means no ack: the
batch is retried with backoff while ``in_progress`` keeps the server from redelivering it
elsewhere. Several workers, in one process or many, share the consumer.

The side loops, one module each: the reference feed (:mod:`~suho_mt5.ingest.feed`),
offline marking (:mod:`~suho_mt5.ingest.status`), MaxDeliver advisories
(:mod:`~suho_mt5.ingest.advisories`) and the consumer's gauges
(:mod:`~suho_mt5.ingest.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from suho_mt5._nats import nats_servers
from suho_mt5.db import psycopg_conninfo
from suho_mt5.errors import StreamSetupError, redact
from suho_mt5.ingest._stop import Stop
from suho_mt5.ingest._worker import Shared, Worker
from suho_mt5.ingest.advisories import max_deliver_advisories
from suho_mt5.ingest.feed import reference_feed
from suho_mt5.ingest.metrics import BridgeMetrics, poll_consumer
from suho_mt5.ingest.settings import BridgeSettings
from suho_mt5.ingest.status import offline_loop

__all__ = ["Bridge", "BridgeSettings"]

log = logging.getLogger("suho_mt5.ingest")


class Bridge:
    """Run with ``await bridge.run()``; :meth:`stop` (SIGTERM) finishes the in-flight batches."""

    def __init__(self, settings: BridgeSettings, metrics: BridgeMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or BridgeMetrics()
        self._stop = Stop()
        self._workers: list[Worker] = []

    def stop(self) -> None:
        """Finish the batches in flight, ack them, and return from :meth:`run`."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def batches_by_worker(self) -> dict[int, int]:
        """Batches committed by each worker so far."""
        return {w.index: w.batches for w in self._workers}

    async def run(self) -> None:
        from nats.aio.client import Client

        s = self.settings
        # Raced against stop(): nats-py retries the first connection forever, and SIGTERM
        # must still end the bridge while it waits for a NATS server that does not answer.
        # The client is ours (not nats.connect's) so that a connect cut short can be closed:
        # cancelling it leaves its socket open otherwise.
        nc = Client()
        connecting = asyncio.ensure_future(nc.connect(
            servers=nats_servers(s.nats_url), max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,  # type: ignore[arg-type]  # nats-py sleeps a float; its hint says int
            error_cb=_nats_error, disconnected_cb=_nats_disconnected,
            reconnected_cb=_nats_reconnected, allow_reconnect=True,
        ))
        stopping = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait((connecting, stopping), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not connecting.done():
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
            with contextlib.suppress(Exception):
                await nc.close()
            log.info("bridge stopped while connecting to NATS")
            return
        try:
            connecting.result()
        except Exception as exc:
            raise StreamSetupError(f"cannot connect to NATS at {redact(s.nats_url)}: "
                                   f"{redact(str(exc))}") from exc
        js = nc.jetstream()
        spec = s.contract.bridge
        try:
            await js.consumer_info(spec.stream, spec.durable)
        except Exception as exc:
            await nc.close()
            raise StreamSetupError(
                f"consumer {spec.stream}/{spec.durable} is not there ({exc}): run "
                "`suho-mt5 streams setup` first") from exc
        server = self.metrics.serve(s.metrics_port) if s.metrics_port is not None else None
        log.info("bridge started: %d worker(s), consumer %s/%s", s.workers, spec.stream,
                 spec.durable)
        shared = Shared(s, nc, self.metrics, self._stop)
        self._workers = [Worker(i, shared) for i in range(s.workers)]
        stop, m = self._stop, self.metrics
        helpers = [asyncio.create_task(loop) for loop in (
            poll_consumer(js, spec, m, s.consumer_poll_every, stop),
            offline_loop(psycopg_conninfo(s.url)[0], s.offline_after, s.offline_check_every,
                         m, stop, s.cache),
            reference_feed(js, s.reconciler, m, stop),
            max_deliver_advisories(nc, js, spec, s.url, m, stop),
        )]
        try:
            await asyncio.gather(*(w.run() for w in self._workers))
        finally:
            self._stop.set()
            for h in helpers:
                h.cancel()
            for h in helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await h
            with contextlib.suppress(Exception):
                await nc.drain()
            if server is not None:
                server.shutdown()
                server.server_close()
            log.info("bridge stopped")


async def _nats_error(exc: Exception) -> None:
    log.warning("nats error: %s", exc)


async def _nats_disconnected() -> None:
    log.warning("nats disconnected")


async def _nats_reconnected() -> None:
    log.info("nats reconnected")

