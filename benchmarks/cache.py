"""Latest-state cache benchmarks (``suho_mt5.cache``), on native TimescaleDB, nats-server and
redis-server started here:

* the latest quote of an account and symbol, read through the read API from the cache (as
  the tenant's ACL user) against the same read from the database (the read API's fallback:
  the tenant view, a tenant login, the tenant set per transaction), one call at a time,
  the two alternated so that they share the machine's load;
* the Data Bridge end to end with the cache writer on and off, alternated run by run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from ._registry import Row, Section, Settings, section
from ._stats import quantile
from .ingest import _accounts, _database, _feed_frames, _timescale, _until_drained

_TITLE = "Latest-state cache (suho_mt5.cache) on redis-server 7 and native TimescaleDB"


@contextlib.contextmanager
def _redis() -> Iterator[Any]:
    from tests.support.servers import RedisServer, serving

    with serving(RedisServer, "bench-redis") as server:
        yield server


def _app_login(admin: str) -> str:
    from sqlalchemy.engine import make_url

    from tests.integration.ingest._support import libpq

    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'suho_bench_app'"
                            ).fetchone():
            conn.execute("CREATE ROLE suho_bench_app LOGIN PASSWORD 'bench' IN ROLE mt5_app")
    return make_url(admin).set(username="suho_bench_app", password="bench").render_as_string(
        hide_password=False)


_SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD")


def _fill_quotes(admin: str, accounts: dict[uuid.UUID, str], per_key: int) -> int:
    """``per_key`` quotes of each account and symbol over the last four minutes."""
    from tests.integration.ingest._support import libpq

    now = datetime.now(UTC)
    step = timedelta(minutes=4) / per_key
    n = 0
    with psycopg.connect(libpq(admin)) as conn, conn.cursor() as cur, cur.copy(
            "COPY mt5_broker_quotes (time, tenant_id, account_id, symbol, bid, ask, last,"
            " volume, spread_points, sequence) FROM STDIN") as copy:
        for acc, tenant in accounts.items():
            seq = 0
            for k in range(per_key):
                for symbol in _SYMBOLS:
                    seq += 1
                    bid = Decimal("1.09530") + Decimal(k % 97) / 100_000
                    copy.write_row((now - timedelta(minutes=4) + step * k, tenant, acc, symbol,
                                    bid, bid + Decimal("0.00015"), 0, 0, 15, seq))
                    n += 1
    return n


async def _read_latencies(cache_url: str, passwords: dict[str, str], app_url: str,
                          keys: list[tuple[str, uuid.UUID, str]], rounds: int
                          ) -> tuple[list[float], list[float]]:
    from suho_mt5.cache import CacheReader

    cached: list[float] = []
    database: list[float] = []
    async with CacheReader(cache_url, credentials=passwords) as from_cache, \
            CacheReader(None, database_url=app_url) as from_database:
        for reader in (from_cache, from_database):  # warm: connections, plans
            for tenant, acc, symbol in keys[:20]:
                assert await reader.latest_quote(tenant, acc, symbol) is not None
        for r in range(rounds):
            tenant, acc, symbol = keys[r % len(keys)]
            for reader, out in ((from_cache, cached), (from_database, database)):
                t0 = time.perf_counter()
                quote = await reader.latest_quote(tenant, acc, symbol)
                out.append(time.perf_counter() - t0)
                assert quote is not None
    return cached, database


async def _bridge_run(ingest_url: str, nats_url: str, frames: list[tuple[str, bytes, str]],
                      batch_size: int, writer_url: str | None) -> tuple[float, int]:
    """Seconds from bridge start to every frame committed and acked, and the values the
    cache writer wrote (0 without one)."""
    from suho_mt5.cache import CacheTTLs, CacheWriter
    from suho_mt5.ingest import Bridge, BridgeSettings
    from tests.integration.ingest._support import jetstream, publish_all

    async with jetstream(nats_url) as (_nc, js):
        await js.purge_stream("MT5_ACCOUNTS")
        await publish_all(js, frames)
        settings = BridgeSettings(url=ingest_url, nats_url=nats_url, batch_size=batch_size,
                                  workers=2, fetch_timeout=0.2, offline_check_every=3600,
                                  consumer_poll_every=3600)
        writer = None
        if writer_url is not None:
            # the feed's packets are dated in the past: values that live long enough
            writer = CacheWriter(writer_url, ttls=CacheTTLs.uniform(timedelta(days=3650)),
                                 mapper=settings.reconciler.mapper)
            settings.cache = writer
        bridge = Bridge(settings)
        start = time.perf_counter()
        task = asyncio.create_task(bridge.run())
        try:
            await _until_drained(js)
            took = time.perf_counter() - start
        finally:
            bridge.stop()
            await task
        written = 0
        if writer is not None:
            assert await writer.flush(30)
            written = writer.totals.written
            await writer.close()
        return took, written


def _hook_seconds_per_row(accounts: dict[uuid.UUID, str], settings: Settings) -> float:
    """CPU seconds ``CacheWriter.after_commit`` spends per row of a 50,000-row batch (the
    hook only queues; nothing is sent: there is no server at the URL)."""
    from suho_mt5.cache import CacheTTLs, CacheWriter
    from suho_mt5.ingest.reconcile import SymbolMapper
    from suho_mt5.ingest.writer import Batch, MessageContext, WriteResult

    from .ingest import _rows_of

    rows = _rows_of(_feed_frames(accounts, 50_000, 100, 9_000_000_000_000,
                                 ("quote", "quote", "snapshot", "heartbeat")))
    batch = Batch()
    ctx = MessageContext("bench", 0, "bench", b"", 1)
    for table, table_rows in rows.items():
        for r in table_rows:
            batch.add(table, r, (ctx, 0))

    async def run() -> list[float]:
        writer = CacheWriter("redis://127.0.0.1:1/0", mapper=SymbolMapper(),
                             ttls=CacheTTLs.uniform(timedelta(days=3650)))
        times = []
        for _ in range(settings.repeats):
            t0 = time.process_time()
            writer.after_commit(batch, WriteResult(), lambda a: "Broker")
            times.append(time.process_time() - t0)
        quiet = logging.getLogger("suho_mt5.cache")
        level, quiet.level = quiet.level, logging.ERROR  # nothing was meant to be sent
        try:
            await writer.close(drain_timeout=0)
        finally:
            quiet.setLevel(level)
        return times

    return statistics.median(asyncio.run(run())) / batch.row_count


def _pct(values: list[float], q: float) -> float:
    """``q`` quantile of durations in seconds, in milliseconds."""
    return quantile(values, q) * 1000


@section(_TITLE, order=50)
def cache_section(settings: Settings) -> Section:
    from suho_mt5.cache import acl
    from tests.integration.ingest._support import nats_server

    repeats = max(3, min(settings.repeats, 5))
    rows: list[Row] = []
    with _timescale() as server, nats_server() as nats, _redis() as redis_server:
        admin, ingest_url = _database(server)
        accounts = _accounts(admin, 30)
        app_url = _app_login(admin)
        writer_url = asyncio.run(acl.grant_writer(redis_server.admin_url)).url
        tenants = sorted(set(accounts.values()))
        passwords = {t: asyncio.run(acl.grant_tenant(redis_server.admin_url, t)).password
                     for t in tenants}

        # 1. Reads: the cache filled by a rebuild from the same rows the database holds.
        quotes = _fill_quotes(admin, accounts, 2_000)
        from suho_mt5.commands import cache as commands

        commands.rebuild(admin, writer_url)
        keys = [(t, a, s) for a, t in accounts.items() for s in _SYMBOLS]
        rounds = 2_000 * repeats
        cached, database = asyncio.run(_read_latencies(redis_server.url(), passwords, app_url,
                                                       keys, rounds))
        c50, c99, d50, d99 = (_pct(cached, 0.5), _pct(cached, 0.99), _pct(database, 0.5),
                              _pct(database, 0.99))
        rows += [
            Row("latest quote from the cache, p50", None, "ms", None, "",
                "CacheReader.latest_quote as the tenant's ACL user (HGET)", measured=c50),
            Row("latest quote from the cache, p99", None, "ms", None, "", "", measured=c99),
            Row("latest quote from the database, p50", None, "ms", None, "",
                f"the read API's fallback: mt5_tenant view, tenant login ({quotes:,} quotes "
                "in the last 4 minutes, 30 accounts x 4 symbols)", measured=d50),
            Row("latest quote from the database, p99", None, "ms", None, "", "",
                measured=d99),
            Row("database p50 / cache p50", None, "x", None, "",
                f"{rounds:,} reads of each, alternated; p99 ratio {d99 / c99:.1f}x",
                measured=d50 / c50),
        ]

        # 2. The bridge with the cache writer on and off, alternated run by run.
        for case, (label, total, frame, batch, mix) in enumerate((
                ("bridge end to end, frames of 100 packets (a fifth trade orders)", 50_000,
                 100, 50, ("quote", "quote", "snapshot", "heartbeat", "order")),
                ("the same without trade orders (quotes, snapshots, heartbeats)", 50_000, 100,
                 50, ("quote", "quote", "snapshot", "heartbeat")),
                ("bridge end to end, 1 packet per message", 20_000, 1, 1_000, ("quote",)))):
            ratios, on_rates, off_rates, values = [], [], [], 0
            pairs = max(repeats, 6)
            for r in range(pairs):
                # fresh packets every run, each newer than the last (so the cache takes them)
                base = (case * pairs + r + 1) * 1_000_000_000
                times: dict[bool, float] = {}
                # which side runs first alternates: neither always gets the warmer server
                for on in ((False, True) if r % 2 == 0 else (True, False)):
                    frames = _feed_frames(accounts, total, frame,
                                          base + (500_000_000 if on else 0), mix)
                    times[on], written = asyncio.run(_bridge_run(
                        ingest_url, nats.url, frames, batch, writer_url if on else None))
                    values = written if on else values
                ratios.append(times[False] / times[True])
                on_rates.append(total / times[True])
                off_rates.append(total / times[False])
            on_median, off_median = statistics.median(on_rates), statistics.median(off_rates)
            rows.append(Row(label, None, "x cache off", 0.9, ">= 0.90",
                            f"on {on_median:,.0f}, off {off_median:,.0f} packets/s (ratio of "
                            f"the medians {on_median / off_median:.2f}, pairs from "
                            f"{min(ratios):.2f} to {max(ratios):.2f}); {values} values written "
                            "per run", measured=statistics.median(ratios)))
            if case == 1:
                per_row = _hook_seconds_per_row(accounts, settings)
                rows.append(Row(
                    "the writer's work in the bridge per committed row", None, "µs", None, "",
                    "after_commit on 50,000 rows (quotes, snapshots, heartbeats): the "
                    "reduction to the newest value per key; at the off rate above that is "
                    f"{per_row * off_median:.1%} of one core", measured=per_row * 1e6))
    return Section(
        _TITLE,
        "Reads: one call at a time through the read API, the cache (the tenant's ACL user, "
        "one `HGET`) and the database (the same API with no cache: the `mt5_tenant` view "
        "as a tenant login, tenant and search path set in the transaction, the newest row of "
        "the account and symbol by the `(tenant_id, account_id, time)` index) alternated "
        "call by call, so that both see the same load; latencies include the asyncio client "
        "on both sides. Writes: the Data Bridge (2 workers) on the same server, with "
        "`ingest run --cache-url`'s writer and without it, alternated run by run; the ratio "
        "is time without / time with, per pair, median (1.00: no cost).",
        rows,
        extra_markdown=(
            "The writer costs the bridge its in-memory reduction of each committed batch to "
            "the newest value per key (a dictionary pass over the rows) and one pipelined "
            "round trip per flush, in a task of its own; it never waits for the cache in the "
            "batch's path. The machine is shared (2 cores for PostgreSQL, nats-server, "
            "redis-server and the bridge), so single figures move by tens of percent between "
            "runs; the ratios, taken pairwise, move less."
        ),
    )
