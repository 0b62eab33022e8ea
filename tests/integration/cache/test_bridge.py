"""The Data Bridge with the cache: what it committed is what the cache holds, key by key;
the cache killed mid-ingest neither loses nor stalls anything; a rebuild restores it; a
redelivered older batch never overwrites a newer value."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis

from suho_mt5._subjects import account_subject
from suho_mt5.cache import CacheTTLs, CacheWriter, acl
from suho_mt5.cache.metrics import CacheMetrics
from suho_mt5.commands import cache as commands
from suho_mt5.ingest.metrics import BridgeMetrics
from suho_mt5.ingest.reconcile import ReferenceQuote, encode_reference
from tests.integration.cache._support import cached, differences, expected, kinds
from tests.integration.cache.conftest import CacheDb
from tests.integration.ingest._support import (
    BASE_TIME,
    Feed,
    assert_exactly_once,
    frames_for,
    jetstream,
    make_ingest_login,
    publish_all,
    quick_settings,
    running_bridge,
    wait_until_drained,
)
from tests.support.servers import NatsServer, RedisServer

#: The test data is dated 2026-11-30: values live long enough to be compared.
LONG = CacheTTLs.uniform(timedelta(days=3650))
SINCE = BASE_TIME - timedelta(days=1)
TABLES = ("mt5_broker_quotes", "mt5_account_balance_history", "mt5_ea_heartbeat",
          "mt5_trade_orders")


async def _references(js: Any, bridge_metrics: BridgeMetrics, seconds: int = 12) -> None:
    """Reference quotes of EURUSD every half second over the packets' times, received by
    the bridge before the first packet (so its quotes are reconciled)."""
    sample = bridge_metrics.registry.get_sample_value
    warm = encode_reference(ReferenceQuote("EURUSD", BASE_TIME - timedelta(hours=1),
                                           Decimal("1.09"), Decimal("1.0902")))
    for _ in range(200):  # until the bridge's market feed is subscribed
        await js.publish("mt5.market.EURUSD", warm)
        await asyncio.sleep(0.05)
        if sample("suho_ingest_reference_quotes_total"):
            break
    n = int(sample("suho_ingest_reference_quotes_total") or 0)
    for half in range(seconds * 2):
        mid = Decimal("1.0950") + Decimal(half) / 10_000
        await js.publish("mt5.market.EURUSD", encode_reference(ReferenceQuote(
            "EURUSD", BASE_TIME + timedelta(milliseconds=500 * half), mid, mid + Decimal(
                "0.0002"))))
        n += 1
    for _ in range(200):
        if (sample("suho_ingest_reference_quotes_total") or 0) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the bridge did not receive the reference quotes")


def _redeliveries(frames: list[tuple[str, bytes, str]], every: int
                  ) -> list[tuple[str, bytes, str]]:
    """Every ``every``-th frame again under a new message id: the same packets delivered
    twice (duplicates for the database, older values for the cache by the time they come)."""
    return [(s, p, f"{m}:again") for s, p, m in frames[::every]]


def _writer(url: str, metrics: BridgeMetrics, settings: Any, **over: Any) -> CacheWriter:
    """The bridge's cache writer (``settings.cache``), its metrics in ``metrics``' registry."""
    writer = CacheWriter(url, ttls=LONG, mapper=settings.reconciler.mapper,
                         metrics=CacheMetrics(metrics.registry), **over)
    settings.cache = writer
    return writer


def test_the_cache_holds_what_the_bridge_committed_and_catches_up_after_a_hang(
        cache_db: CacheDb, nats: NatsServer, make_redis_server: Any) -> None:
    """50,000 packets of 3 tenants x 2 accounts (quotes, snapshots, heartbeats, trade
    orders), one frame in seven delivered twice, through the bridge with its cache.
    redis-server is stopped (SIGSTOP: it answers nothing) for the second half of the run:
    the bridge commits everything meanwhile, its cache round trips time out and are
    counted, and when the server answers again the writer catches up: the cache equals the
    database key by key, without a rebuild (the server kept its data)."""
    db = cache_db.db
    db.add_accounts(2)
    frames, published = frames_for(Feed(db.accounts), 50_000, 100)
    again = _redeliveries(frames, 7)
    server: RedisServer = make_redis_server()
    writer_url = asyncio.run(acl.grant_writer(server.admin_url)).url
    metrics = BridgeMetrics()

    async def scenario() -> CacheWriter:
        async with jetstream(nats.url) as (_nc, js):
            settings = quick_settings(db, nats.url, workers=2, batch_size=50)
            writer = _writer(writer_url, metrics, settings, timeout=0.2, retry_max=0.3)
            async with running_bridge(settings, metrics):
                await _references(js, metrics)
                await publish_all(js, frames[: len(frames) // 2])
                await wait_until_drained(js, db, published.rows // 3)
                server.pause()
                try:
                    await publish_all(js, frames[len(frames) // 2 :] + again)
                    await wait_until_drained(js, db, published.rows)
                    assert writer.errors > 0 and writer.pending() > 0
                finally:
                    server.resume()
                assert await writer.flush(timeout=30)  # caught up, while running
            await writer.close()
            return writer

    writer = asyncio.run(scenario())
    assert_exactly_once(db, published)
    want, got = expected(db.admin_url, SINCE), cached(server.admin_url)
    diff = differences(want, got)
    assert not diff, "\n".join(diff[:20])
    assert set(kinds(got)) == {"quote", "snapshot", "status", "ref"}
    sample = metrics.registry.get_sample_value
    assert sample("suho_cache_write_errors_total", {"reason": "timeout"}) == writer.errors > 0
    assert sample("suho_cache_found_empty_total") == 1  # at the start only: no data lost


@pytest.mark.parametrize("db_lane", [pytest.param("timescaledb", marks=pytest.mark.timescale)],
                         indirect=True)
def test_50k_packets_cache_killed_mid_ingest_rebuilt_then_batches_redelivered(
        cache_db: CacheDb, nats: NatsServer, make_redis_server: Any) -> None:
    """The acceptance run, on native TimescaleDB: 3 tenants x 4 accounts, 60,000 packets in
    frames of 100 (quotes, snapshots, heartbeats, trade orders) in a shuffled order (frames
    of one account and kind arrive out of order too). The cache is SIGKILLed after the first
    half: the bridge's throughput before and during the outage is printed (both halves are
    alike), its failed round trips counted. After the run a restarted, empty cache rebuilt
    from the database equals it key by key. Then one frame in ten is delivered again (older
    batches, under new message ids): duplicates for the database, nothing for the cache."""
    db = cache_db.db
    db.ingest_url = make_ingest_login(db.admin_url, bypassrls=True)
    db.add_accounts(4)
    frames, published = frames_for(Feed(db.accounts), 60_000, 100)
    random.Random(21).shuffle(frames)
    half = len(frames) // 2
    first, second = frames[:half], frames[half:]
    server: RedisServer = make_redis_server()
    writer_url = asyncio.run(acl.grant_writer(server.admin_url)).url
    metrics = BridgeMetrics()
    rates: dict[str, float] = {}
    halfway: list[str] = []  # the cache against the database after the first half

    async def drain(js: Any, part: list[tuple[str, bytes, str]], rows: int, name: str) -> None:
        started = time.perf_counter()
        await publish_all(js, part)
        await wait_until_drained(js, db, rows, timeout=300)
        rates[name] = sum(len(p) // 144 for _, p, _ in part) / (time.perf_counter() - started)

    async def ingest() -> CacheWriter:
        async with jetstream(nats.url) as (_nc, js):
            settings = quick_settings(db, nats.url, workers=2, batch_size=200)
            writer = _writer(writer_url, metrics, settings, timeout=0.2, retry_max=1.0)
            async with running_bridge(settings, metrics):
                await _references(js, metrics)
                await drain(js, first, sum(len(p) // 144 for _, p, _ in first), "cache up")
                assert await writer.flush(timeout=30)
                halfway.extend(differences(expected(db.admin_url, SINCE),
                                           cached(server.admin_url)))
                await asyncio.to_thread(server.kill)
                await drain(js, second, published.rows, "cache killed")
            await writer.close(drain_timeout=1)  # the cache is still down: values lost
            return writer

    writer = asyncio.run(ingest())
    assert_exactly_once(db, published)
    assert not halfway, "\n".join(halfway[:20])
    print(f"\nbridge throughput: {rates['cache up']:.0f} packets/s with the cache, "
          f"{rates['cache killed']:.0f} packets/s after it was SIGKILLed "
          f"({rates['cache killed'] / rates['cache up']:.2f}x); {writer.errors} failed round "
          f"trips counted")
    errors = sum(metrics.registry.get_sample_value("suho_cache_write_errors_total",
                                                   {"reason": r}) or 0
                 for r in ("timeout", "unavailable", "error", "refused"))
    assert errors == writer.errors > 0

    server.restart()  # empty: no persistence
    want = expected(db.admin_url, SINCE)
    assert len(differences(want, cached(server.admin_url))) == len(want)
    report = commands.rebuild(cache_db.maintenance_url, server.admin_url, ttls=LONG)
    assert report.values == len(want) and report.written == len(want)
    got = cached(server.admin_url)
    diff = differences(want, got)
    assert not diff, "\n".join(diff[:20])
    assert kinds(got) == {"quote": 12, "snapshot": 12, "status": 12, "ref": 3}
    print(f"rebuilt {report.values} values in {report.seconds:.2f} s")

    # Older batches come again: one frame in ten, and each account's first quote frame,
    # under new message ids. The database counts duplicates; the cache keeps what it has.
    account, tenant = next(iter(db.accounts.items()))
    oldest = min((f for f in frames if f[0] == account_subject(tenant, account, "quote")),
                 key=lambda f: int(f[2].split(":")[1]))
    again = [*_redeliveries(frames, 10), (oldest[0], oldest[1], f"{oldest[2]}:oldest")]

    async def redeliver() -> CacheWriter:
        async with jetstream(nats.url) as (_nc, js):
            settings = quick_settings(db, nats.url, workers=2)
            late_metrics = BridgeMetrics()
            writer = _writer(writer_url, late_metrics, settings)
            async with running_bridge(settings, late_metrics):
                await publish_all(js, again)
                await wait_until_drained(js, db, published.rows)
                assert await writer.flush()
            await writer.close()
            duplicates = sum(late_metrics.registry.get_sample_value(
                "suho_ingest_duplicate_rows_total", {"table": t}) or 0 for t in TABLES)
            assert duplicates == sum(len(p) // 144 for _, p, _ in again)
            return writer

    late = asyncio.run(redeliver())
    assert late.totals.older >= 1 and late.totals.written == 0
    assert_exactly_once(db, published)
    diff = differences(want, cached(server.admin_url))
    assert not diff, "\n".join(diff[:20])
    client = redis.Redis.from_url(server.admin_url)
    assert client.get("suho:meta:epoch") is not None and client.hget(
        "suho:meta:rebuilt", "tenant") == b"*"
    client.close()
