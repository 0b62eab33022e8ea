"""One pull loop of the Data Bridge: fetch a batch, prepare it, write it and run the risk
checks in one transaction, commit, then acknowledge.

A worker overlaps two batches: while batch N is written, committed and acked, it fetches and
prepares batch N + 1 (one write in flight, so the ack of N still follows the commit of N;
N + 1 waits, kept alive with ``in_progress``, until N is done). While the database is away
nothing is acked: the batch is retried with backoff and kept from redelivery elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from suho_mt5.errors import BatchWriteError, DatabaseUnavailableError
from suho_mt5.ingest._pull import Puller
from suho_mt5.ingest._stop import Stop
from suho_mt5.ingest.accounts import AccountCache, AccountInfo, read_accounts
from suho_mt5.ingest.batch import WriteResult
from suho_mt5.ingest.metrics import BridgeMetrics, count_result
from suho_mt5.ingest.prepare import BusMessage, Prepared, SubjectCache, prepare
from suho_mt5.ingest.risk import RiskState, check_snapshots
from suho_mt5.ingest.settings import BridgeSettings
from suho_mt5.ingest.writer import Transaction, Writer
from suho_mt5.protocol import PACKET_SIZE

__all__ = ["SINGLE_BACKEND_BATCH", "Shared", "Worker", "bus_message"]

_T = TypeVar("_T")
log = logging.getLogger("suho_mt5.ingest")

#: Messages per batch on the PGlite engine: its one backend serves the gateway too, which
#: waits while a batch's transaction runs.
SINGLE_BACKEND_BATCH = 100


def _delivery(msg: Any) -> tuple[str, int, int]:
    """``(stream, stream sequence, deliveries)`` of a JetStream message, read from its reply
    subject (``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>...``, or with a domain
    and account hash after ``ACK``) without building nats-py's metadata objects."""
    parts: list[str] = msg.reply.split(".") if msg.reply else []
    if len(parts) == 9:
        return parts[2], int(parts[5]), int(parts[4])
    if len(parts) >= 11:
        return parts[4], int(parts[7]), int(parts[6])
    md = msg.metadata
    return md.stream, md.sequence.stream, md.num_delivered


def bus_message(msg: Any) -> BusMessage:
    """A fetched JetStream message as :func:`~suho_mt5.ingest.prepare.prepare` reads it."""
    stream, seq, deliveries = _delivery(msg)
    data = msg.data if type(msg.data) is bytes else bytes(msg.data)
    return BusMessage(stream, seq, deliveries, msg.subject, data)


@dataclass(frozen=True)
class Shared:
    """What a bridge's workers share: its settings, NATS connection, metrics and stop
    signal, and what it learns as it runs (accounts, subjects, risk state)."""

    settings: BridgeSettings
    nc: Any
    metrics: BridgeMetrics
    stop: Stop
    accounts: AccountCache = field(default_factory=AccountCache)
    subjects: SubjectCache = field(default_factory=SubjectCache)
    risk_state: RiskState = field(default_factory=RiskState)


@dataclass
class _Fetched:
    """A fetched batch, prepared, waiting to be written."""

    msgs: Sequence[Any]
    prepared: Prepared
    started: float


