"""The cache writer: what the Data Bridge (and the gateway, and the signal publisher) write,
sent in the background, newest value per key, one pipelined round trip at a time.

The hooks (:meth:`CacheWriter.after_commit`, :meth:`~CacheWriter.offline_marked`,
:meth:`~CacheWriter.session_changed`, :meth:`~CacheWriter.signal_changed`) are plain
synchronous calls that only merge values into a buffer and wake the writer's task: they
never wait for the cache, so a cache that is slow or down cannot slow or stop ingest.

The task sends what the buffer holds in one pipeline of ``EVALSHA`` calls (one per tenant
and up to 256 keys, plus the signal events), bounded by ``timeout``. Each script keeps a
value only if it is newer than the cached one (packet time, then sequence), so a redelivered
older batch, a slow worker or a rebuild running meanwhile never overwrites a newer value.

**Catch-up.** When a round trip fails (timeout, connection refused, the server went away)
the values go back into the buffer (a newer value of a key replaces an older one there too)
and the task retries with backoff, 0.1 s doubling to ``retry_max``. While the cache is down
the buffer holds the newest value of every key written meanwhile, and the first round trip
that succeeds writes them all: nothing committed during an outage is missing afterwards.
The buffer is bounded (``max_pending`` values); beyond it values are dropped and counted,
and ``suho-mt5 cache rebuild`` restores them from the database. A cache that comes back
*empty* (restarted without persistence) lost more than the outage's values: a writer notices
because the epoch key is gone, logs it, counts it (``suho_cache_found_empty_total``) and sets
the key again; ``suho-mt5 cache rebuild`` refills it (newer-wins makes that safe while the
bridge writes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from suho_mt5.cache._client import connect, redacted, translate_errors
from suho_mt5.cache._entries import (
    Latest,
    SignalOp,
    from_rows,
    gateway_write,
    latest_of,
    signal_base,
)
from suho_mt5.cache._keys import EPOCH_KEY, WRITER_STATUS_PREFIX, CacheTTLs, status_key
from suho_mt5.cache._scripts import PUT_LATEST, Script
from suho_mt5.cache._values import EAStatus, SignalState
from suho_mt5.errors import CacheError, CachePermissionError, CacheUnavailableError

if TYPE_CHECKING:
    from suho_mt5.cache.metrics import CacheMetrics
    from suho_mt5.ingest.batch import Batch, WriteResult
    from suho_mt5.ingest.reconcile import SymbolMapper

__all__ = ["CacheWriter", "WriteCounts"]

log = logging.getLogger("suho_mt5.cache")

#: Keys per PUT_LATEST call: bounds how long one script holds the server.
_KEYS_PER_CALL: Final = 256
#: A writer's status hash outlives its last update by this long (monitor shows the age).
_STATUS_TTL_MS: Final = 120_000
#: ... and is updated at most this often (with the round trip that follows).
_STATUS_EVERY_MS: Final = 1_000


@dataclass
class WriteCounts:
    """What one round trip (or a rebuild) did."""

    written: int = 0
    older: int = 0
    expired: int = 0
    found_empty: bool = False

    def add(self, other: WriteCounts) -> None:
        self.written += other.written
        self.older += other.older
        self.expired += other.expired
        self.found_empty = self.found_empty or other.found_empty


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class CacheWriter:
    """Writes the latest state to the cache at ``url`` (a user that may write every
    tenant's keys: ``suho-mt5 cache grant-writer``), in the background.

    ``mapper`` maps a broker symbol to the canonical one for the market references (the
    bridge passes its reconciler's). Use it from one event loop; :meth:`close` writes what
    is left (within ``drain_timeout``) and disconnects.
    """

    def __init__(self, url: str, *, ttls: CacheTTLs | None = None, name: str | None = None,
                 timeout: float = 0.5, mapper: SymbolMapper | None = None,
                 signal_limit: int = 50, max_pending: int = 200_000,
                 retry_max: float = 5.0, metrics: CacheMetrics | None = None) -> None:
        self.url = url
        self.ttls = ttls or CacheTTLs()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.timeout = timeout
        self.mapper = mapper
        self.signal_limit = signal_limit
        self.max_pending = max_pending
        self.retry_max = retry_max
        self.metrics = metrics
        self._client: Any = None
        self._latest: dict[tuple[str, str], Latest] = {}
        self._ops: list[SignalOp] = []
        self._inflight_latest: dict[tuple[str, str], Latest] = {}
        self._inflight_ops: list[SignalOp] = []
        self._oldest: float | None = None  # monotonic time of the oldest value waiting
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stopping = asyncio.Event()
        self._check_epoch = True
        self._reported_ms = 0
        self._down_since: float | None = None
        self._last_warning = 0.0
        self._failures = 0
        #: Totals since start (the writer's status hash, tests).
        self.totals = WriteCounts()
        self.errors = 0
        self.dropped = 0
        self.last_error = ""
        if metrics is not None:
            metrics.track_pending(self.pending, self.pending_age)

    # ---------------------------------------------------------------- hooks (never block)

    def after_commit(self, batch: Batch, result: WriteResult,
                     broker_of: Callable[[uuid.UUID], str | None]) -> None:
        """The bridge committed ``batch``: queue its newest values (rows the database
        refused in the row-by-row retry are left out: they are dead letters, not rows)."""
        refused = {(d.stream, d.stream_seq, d.byte_offset) for d in result.dead
                   if d.reason == "refused"}
        canonical = None
        if self.mapper is not None:
            mapper = self.mapper

            def canonical(symbol: str, account: uuid.UUID) -> str:
                return mapper.canonical(symbol, broker_of(account))

        for table, rows in batch.rows.items():
            if not rows:
                continue
            if refused:
                origins = batch.origins[table]
                rows = [r for r, (ctx, off) in zip(rows, origins, strict=True)
                        if (ctx.stream, ctx.stream_seq, off) not in refused]
            latest, ops = from_rows(table, rows, self.ttls, canonical, self.signal_limit)
            self._merge(latest, ops)
        self._kick()

    def offline_marked(self, marked: Iterable[tuple[str, uuid.UUID, datetime]]) -> None:
        """The bridge wrote ``offline`` heartbeats (``suho_mt5.ingest.status.mark_offline``)."""
        ttl = int(self.ttls.status.total_seconds() * 1000)
        self._merge([latest_of(t, status_key(t, a), at, None, ttl,
                               EAStatus(a, "offline", at, None).to_json())
                     for t, a, at in marked], [])
        self._kick()

    def session_changed(self, tenant_id: str, account_id: uuid.UUID, connected: bool,
                        at: datetime | None = None) -> None:
        """An EA's session opened on this writer's gateway (its :attr:`name`), or closed."""
        self._merge([gateway_write(tenant_id, account_id, self.name if connected else None,
                                   at or datetime.now(UTC), self.ttls)], [])
        self._kick()

    def signal_changed(self, tenant_id: str, account_id: uuid.UUID, signal_id: uuid.UUID,
                       time: datetime, status: str, details: Mapping[str, Any]) -> None:
        """A signal was stored (``pending``) or published (``sent``)."""
        signal = SignalState(signal_id, account_id, time, status,
                             details.get("symbol"), details.get("action"),
                             details.get("volume"), details.get("entry_price"),
                             details.get("stop_loss"), details.get("take_profit"))
        self._merge([], [signal_base(tenant_id, signal, self.ttls, self.signal_limit)])
        self._kick()

    # ---------------------------------------------------------------- the buffer

    def _merge(self, latest: Iterable[Latest], ops: Iterable[SignalOp]) -> None:
        now = time.monotonic()
        added = False
        for entry in latest:
            k = (entry.key, entry.prefix)
            cur = self._latest.get(k)
            if cur is None:
                if len(self._latest) >= self.max_pending:
                    self._drop(1)
                    continue
                self._latest[k] = entry
                added = True
            elif entry.order > cur.order:
                self._latest[k] = entry
                added = True
        for op in ops:
            if len(self._ops) >= self.max_pending:
                self._drop(1)
                continue
            self._ops.append(op)
            added = True
        if added and self._oldest is None:
            self._oldest = now

    def _drop(self, n: int) -> None:
        if not self.dropped:
            log.error("cache catch-up buffer full (%d values): dropping values; run "
                      "`suho-mt5 cache rebuild` once the cache answers", self.max_pending)
        self.dropped += n
        if self.metrics is not None:
            self.metrics.values_dropped.inc(n)

    def pending(self) -> int:
        """Values waiting to be written (those of a round trip in flight included)."""
        latest = len(self._latest)
        if self._inflight_latest:
            latest = len(self._latest.keys() | self._inflight_latest.keys())
        return latest + len(self._ops) + len(self._inflight_ops)

    def pending_age(self) -> float:
        """Seconds the oldest waiting value has waited (0 when none waits)."""
        return 0.0 if self._oldest is None else time.monotonic() - self._oldest

    def _kick(self) -> None:
        if self._closing:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="suho-cache-writer")
        if self.pending():
            self._idle.clear()
            self._wake.set()

    # ---------------------------------------------------------------- the task

    async def _run(self) -> None:
        delay = 0.1
        while True:
            if not self.pending():
                self._idle.set()
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            latest, ops, oldest = self._latest, self._ops, self._oldest
            self._latest, self._ops, self._oldest = {}, [], None
            self._inflight_latest, self._inflight_ops = latest, ops
            started = time.monotonic()
            try:
                counts = await self._send(list(latest.values()), ops, oldest)
            except Exception as exc:  # whatever it was, the values are kept for later
                if not isinstance(exc, CacheError):
                    log.exception("unexpected error writing the cache")
                    exc = CacheError(f"{type(exc).__name__}: {exc}")
                self._inflight_latest, self._inflight_ops = {}, []
                self._restore(latest, ops, oldest)
                self._failed(exc)
                if self._closing:
                    self._idle.set()
                    return
                # New values keep arriving meanwhile: they wait (and merge) until the
                # backoff is over, so an outage costs one attempt per backoff step.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                delay = min(delay * 2, self.retry_max)
                continue
            self._inflight_latest, self._inflight_ops = {}, []
            delay = 0.1
            self._recovered(counts, started, oldest)

    def _restore(self, latest: dict[tuple[str, str], Latest], ops: list[SignalOp],
                 oldest: float | None) -> None:
        """Put a failed round trip's values back, under any newer ones queued meanwhile."""
        newer, self._latest = self._latest, latest
        self._merge(newer.values(), [])
        self._ops[:0] = ops
        if oldest is not None:
            self._oldest = oldest if self._oldest is None else min(oldest, self._oldest)

    def _failed(self, exc: CacheError) -> None:
        self.errors += 1
        self._failures += 1
        self.last_error = str(exc)
        reason = ("refused" if isinstance(exc, CachePermissionError)
                  else "timeout" if "Timeout" in str(exc)
                  else "unavailable" if isinstance(exc, CacheUnavailableError) else "error")
        if self.metrics is not None:
            self.metrics.write_errors.labels(reason).inc()
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            self._last_warning = now
            log.warning("cache at %s not written (%s); keeping %d value(s) to write when it "
                        "answers: %s", redacted(self.url), reason, self.pending(), exc)
        elif now - self._last_warning >= 30:
            self._last_warning = now
            log.warning("cache at %s still not answering after %.0f s (%d failed round "
                        "trips); %d value(s) waiting", redacted(self.url),
                        now - self._down_since, self._failures, self.pending())
        self._check_epoch = True  # it may come back empty

    def _recovered(self, counts: WriteCounts, started: float, oldest: float | None) -> None:
        now = time.monotonic()
        m = self.metrics
        if m is not None:
            m.flushes.inc()
            m.flush_seconds.observe(now - started)
            if oldest is not None:
                m.write_lag.observe(now - oldest)
            m.values_written.inc(counts.written)
            m.values_older.inc(counts.older)
            m.values_expired.inc(counts.expired)
            if counts.found_empty:
                m.found_empty.inc()
        self.totals.add(counts)
        if self._down_since is not None:
            log.info("cache at %s answers again after %.1f s and %d failed round trip(s): "
                     "caught up (%d value(s) written, %d older)", redacted(self.url),
                     now - self._down_since, self._failures, counts.written, counts.older)
            self._down_since = None
            self._failures = 0
        if counts.found_empty:
            log.warning("the cache at %s has no epoch key: it is new, or it restarted without "
                        "its data; values not written since are missing until their next "
                        "update: run `suho-mt5 cache rebuild`", redacted(self.url))

    # ---------------------------------------------------------------- the round trip

    def _connection(self) -> Any:
        if self._client is None:
            self._client = connect(self.url, timeout=self.timeout)
        return self._client

    async def _send(self, latest: list[Latest], ops: list[SignalOp],
                    oldest: float | None) -> WriteCounts:
        """One pipelined round trip (two if the server lacks a script); raises
        :class:`CacheError` and then nothing was confirmed (it is all sent again)."""
        try:
            return await asyncio.wait_for(self._pipeline(latest, ops, oldest),
                                          self.timeout * 2)
        except TimeoutError as exc:
            await self._reset()
            raise CacheUnavailableError(
                f"no answer from the cache within {self.timeout * 2:.2f} s (Timeout)") from exc
        except CacheError:
            await self._reset()
            raise

    async def _reset(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def _pipeline(self, latest: list[Latest], ops: list[SignalOp],
                        oldest: float | None) -> WriteCounts:
        import redis.exceptions as rx

        counts = WriteCounts()
        now_ms = _now_ms()
        calls: list[tuple[Script, tuple[str, ...], tuple[object, ...], int]] = []
        by_tenant: dict[str, list[Latest]] = {}
        for entry in latest:
            if entry.expire_ms <= now_ms:
                counts.expired += 1
                continue
            by_tenant.setdefault(entry.tenant, []).append(entry)
        for entries in by_tenant.values():
            for i in range(0, len(entries), _KEYS_PER_CALL):
                chunk = entries[i : i + _KEYS_PER_CALL]
                calls.append((PUT_LATEST, tuple(e.key for e in chunk),
                              tuple(a for e in chunk for a in e.args()), len(chunk)))
        for op in ops:
            op_args = list(op.args)
            for at in op.now_at:
                op_args[at] = now_ms
            calls.append((op.script, op.keys, tuple(op_args), 0))
        client = self._connection()
        with translate_errors("writing the cache"):
            pipe = client.pipeline(transaction=False)
            for script, keys, call_args, _ in calls:
                pipe.evalsha(script.sha, len(keys), *keys, *call_args)
            epoch = self._check_epoch
            if epoch:
                pipe.set(EPOCH_KEY, f"{datetime.now(UTC).isoformat()} {self.name}", nx=True)
            status = WRITER_STATUS_PREFIX + self.name
            report = now_ms - self._reported_ms >= _STATUS_EVERY_MS or epoch
            if report:
                self._reported_ms = now_ms
                pipe.hset(status, mapping={
                    "name": self.name, "updated_ms": now_ms,
                    "lag_ms": int((time.monotonic() - oldest) * 1000) if oldest else 0,
                    "pending": self.pending(), "errors": self.errors,
                    "written": self.totals.written, "older": self.totals.older,
                    "dropped": self.dropped, "last_error": self.last_error[:200]})
                pipe.pexpire(status, _STATUS_TTL_MS)
            results = await pipe.execute(raise_on_error=False)
            missing = [i for i, r in enumerate(results[: len(calls)])
                       if isinstance(r, rx.NoScriptError)]
            if missing:  # a fresh or restarted server: EVAL caches each script
                pipe = client.pipeline(transaction=False)
                for i in missing:
                    script, keys, call_args, _ = calls[i]
                    pipe.eval(script.source, len(keys), *keys, *call_args)
                for i, r in zip(missing, await pipe.execute(raise_on_error=False),
                                strict=True):
                    results[i] = r
            for result in results:
                if isinstance(result, Exception):
                    raise result
        for (_, _, _, n), result in zip(calls, results, strict=False):
            if n:  # a PUT_LATEST call: the script returns how many keys took the value
                counts.written += int(result)
                counts.older += n - int(result)
            else:
                counts.written += 1
        if epoch:
            counts.found_empty = bool(results[len(calls)])
            self._check_epoch = False
        return counts

    # ---------------------------------------------------------------- explicit use

    async def write_now(self, latest: list[Latest], ops: list[SignalOp]) -> WriteCounts:
        """Write these values now, in the caller's task (the rebuild); raises
        :class:`CacheError` when the cache does not take them."""
        counts = await self._send(latest, ops, None)
        self.totals.add(counts)
        return counts

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued value is written (True) or ``timeout`` passed (False)."""
        if not self.pending() and self._idle.is_set():
            return True
        self._kick()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return not self.pending()

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Write what is queued (at most ``drain_timeout`` s), then disconnect."""
        if self.pending():
            drained = await self.flush(drain_timeout)
            if not drained:
                log.warning("cache writer stopped with %d value(s) not written (the cache did "
                            "not answer); `suho-mt5 cache rebuild` restores them",
                            self.pending())
        self._closing = True
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._reset()
