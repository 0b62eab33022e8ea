"""The Data Bridge: NATS JetStream -> TimescaleDB, exactly once in effect.

Each worker pulls a batch from the durable consumer, decodes the frames, checks every
message's subject names a registered, active account of the tenant it claims and that every
packet belongs to that account and subject kind, builds and checks rows, and writes the
batch in one transaction (rows, dead letters, risk events). Only after the commit does it
acknowledge, with confirmed acks (``ack_sync``): a crash before the ack means redelivery,
and the idempotency keys make the second write a no-op. A database outage means no ack:
the batch is retried with backoff while ``in_progress`` keeps the server from
redelivering it elsewhere. Several workers, in one process or many, share the consumer.

Each worker overlaps two batches: while batch N is written, committed and acked, it fetches
and decodes batch N + 1 (one write in flight per worker, so the ack of N still follows the
commit of N; N + 1 waits, kept alive with ``in_progress``, until N is done).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, TypeVar

from suho_mt5._subjects import SubjectError, parse_account_subject
from suho_mt5.errors import (
    BatchWriteError,
    DatabaseUnavailableError,
    ProtocolError,
    ReconcileError,
    StreamSetupError,
)
from suho_mt5.ingest._pull import Puller
from suho_mt5.ingest.hooks import CommitListener
from suho_mt5.ingest.metrics import BridgeMetrics
from suho_mt5.ingest.reconcile import Reconciler, decode_reference
from suho_mt5.ingest.risk import RiskLimits, RiskState, check_snapshots
from suho_mt5.ingest.rows import (
    KIND_OF_TYPE,
    TABLE_OF_KIND,
    packet_row,
    row_problem_of_valid_tenant,
    snapshot_margin_mode,
)
from suho_mt5.ingest.status import mark_offline
from suho_mt5.ingest.streams import DEFAULT_CONTRACT, BusContract
from suho_mt5.ingest.writer import (
    AccountInfo,
    Batch,
    DeadLetterRecord,
    MessageContext,
    Writer,
    WriteResult,
)
from suho_mt5.protocol import PACKET_SIZE, AccountSnapshotPacket, decode, decode_frame

__all__ = ["Bridge", "BridgeSettings"]

_T = TypeVar("_T")
log = logging.getLogger("suho_mt5.ingest")

_ACCOUNT_TTL: Final = 30.0  # seconds an account lookup is trusted (deactivation delay)
_SUBJECT_CACHE: Final = 100_000  # parsed subjects kept (one per account and kind)
#: Messages per batch on the PGlite engine: its one backend serves the gateway too, which
#: waits while a batch's transaction runs.
SINGLE_BACKEND_BATCH: Final = 100


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


@dataclass
class _Prepared:
    """A fetched batch, decoded and checked, waiting to be written."""

    msgs: Sequence[Any]
    batch: Batch
    dead_whole: set[int]
    started: float


@dataclass
class BridgeSettings:
    """How a bridge runs; ``url`` is a login in ``mt5_ingest``."""

    url: str
    nats_url: str
    contract: BusContract = DEFAULT_CONTRACT
    workers: int = 1
    batch_size: int = 500
    fetch_timeout: float = 1.0
    retry_initial: float = 0.2
    retry_max: float = 5.0
    metrics_port: int | None = None
    offline_after: timedelta = timedelta(seconds=90)
    offline_check_every: float = 15.0
    risk: RiskLimits = field(default_factory=RiskLimits)
    reconciler: Reconciler = field(default_factory=Reconciler)
    consumer_poll_every: float = 2.0
    #: Told every committed batch and offline mark (the latest-state cache's writer).
    cache: CommitListener | None = None


class Bridge:
    """Run with ``await bridge.run()``; :meth:`stop` (SIGTERM) finishes the in-flight batches."""

    def __init__(self, settings: BridgeSettings, metrics: BridgeMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or BridgeMetrics()
        self._stop = asyncio.Event()
        self._accounts: dict[uuid.UUID, tuple[float, AccountInfo | None]] = {}
        self._nc: Any = None
        self._js: Any = None
        self.batches_by_worker: dict[int, int] = {}
        self._risk_state = RiskState()
        #: Margin modes the snapshots themselves reported (they win over the account row).
        self._reported_modes: dict[uuid.UUID, str] = {}
        self._subjects: dict[str, tuple[str, uuid.UUID, str] | str] = {}

    def stop(self) -> None:
        """Finish the batches in flight, ack them, and return from :meth:`run`."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        import nats

        s = self.settings
        try:
            self._nc = await nats.connect(
                s.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                error_cb=self._nats_error, disconnected_cb=self._nats_disconnected,
                reconnected_cb=self._nats_reconnected, allow_reconnect=True,
            )
        except Exception as exc:
            raise StreamSetupError(f"cannot connect to NATS at {s.nats_url}: {exc}") from exc
        self._js = self._nc.jetstream()
        spec = s.contract.bridge
        try:
            await self._js.consumer_info(spec.stream, spec.durable)
        except Exception as exc:
            await self._nc.close()
            raise StreamSetupError(
                f"consumer {spec.stream}/{spec.durable} is not there ({exc}): run "
                "`suho-mt5 streams setup` first") from exc
        server = self.metrics.serve(s.metrics_port) if s.metrics_port is not None else None
        log.info("bridge started: %d worker(s), consumer %s/%s", s.workers,
                 s.contract.bridge.stream, s.contract.bridge.durable)
        tasks = [asyncio.create_task(self._worker(i)) for i in range(s.workers)]
        helpers = [
            asyncio.create_task(self._poll_consumer()),
            asyncio.create_task(self._offline_loop()),
            asyncio.create_task(self._market_feed()),
            asyncio.create_task(self._max_deliver_advisories()),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            self._stop.set()
            for h in helpers:
                h.cancel()
            for h in helpers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await h
            with contextlib.suppress(Exception):
                await self._nc.drain()
            if server is not None:
                server.shutdown()
                server.server_close()
            log.info("bridge stopped")

    async def _nats_error(self, exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    async def _nats_disconnected(self) -> None:
        log.warning("nats disconnected")

    async def _nats_reconnected(self) -> None:
        log.info("nats reconnected")

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the bridge is stopped."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # ------------------------------------------------------------------ workers

    async def _worker(self, index: int) -> None:
        import nats.errors

        spec = self.settings.contract.bridge
        puller = await Puller(self._nc, spec.stream, spec.durable).start()
        writer = Writer(self.settings.url, in_transaction=self._in_transaction)
        self.batches_by_worker[index] = 0
        inflight: asyncio.Task[bool] | None = None
        size = self.settings.batch_size
        if writer.single_backend:
            size = min(size, SINGLE_BACKEND_BATCH)

        async def settle(waiting: Sequence[Any] = ()) -> None:
            """Wait for the batch in flight; keep ``waiting`` (fetched) from redelivery."""
            nonlocal inflight
            if inflight is None:
                return
            keepalive = max(0.5, spec.ack_wait_seconds / 3)
            while not inflight.done():
                await asyncio.wait({inflight}, timeout=keepalive)
                if not inflight.done():
                    for msg in waiting:
                        with contextlib.suppress(Exception):
                            await msg.in_progress()
            task, inflight = inflight, None
            if task.result():
                self.batches_by_worker[index] += 1

        try:
            while not self._stop.is_set():
                try:
                    msgs = await puller.fetch(size, self.settings.fetch_timeout)
                except (TimeoutError, nats.errors.TimeoutError):
                    if puller.last_status:  # e.g. 409 Consumer Deleted: say so, once
                        log.warning("worker %d: the server answered a pull request with %s",
                                    index, puller.last_status)
                        puller.last_status = None
                    continue
                except nats.errors.Error as exc:
                    log.warning("worker %d: fetch failed: %s", index, exc)
                    await self._sleep(0.5)
                    continue
                prepared = await self._prepare_retrying(msgs, writer, settle)
                await settle(msgs)
                if prepared is None:
                    break  # stopped before it could be prepared: not acked, redelivered
                inflight = asyncio.create_task(self._commit(prepared, writer))
        finally:
            with contextlib.suppress(Exception):
                await settle()
            await writer.close()
            await puller.release()

    async def _keep_alive(self, msgs: Sequence[Any], delay: float) -> bool:
        """After a failed attempt: ``in_progress`` for ``msgs`` (so the server does not
        redeliver them elsewhere meanwhile), then sleep; False when stopped."""
        if self._stop.is_set():
            return False
        for msg in msgs:
            with contextlib.suppress(Exception):
                await msg.in_progress()
        await self._sleep(delay)
        return not self._stop.is_set()

    async def _retrying(self, msgs: Sequence[Any], failed: str,
                        attempt: Callable[[], Awaitable[_T]]) -> _T | None:
        """``attempt()`` until the database takes it, backing off while it is away and keeping
        ``msgs`` from being redelivered elsewhere meanwhile (never acking them); None when
        the bridge is stopped first."""
        delay = self.settings.retry_initial
        while True:
            try:
                return await attempt()
            except (DatabaseUnavailableError, BatchWriteError) as exc:
                self.metrics.db_retries.inc()
                log.warning(failed + ", retrying in %.1f s (no ack): %s", len(msgs), delay,
                            exc)
                if not await self._keep_alive(msgs, delay):
                    return None
                delay = min(delay * 2, self.settings.retry_max)

    async def _prepare_retrying(
        self, msgs: Sequence[Any], writer: Writer,
        settle: Callable[[Sequence[Any]], Awaitable[None]],
    ) -> _Prepared | None:
        """Decode and check ``msgs``; account lookups that fail are retried like writes."""
        started = time.monotonic()
        m = self.metrics
        m.messages.inc(len(msgs))
        m.packets.inc(sum(-(-len(msg.data) // PACKET_SIZE) for msg in msgs))
        prepared = await self._retrying(msgs, "accounts of %d message(s) not read",
                                        lambda: self._prepare(msgs, writer, settle))
        return None if prepared is None else _Prepared(msgs, *prepared, started)

    async def _commit(self, prepared: _Prepared, writer: Writer) -> bool:
        """Write one prepared batch and ack it; False if stopped before it was committed."""
        m = self.metrics
        msgs = prepared.msgs
        commit_s = 0.0

        async def write() -> WriteResult:
            nonlocal commit_s
            t0 = time.monotonic()
            result = await writer.write(prepared.batch)
            commit_s = time.monotonic() - t0
            m.commit_seconds.observe(commit_s)
            return result

        # While it retries, the batch is kept from being redelivered elsewhere.
        result = await self._retrying(msgs, "batch of %d message(s) not written", write)
        if result is None:
            return False
        self._count(result)
        await self._ack(msgs, prepared.dead_whole)
        if self.settings.cache is not None:  # queues only: never waits for the cache
            self.settings.cache.after_commit(prepared.batch, result, self._broker_of)
        m.batches.inc()
        took = time.monotonic() - prepared.started
        m.batch_seconds.observe(took)
        log.info("batch committed: %d message(s), %s written, %d duplicate(s), %d dead "
                 "letter(s) in %.0f ms (write and commit %.0f ms, %s)", len(msgs),
                 sum(result.written.values()), sum(result.duplicates.values()),
                 len(result.dead), took * 1000, commit_s * 1000, writer.last_mode)
        return True

    def _count(self, result: WriteResult) -> None:
        m = self.metrics
        for table, n in result.written.items():
            m.written.labels(table).inc(n)
        for table, n in result.duplicates.items():
            m.duplicates.labels(table).inc(n)
        for d in result.dead:
            m.dead_letters.labels(d.reason).inc()
            m.dead_packets.labels(d.reason).inc(d.packet_count)
            log.warning("dead letter: %s %s seq %d offset %d: %s", d.reason, d.subject,
                        d.stream_seq, d.byte_offset, d.detail)

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
                await self._nc.flush(timeout=5)
        except Exception as exc:
            self.metrics.ack_failures.inc()
            log.warning("acks of %d message(s) not confirmed (they will be redelivered, "
                        "harmlessly): %s", len(msgs), exc)

    # ------------------------------------------------------------------ checks and rows

    async def _lookup(self, ids: set[uuid.UUID], writer: Writer,
                      settle: Callable[[], Awaitable[None]]) -> None:
        """Refresh the cache for ``ids``. Accounts found are trusted for 30 s (deactivation
        takes effect within that); unknown ones are asked again every batch, so an account
        registered a moment ago is never refused for long. The writer's connection is the
        worker's one: the batch in flight is waited for first (``settle``)."""
        now = time.monotonic()
        stale = {a for a in ids if (e := self._accounts.get(a)) is None or e[1] is None
                 or now - e[0] > _ACCOUNT_TTL}
        if stale:
            await settle()
            found = await writer.accounts(sorted(stale))
            for a in stale:
                self._accounts[a] = (now, found.get(a))

    def _broker_of(self, account_id: uuid.UUID) -> str | None:
        entry = self._accounts.get(account_id)
        return entry[1].broker_name if entry is not None and entry[1] is not None else None

    def _parse_subject(self, subject: str) -> tuple[str, uuid.UUID, str] | str:
        """The parsed subject (cached: one per account and kind), or why it is refused."""
        got = self._subjects.get(subject)
        if got is None:
            try:
                got = parse_account_subject(subject)
            except SubjectError as exc:
                got = str(exc)
            if len(self._subjects) >= _SUBJECT_CACHE:
                self._subjects.clear()
            self._subjects[subject] = got
        return got

    async def _prepare(self, msgs: Sequence[Any], writer: Writer,
                       settle: Callable[[Sequence[Any]], Awaitable[None]],
                       ) -> tuple[Batch, set[int]]:
        batch = Batch()
        dead_whole: set[int] = set()
        parsed = [self._parse_subject(msg.subject) for msg in msgs]
        await self._lookup({p[1] for p in parsed if isinstance(p, tuple)}, writer,
                           lambda: settle(msgs))
        reconciler = self.settings.reconciler
        for i, (msg, sub) in enumerate(zip(msgs, parsed, strict=True)):
            stream, seq, deliveries = _delivery(msg)
            data = msg.data if type(msg.data) is bytes else bytes(msg.data)
            if isinstance(sub, str):
                ctx = MessageContext(stream, seq, msg.subject, data, deliveries)
                batch.dead.append(DeadLetterRecord.of(ctx, "unauthorized", sub))
                dead_whole.add(i)
                continue
            tenant, account_id, kind = sub
            ctx = MessageContext(stream, seq, msg.subject, data, deliveries, tenant, account_id)
            info = self._accounts[account_id][1]
            why = (
                "no such account" if info is None
                else "account is not active" if not info.is_active
                else f"account belongs to another tenant than {tenant!r}"
                if info.tenant_id != tenant else None
            )
            if why is not None or info is None:
                batch.dead.append(DeadLetterRecord.of(ctx, "unauthorized", why or ""))
                dead_whole.add(i)
                continue
            if not data or len(data) % PACKET_SIZE:
                batch.dead.append(DeadLetterRecord.of(
                    ctx, "undecodable",
                    f"{len(data)} bytes is not a whole number of {PACKET_SIZE}-byte packets"))
                dead_whole.add(i)
                continue
            try:
                if len(data) == PACKET_SIZE:  # one packet per message: skip the frame setup
                    packets = [(0, decode(data))]
                else:
                    packets = [(k * PACKET_SIZE, p) for k, p in enumerate(decode_frame(data))]
            except ProtocolError:
                packets = []
                for off in range(0, len(data), PACKET_SIZE):
                    try:
                        packets.append((off, decode(data[off : off + PACKET_SIZE])))
                    except ProtocolError as exc:
                        batch.dead.append(DeadLetterRecord.of(ctx, "undecodable", exc.reason,
                                                              off, PACKET_SIZE))
            acc_bytes = account_id.bytes
            table = TABLE_OF_KIND[kind]
            check = row_problem_of_valid_tenant(table)  # the subject's tenant is valid
            reference = None
            if kind == "quote" and reconciler.book:
                def reference(symbol: str, t: Any, bid: Any, ask: Any,
                              broker: str = info.broker_name) -> Any:
                    return reconciler.reference(symbol, t, bid, ask, broker)

            for off, packet in packets:
                if packet.account_id != acc_bytes:
                    batch.dead.append(DeadLetterRecord.of(
                        ctx, "account_mismatch",
                        f"packet account {uuid.UUID(bytes=packet.account_id)} is not the "
                        f"subject's {account_id}", off, PACKET_SIZE))
                    continue
                if KIND_OF_TYPE.get(packet.MESSAGE_TYPE) != kind:
                    batch.dead.append(DeadLetterRecord.of(
                        ctx, "kind_mismatch",
                        f"{packet.MESSAGE_TYPE.name} packet on a {kind!r} subject",
                        off, PACKET_SIZE))
                    continue
                if (packet.__class__ is AccountSnapshotPacket
                        and (mode := snapshot_margin_mode(packet)) is not None):
                    self._reported_modes[account_id] = mode
                _, row = packet_row(packet, tenant, account_id, reference)
                problem = check(row)
                if problem is not None:
                    batch.dead.append(DeadLetterRecord.of(ctx, "check_violation", problem,
                                                          off, PACKET_SIZE))
                    continue
                batch.add(table, row, (ctx, off))
        return batch, dead_whole

    async def _in_transaction(self, conn: Any, result: WriteResult) -> None:
        if not result.new_snapshots:
            return
        modes = {a: (e[1].margin_mode if e[1] is not None else None)
                 for a, e in self._accounts.items()}
        modes.update(self._reported_modes)
        events = await check_snapshots(conn, result.new_snapshots, self.settings.risk, modes,
                                       self._risk_state)
        for event in events:
            self.metrics.risk_events.labels(event.event_type).inc()
            log.warning("risk event: %s %s %s observed %s threshold %s", event.tenant_id,
                        event.account_id, event.event_type, event.observed_value,
                        event.threshold)

    # ------------------------------------------------------------------ helpers

    async def _poll_consumer(self) -> None:
        spec = self.settings.contract.bridge
        while not self._stop.is_set():
            try:
                info = await self._js.consumer_info(spec.stream, spec.durable)
                self.metrics.pending.set(info.num_pending or 0)
                self.metrics.ack_pending.set(info.num_ack_pending or 0)
                self.metrics.redelivered.set(info.num_redelivered or 0)
            except Exception as exc:
                log.debug("consumer info unavailable: %s", exc)
            await self._sleep(self.settings.consumer_poll_every)

    async def _offline_loop(self) -> None:
        import psycopg

        conninfo = Writer(self.settings.url).conninfo
        while not self._stop.is_set():
            await self._sleep(self.settings.offline_check_every)
            if self._stop.is_set():
                return
            try:
                async with await psycopg.AsyncConnection.connect(conninfo) as conn:
                    marked = await mark_offline(conn, self.settings.offline_after)
                for tenant, account, _ in marked:
                    self.metrics.marked_offline.inc()
                    log.info("account marked offline: %s %s", tenant, account)
                if marked and self.settings.cache is not None:
                    self.settings.cache.offline_marked(marked)
            except Exception as exc:
                log.warning("offline check failed: %s", exc)

    async def _max_deliver_advisories(self) -> None:
        """Dead-letter each message the server gave up on (MaxDeliver reached).

        The server stops delivering such a message and announces it once on an advisory
        subject; one bridge of the queue group takes it, reads the message from the stream
        and writes a ``max_deliver`` dead letter (idempotent by stream position).
        """
        import json

        spec = self.settings.contract.bridge
        subject = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{spec.stream}.{spec.durable}"
        writer = Writer(self.settings.url)

        async def on_advisory(msg: Any) -> None:
            try:
                event = json.loads(msg.data)
                seq, deliveries = int(event["stream_seq"]), int(event.get("deliveries", 0))
                raw = await self._js.get_msg(spec.stream, seq)
                ctx = MessageContext(spec.stream, seq, raw.subject, bytes(raw.data or b""),
                                     deliveries)
                with contextlib.suppress(SubjectError):
                    tenant, account, _ = parse_account_subject(raw.subject)
                    ctx = MessageContext(spec.stream, seq, raw.subject, ctx.data, deliveries,
                                         tenant, account)
                record = DeadLetterRecord.of(
                    ctx, "max_deliver", f"delivered {deliveries} times without an ack "
                    f"(MaxDeliver {spec.max_deliver}); the server will not deliver it again")
                result = await writer.write(Batch(dead=[record]))
                self._count(result)
            except Exception as exc:
                log.warning("max-deliver advisory not recorded: %s", exc)

        sub = await self._nc.subscribe(subject, queue=f"{spec.durable}-advisories",
                                       cb=on_advisory)
        try:
            await self._stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            await writer.close()

    async def _market_feed(self) -> None:
        from nats.js.api import DeliverPolicy

        reconciler = self.settings.reconciler

        async def on_quote(msg: Any) -> None:
            symbol = msg.subject.rsplit(".", 1)[-1]
            try:
                reconciler.book.add(decode_reference(symbol, msg.data))
                self.metrics.reference_quotes.inc()
            except ReconcileError as exc:
                log.warning("reference quote ignored: %s", exc)

        try:
            sub = await self._js.subscribe("mt5.market.>", cb=on_quote, ordered_consumer=True,
                                           deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)
        except Exception as exc:
            log.warning("no reference quotes (stream MT5_MARKET missing?): %s", exc)
            return
        try:
            await self._stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