class Worker:
    """``await Worker(index, shared).run()`` until the bridge stops; :attr:`batches` counts the
    batches it committed."""

    def __init__(self, index: int, shared: Shared) -> None:
        self.index = index
        self.shared = shared
        self.batches = 0
        self._writer = Writer(shared.settings.url)
        self._inflight: asyncio.Task[bool] | None = None

    async def run(self) -> None:
        import nats.errors

        s, settings = self.shared, self.shared.settings
        spec = settings.contract.bridge
        puller = await Puller(s.nc, spec.stream, spec.durable).start()
        size = settings.batch_size
        if self._writer.single_backend:
            size = min(size, SINGLE_BACKEND_BATCH)
        try:
            while not s.stop.is_set():
                try:
                    msgs = await puller.fetch(size, settings.fetch_timeout)
                except (TimeoutError, nats.errors.TimeoutError):
                    if puller.last_status:  # e.g. 409 Consumer Deleted: say so, once
                        log.warning("worker %d: the server answered a pull request with %s",
                                    self.index, puller.last_status)
                        puller.last_status = None
                    continue
                except nats.errors.Error as exc:
                    log.warning("worker %d: fetch failed: %s", self.index, exc)
                    await s.stop.sleep(0.5)
                    continue
                fetched = await self._prepare(msgs)
                await self._settle(msgs)
                if fetched is None:
                    break  # stopped before it could be prepared: not acked, redelivered
                self._inflight = asyncio.create_task(self._commit(fetched))
        finally:
            with contextlib.suppress(Exception):
                await self._settle()
            await self._writer.close()
            await puller.release()

    async def _settle(self, waiting: Sequence[Any] = ()) -> None:
        """Wait for the batch in flight; keep ``waiting`` (fetched) from redelivery."""
        if self._inflight is None:
            return
        keepalive = max(0.5, self.shared.settings.contract.bridge.ack_wait_seconds / 3)
        while not self._inflight.done():
            await asyncio.wait({self._inflight}, timeout=keepalive)
            if not self._inflight.done():
                for msg in waiting:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()
        task, self._inflight = self._inflight, None
        if task.result():
            self.batches += 1

    # -- retrying -----------------------------------------------------------------------

    async def _retrying(self, msgs: Sequence[Any], failed: str,
                        attempt: Callable[[], Awaitable[_T]]) -> _T | None:
        """``attempt()`` until the database takes it, backing off while it is away and keeping
        ``msgs`` from being redelivered elsewhere meanwhile (never acking them); None when
        the bridge is stopped first."""
        s = self.shared
        delay = s.settings.retry_initial
        while True:
            try:
                return await attempt()
            except (DatabaseUnavailableError, BatchWriteError) as exc:
                s.metrics.db_retries.inc()
                log.warning(failed + ", retrying in %.1f s (no ack): %s", len(msgs), delay,
                            exc)
                if s.stop.is_set():
                    return None
                for msg in msgs:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()
                if await s.stop.sleep(delay):
                    return None
                delay = min(delay * 2, s.settings.retry_max)

    # -- one batch ----------------------------------------------------------------------

    async def _prepare(self, msgs: Sequence[Any]) -> _Fetched | None:
        """Prepare ``msgs`` once the accounts they name are known; account reads that fail
        are retried like writes."""
        started = time.monotonic()
        s = self.shared
        s.metrics.messages.inc(len(msgs))
        s.metrics.packets.inc(sum(-(-len(msg.data) // PACKET_SIZE) for msg in msgs))
        messages = [bus_message(msg) for msg in msgs]

        async def read(ids: list[uuid.UUID]) -> dict[uuid.UUID, AccountInfo]:
            await self._settle(msgs)  # the connection is the worker's one
            async with self._writer.connected("cannot read mt5_user_accounts") as conn:
                return await read_accounts(conn, ids)

        async def attempt() -> Prepared:
            await s.accounts.refresh(s.subjects.accounts(messages), read)
            return prepare(messages, s.accounts.known, s.settings.reconciler, s.subjects)

        prepared = await self._retrying(msgs, "accounts of %d message(s) not read", attempt)
        if prepared is None:
            return None
        for account, mode in prepared.margin_modes.items():
            s.accounts.report_margin_mode(account, mode)
        return _Fetched(msgs, prepared, started)

    async def _commit(self, fetched: _Fetched) -> bool:
        """Write one prepared batch and ack it; False if stopped before it was committed."""
        m = self.shared.metrics
        msgs = fetched.msgs
        commit_s = 0.0

        async def write() -> WriteResult:
            nonlocal commit_s
            t0 = time.monotonic()
            async with self._writer.transaction(fetched.prepared.batch,
                                                audits_snapshots=True) as tx:
                await self._check_risk(tx)
            commit_s = time.monotonic() - t0
            m.commit_seconds.observe(commit_s)
            return tx.result

        # While it retries, the batch is kept from being redelivered elsewhere.
        result = await self._retrying(msgs, "batch of %d message(s) not written", write)
        if result is None:
            return False
        await self._committed(fetched, result)
        await self._ack(msgs, fetched.prepared.dead_whole)
        m.batches.inc()
        took = time.monotonic() - fetched.started
        m.batch_seconds.observe(took)
        log.info("batch committed: %d message(s), %s written, %d duplicate(s), %d dead "
                 "letter(s) in %.0f ms (write and commit %.0f ms, %s)", len(msgs),
                 sum(result.written.values()), sum(result.duplicates.values()),
                 len(result.dead), took * 1000, commit_s * 1000, self._writer.last_mode)
        return True

    async def _check_risk(self, tx: Transaction) -> None:
        """Risk events of the batch's new snapshots, in the batch's transaction (so a
        redelivered snapshot raises none twice)."""
        if not tx.result.new_snapshots:
            return
        s = self.shared
        events = await check_snapshots(tx.conn, tx.result.new_snapshots, s.settings.risk,
                                       s.accounts.margin_modes(), s.risk_state)
        for event in events:
            s.metrics.risk_events.labels(event.event_type).inc()
            log.warning("risk event: %s %s %s observed %s threshold %s", event.tenant_id,
                        event.account_id, event.event_type, event.observed_value,
                        event.threshold)

    async def _committed(self, fetched: _Fetched, result: WriteResult) -> None:
        """What follows every commit, before the ack: the metrics and the dead letters' log
        lines, and the latest-state cache told what was committed (it only queues: the
        batch never waits for the cache)."""
        s = self.shared
        count_result(s.metrics, result)
        if s.settings.cache is not None:
            s.settings.cache.after_commit(fetched.prepared.batch, result, s.accounts.broker_of)

    async def _ack(self, msgs: Sequence[Any], dead_whole: set[int]) -> None:
        """Terminate the dead-lettered messages and ack the rest; the last ack is confirmed.

        One round trip per batch, not per message: the server handles one connection's
        messages in order, so its reply to the final ``ack_sync`` comes after it processed
        every ack and term sent before it on this connection. If that confirmation fails,
        the unconfirmed messages come back after AckWait and are written as duplicates,
        which the idempotency keys absorb.
        """
        acks = [m for i, m in enumerate(msgs) if i not in dead_whole]
        try:
            for i in dead_whole:
                await msgs[i].term()  # stored as a dead letter: never redeliver it
            for msg in acks[:-1]:
                await msg.ack()
            if acks:
                await acks[-1].ack_sync(timeout=5)
            else:
                await self.shared.nc.flush(timeout=5)
        except Exception as exc:
            self.shared.metrics.ack_failures.inc()
            log.warning("acks of %d message(s) not confirmed (they will be redelivered, "
                        "harmlessly): %s", len(msgs), exc)
