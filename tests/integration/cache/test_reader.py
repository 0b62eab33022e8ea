"""The read API: the cache first, the database on a miss (through the tenant views, as a
tenant login), never a value older than its TTL, never another tenant's."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis

from suho_mt5.cache import CacheReader, CacheTTLs, CacheWriter, acl
from suho_mt5.cache.metrics import CacheMetrics
from suho_mt5.errors import CacheUnavailableError
from suho_mt5.ingest.writer import Batch, WriteResult
from tests.integration.cache.conftest import CacheDb
from tests.support.servers import RedisServer, free_port

D = Decimal


def _fill(cache_db: CacheDb, now: datetime) -> dict[str, uuid.UUID]:
    """An account of acme and one of initech, with rows of every kind in the database."""
    acme, initech = (cache_db.db.add_accounts(1, tenants=(t,))[0] for t in ("acme", "initech"))
    old = now - timedelta(hours=2)
    with cache_db.db.connect() as conn:
        for acc, tenant in ((acme, "acme"), (initech, "initech")):
            for t, seq, bid in ((old, 1, "1.0"), (now - timedelta(seconds=30), 2, "1.1"),
                                (now - timedelta(seconds=30), 3, "1.2")):
                conn.execute(
                    "INSERT INTO mt5_broker_quotes (time, tenant_id, account_id, symbol, bid,"
                    " ask, last, volume, spread_points, polygon_bid, polygon_ask,"
                    " price_deviation, sequence) VALUES (%s, %s, %s, 'EURUSD.m', %s, %s, 0, 0,"
                    " 2, 1.05, 1.0502, 3.5, %s)", (t, tenant, acc, D(bid), D(bid) + D("0.0002"),
                                                    seq))
            conn.execute(
                "INSERT INTO mt5_account_balance_history (time, tenant_id, account_id, balance,"
                " equity, margin, free_margin, margin_level, leverage, currency, sequence)"
                " VALUES (%s, %s, %s, 1000, 990, 10, 980, 9900, 100, 'USD', 4)",
                (now - timedelta(minutes=1), tenant, acc))
            conn.execute(
                "INSERT INTO mt5_ea_heartbeat (time, tenant_id, account_id, status, ea_version,"
                " terminal_build, terminal_connected, trade_allowed, ping_ms, sequence) VALUES"
                " (%s, %s, %s, 'degraded', '2.0', 4410, true, false, 40, 5)",
                (now - timedelta(minutes=1), tenant, acc))
            for minutes, status in ((3, "sent"), (2, "pending")):
                conn.execute(
                    "INSERT INTO mt5_trading_signals (time, signal_id, tenant_id, account_id,"
                    " symbol, action, volume, status) VALUES (%s, %s, %s, %s, 'EURUSD', 'BUY',"
                    " 0.1, %s)", (now - timedelta(minutes=minutes), uuid.uuid4(), tenant, acc,
                                  status))
    return {"acme": acme, "initech": initech}


def test_a_miss_is_answered_by_the_database_as_the_tenant(cache_db: CacheDb,
                                                          redis_cache: RedisServer) -> None:
    now = datetime.now(UTC)
    accounts = _fill(cache_db, now)
    grant = asyncio.run(acl.grant_tenant(redis_cache.admin_url, "acme"))
    metrics = CacheMetrics()

    async def read() -> dict[str, Any]:
        async with CacheReader(redis_cache.url(), credentials={"acme": grant.password},
                               database_url=cache_db.app_url, metrics=metrics) as reader:
            acme = accounts["acme"]
            return {
                "quote": await reader.latest_quote("acme", acme, "EURUSD.m"),
                "snapshot": await reader.latest_snapshot("acme", acme),
                "status": await reader.ea_status("acme", acme),
                "reference": await reader.market_reference("acme", "EURUSD"),
                "signals": await reader.recent_signals("acme", acme),
                # another tenant's account, asked as acme: its rows exist, acme sees none
                "foreign": await reader.latest_quote("acme", accounts["initech"], "EURUSD.m"),
                "foreign_signals": await reader.recent_signals("acme", accounts["initech"]),
            }

    got = asyncio.run(read())
    quote = got["quote"]
    assert quote.source == "database" and (quote.sequence, quote.bid) == (3, D("1.2"))
    assert quote.price_deviation == D("3.5")
    assert (got["snapshot"].equity, got["snapshot"].currency) == (D("990"), "USD")
    assert (got["status"].status, got["status"].trade_allowed) == ("degraded", False)
    assert got["reference"].source == "database" and got["reference"].bid == D("1.05")
    assert [s.status for s in got["signals"]] == ["pending", "sent"]
    assert got["foreign"] is None and got["foreign_signals"] == []
    sample = metrics.registry.get_sample_value
    assert sample("suho_cache_reads_total", {"kind": "quote", "result": "miss"}) == 2
    assert sample("suho_cache_database_fallbacks_total", {"kind": "quote", "found": "yes"}) == 1


def test_nothing_older_than_its_ttl_comes_back_from_either_side(
        cache_db: CacheDb, redis_cache: RedisServer) -> None:
    now = datetime.now(UTC)
    accounts = _fill(cache_db, now)
    grant = asyncio.run(acl.grant_tenant(redis_cache.admin_url, "acme"))
    short = CacheTTLs(quote=timedelta(seconds=10), snapshot=timedelta(seconds=10))

    async def read() -> list[Any]:
        async with CacheReader(grant.url, database_url=cache_db.app_url,
                               ttls=short) as reader:
            return [await reader.latest_quote("acme", accounts["acme"], "EURUSD.m"),
                    await reader.latest_snapshot("acme", accounts["acme"])]

    assert asyncio.run(read()) == [None, None]


def test_a_cache_that_does_not_answer_sends_reads_to_the_database(
        cache_db: CacheDb, make_redis_server: Any) -> None:
    now = datetime.now(UTC)
    acme = _fill(cache_db, now)["acme"]
    server: RedisServer = make_redis_server()
    grant = asyncio.run(acl.grant_tenant(server.admin_url, "acme"))
    writer_url = asyncio.run(acl.grant_writer(server.admin_url)).url
    batch = Batch()
    batch.add("mt5_broker_quotes", (now, "acme", acme, "EURUSD.m", D("1.5"), D("1.5002"),
                                    D(0), D(0), 2, None, None, None, 9), None)

    async def scenario() -> list[Any]:
        writer = CacheWriter(writer_url)
        writer.after_commit(batch, WriteResult(), lambda a: None)
        assert await writer.flush()
        await writer.close()
        async with CacheReader(grant.url, database_url=cache_db.app_url,
                               timeout=0.2) as reader:
            hit = await reader.latest_quote("acme", acme, "EURUSD.m")
            await asyncio.to_thread(server.kill)
            fallback = await reader.latest_quote("acme", acme, "EURUSD.m")
            skipped = await reader.latest_quote("acme", acme, "EURUSD.m")  # breaker open
        async with CacheReader(grant.url, timeout=0.2) as alone:
            with pytest.raises(CacheUnavailableError):
                await alone.latest_quote("acme", acme, "EURUSD.m")
        return [hit, fallback, skipped]

    hit, fallback, skipped = asyncio.run(scenario())
    assert (hit.source, hit.bid) == ("cache", D("1.5"))
    assert (fallback.source, fallback.bid) == ("database", D("1.2"))
    assert skipped.source == "database"


def test_without_a_cache_every_read_goes_to_the_database(cache_db: CacheDb) -> None:
    acme = _fill(cache_db, datetime.now(UTC))["acme"]

    async def read() -> Any:
        async with CacheReader(None, database_url=cache_db.app_url) as reader:
            return await reader.latest_snapshot("acme", acme)

    assert asyncio.run(read()).source == "database"


def test_a_reader_with_another_tenants_user_is_refused(redis_cache: RedisServer) -> None:
    grant = asyncio.run(acl.grant_tenant(redis_cache.admin_url, "acme"))
    admin = redis.Redis.from_url(redis_cache.admin_url)
    admin.hset("suho:{initech}:snapshot:" + str(uuid.UUID(int=1)), "v", "{}")
    admin.close()

    async def read() -> None:
        async with CacheReader(grant.url) as reader:
            await reader.latest_snapshot("initech", uuid.UUID(int=1))

    from suho_mt5.errors import CachePermissionError

    with pytest.raises(CachePermissionError, match="no permissions"):
        asyncio.run(read())
    assert free_port() > 0
