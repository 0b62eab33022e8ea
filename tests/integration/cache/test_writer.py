"""The cache writer on a real redis-server: newer wins, values live by their packet time,
an outage loses nothing that was committed, a slow cache costs a counter, signals move only
forward."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis

from suho_mt5.cache import CacheReader, CacheTTLs, CacheWriter, Quote, acl
from suho_mt5.cache._keys import quote_key, signal_index_key, signals_key, status_key
from suho_mt5.cache._values import to_us
from suho_mt5.cache.metrics import CacheMetrics
from suho_mt5.ingest.writer import Batch, WriteResult
from tests.support.servers import RedisServer

A = uuid.UUID(int=0xA)
LONG = CacheTTLs.uniform(timedelta(days=3650))


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def quotes(t0: datetime, seqs: range, acc: uuid.UUID = A, tenant: str = "acme",
           symbol: str = "EURUSD") -> Batch:
    d = Decimal
    batch = Batch()
    for s in seqs:
        batch.add("mt5_broker_quotes",
                  (t0 + timedelta(milliseconds=s), tenant, acc, symbol, d(s) / 100 + 1,
                   d(s) / 100 + d("1.0002"), d(0), d(0), 2, None, None, None, s), None)
    return batch


def commit(writer: CacheWriter, batch: Batch, result: WriteResult | None = None) -> None:
    writer.after_commit(batch, result or WriteResult(), lambda a: "Broker")


@pytest.fixture
def writer_url(redis_cache: RedisServer) -> str:
    return asyncio.run(acl.grant_writer(redis_cache.admin_url)).url


@pytest.fixture
def admin(redis_cache: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_cache.admin_url, decode_responses=True)
    yield client
    client.close()


def cached_quote(admin: redis.Redis, acc: uuid.UUID = A, symbol: str = "EURUSD") -> Quote:
    return Quote.from_json(admin.hget(quote_key("acme", acc, symbol), "v"))


def test_a_redelivered_older_batch_never_overwrites_a_newer_value(writer_url: str,
                                                                  admin: redis.Redis) -> None:
    t0 = now()
    newer, older = quotes(t0, range(500, 1000)), quotes(t0, range(1, 500))
    metrics = CacheMetrics()

    async def go() -> CacheWriter:
        writer = CacheWriter(writer_url, ttls=LONG, metrics=metrics)
        commit(writer, newer)
        assert await writer.flush()
        commit(writer, older)  # the redelivery of a batch the cache already went past
        commit(writer, quotes(t0, range(999, 1000)))  # the same value again: not newer
        assert await writer.flush()
        await writer.close()
        return writer

    writer = asyncio.run(go())
    assert cached_quote(admin).sequence == 999
    assert writer.totals.written == 1 and writer.totals.older == 1
    sample = metrics.registry.get_sample_value
    assert sample("suho_cache_values_older_total") == 1
    assert sample("suho_cache_values_written_total") == 1


def test_a_value_lives_until_its_packet_time_plus_its_ttl(writer_url: str,
                                                          admin: redis.Redis) -> None:
    ttls = CacheTTLs(quote=timedelta(minutes=5))
    fresh, stale = now(), now() - timedelta(minutes=6)

    async def go() -> CacheWriter:
        writer = CacheWriter(writer_url, ttls=ttls)
        commit(writer, quotes(fresh, range(1, 2)))
        commit(writer, quotes(stale, range(1, 2), symbol="XAUUSD"))
        assert await writer.flush()
        await writer.close()
        return writer

    writer = asyncio.run(go())
    key = quote_key("acme", A, "EURUSD")
    expected = to_us(fresh + timedelta(milliseconds=1)) // 1000 + 300_000
    assert admin.execute_command("PEXPIRETIME", key) == expected
    assert not admin.exists(quote_key("acme", A, "XAUUSD"))  # gone, not served
    assert writer.totals.expired == 1


def test_an_outage_loses_nothing_committed_meanwhile(make_redis_server: Callable[[], Any]
                                                     ) -> None:
    server: RedisServer = make_redis_server()
    url = asyncio.run(acl.grant_writer(server.admin_url)).url
    metrics = CacheMetrics()
    t0 = now()

    async def go() -> CacheWriter:
        writer = CacheWriter(url, ttls=LONG, timeout=0.2, retry_max=0.3, metrics=metrics)
        commit(writer, quotes(t0, range(1, 10)))
        assert await writer.flush()
        server.kill()
        for k in range(10, 100, 10):  # batches committed while the cache is down
            commit(writer, quotes(t0, range(k, k + 10)))
            commit(writer, quotes(t0, range(k, k + 10), acc=uuid.UUID(int=1000 + k)))
            await asyncio.sleep(0.05)
        assert not await writer.flush(timeout=1.0)
        assert writer.pending() == 10  # the newest value of each of the ten keys
        server.restart()  # empty; not in a thread: the server dies with its starter
        assert await writer.flush(timeout=10)
        await writer.close()
        return writer

    writer = asyncio.run(go())
    admin = redis.Redis.from_url(server.admin_url, decode_responses=True)
    assert cached_quote(admin).sequence == 99
    for k in range(10, 100, 10):
        assert cached_quote(admin, uuid.UUID(int=1000 + k)).sequence == k + 9
    assert admin.get("suho:meta:epoch") is not None  # set again by the writer
    admin.close()
    assert writer.errors > 0 and writer.totals.found_empty
    sample = metrics.registry.get_sample_value
    assert sum(sample("suho_cache_write_errors_total", {"reason": r}) or 0
               for r in ("timeout", "unavailable", "error", "refused")) == writer.errors
    assert sample("suho_cache_found_empty_total") == 2  # at the start, and after the restart
    assert sample("suho_cache_pending_values") == 0


def test_a_slow_cache_times_out_and_is_written_later(writer_url: str, admin: redis.Redis,
                                                     redis_cache: RedisServer) -> None:
    """DEBUG SLEEP holds redis-server for 1.5 s: the writer's round trip times out (0.2 s),
    the hook calls keep returning at once, and the value arrives once the server is back."""
    t0 = now()

    def stall() -> None:
        client = redis.Redis.from_url(redis_cache.admin_url)
        client.execute_command("DEBUG", "SLEEP", "1.5")
        client.close()

    async def go() -> tuple[CacheWriter, float]:
        writer = CacheWriter(writer_url, ttls=LONG, timeout=0.2, retry_max=0.2)
        commit(writer, quotes(t0, range(1, 2)))
        assert await writer.flush()
        sleeper = threading.Thread(target=stall)
        sleeper.start()
        await asyncio.sleep(0.1)
        longest = 0.0
        for k in range(2, 12):
            started = time.perf_counter()
            commit(writer, quotes(t0, range(k, k + 1)))
            longest = max(longest, time.perf_counter() - started)
            await asyncio.sleep(0.05)
        await asyncio.to_thread(sleeper.join)
        assert await writer.flush(timeout=10)
        await writer.close()
        return writer, longest

    writer, longest = asyncio.run(go())
    assert writer.errors >= 1 and "Timeout" in writer.last_error
    assert cached_quote(admin).sequence == 11
    print(f"longest hook call while the cache slept: {longest * 1000:.2f} ms")


def test_signals_move_only_forward_whatever_the_order_of_events(
        writer_url: str, redis_cache: RedisServer) -> None:
    t0 = now()
    grant = asyncio.run(acl.grant_tenant(redis_cache.admin_url, "acme"))
    s1, s2, s3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    details = {"symbol": "EURUSD", "action": "BUY", "volume": Decimal("0.10")}

    async def go() -> list[Any]:
        writer = CacheWriter(writer_url, ttls=LONG, signal_limit=2)
        # s1: published, sent, executed (ticket 77), then its trade closes
        writer.signal_changed("acme", A, s1, t0, "pending", details)
        writer.signal_changed("acme", A, s1, t0, "sent", details)
        ex = Batch()
        ex.add("mt5_signal_executions", (t0 + timedelta(seconds=1), "acme", A, s1, 77,
                                         Decimal("1.1"), Decimal(0), 10009, 1), None)
        commit(writer, ex)
        assert await writer.flush()
        # the "pending" of a slow publisher comes late: it does not move s1 back
        writer.signal_changed("acme", A, s1, t0, "pending", details)
        closed = Batch()
        closed.add("mt5_trade_orders", (t0 + timedelta(seconds=5), "acme", A, 90, 77, "EURUSD",
                                        "buy", "buy", Decimal("0.1"), Decimal("1.2"), None,
                                        None, Decimal(5), Decimal(0), Decimal(0), 0, "closed",
                                        2), None)
        commit(writer, closed)
        # s2: its trade's close arrives before its execution report (ticket 88)
        writer.signal_changed("acme", A, s2, t0 + timedelta(seconds=2), "sent", details)
        early = Batch()
        early.add("mt5_trade_orders", (t0 + timedelta(seconds=6), "acme", A, 88, None,
                                       "EURUSD", "buy", "buy", Decimal("0.1"), Decimal("1.2"),
                                       None, None, Decimal(5), Decimal(0), Decimal(0), 0,
                                       "closed", 3), None)
        commit(writer, early)
        assert await writer.flush()
        late = Batch()
        late.add("mt5_signal_executions", (t0 + timedelta(seconds=3), "acme", A, s2, 88,
                                           Decimal("1.1"), Decimal(0), 10006, 4), None)
        commit(writer, late)
        # s3, the newest: the limit of two keeps s2 and s3
        writer.signal_changed("acme", A, s3, t0 + timedelta(seconds=9), "sent", details)
        assert await writer.flush()
        await writer.close()
        async with CacheReader(grant.url) as reader:
            return await reader.recent_signals("acme", A)

    got = asyncio.run(go())
    assert [s.signal_id for s in got] == [s3, s2]
    newest, second = got
    assert (newest.status, newest.closed) == ("sent", False)
    assert (second.status, second.state, second.ticket) == ("rejected", "closed", 88)
    assert second.closed_at == t0 + timedelta(seconds=6)
    assert second.executed_at == t0 + timedelta(seconds=3)
    admin = redis.Redis.from_url(redis_cache.admin_url, decode_responses=True)
    fields = admin.hgetall(signals_key("acme", A))
    assert not any(str(s1) in f or str(s1) == v for f, v in fields.items())  # trimmed
    assert admin.zrange(signal_index_key("acme", A), 0, -1) == [str(s2), str(s3)]
    admin.close()


def test_an_ea_status_has_its_heartbeat_and_the_gateway_serving_it(
        writer_url: str, redis_cache: RedisServer) -> None:
    t0 = now()
    grant = asyncio.run(acl.grant_tenant(redis_cache.admin_url, "acme"))

    async def go() -> list[Any]:
        writer = CacheWriter(writer_url, ttls=LONG, name="gw-1")
        writer.session_changed("acme", A, True, at=t0)
        assert await writer.flush()
        async with CacheReader(grant.url) as reader:
            before = await reader.ea_status("acme", A)
            hb = Batch()
            hb.add("mt5_ea_heartbeat", (t0 + timedelta(seconds=1), "acme", A, "online",
                                        "1.2", 4410, True, True, 9, 5), None)
            commit(writer, hb)
            writer.offline_marked([("acme", A, t0)])  # older than the heartbeat: ignored
            assert await writer.flush()
            after = await reader.ea_status("acme", A)
            writer.session_changed("acme", A, False, at=t0 + timedelta(seconds=2))
            writer.offline_marked([("acme", A, t0 + timedelta(seconds=3))])
            assert await writer.flush()
            gone = await reader.ea_status("acme", A)
        await writer.close()
        return [before, after, gone]

    before, after, gone = asyncio.run(go())
    assert (before.status, before.gateway) == (None, "gw-1")
    assert (after.status, after.sequence, after.ping_ms, after.gateway) == (
        "online", 5, 9, "gw-1")
    assert (gone.status, gone.sequence, gone.gateway) == ("offline", None, None)
    admin = redis.Redis.from_url(redis_cache.admin_url, decode_responses=True)
    assert admin.pttl(status_key("acme", A)) > 0
    admin.close()
