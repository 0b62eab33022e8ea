"""Signals through the cache: ``publish_signal`` reads the broker's current offset from the
cache and tells it the signal's status; the bridge tells it executions and closes; the last
signals the cache shows equal what the database says, whatever the order of events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from suho_mt5._subjects import account_subject, message_id
from suho_mt5.cache import CacheReader, CacheTTLs, CacheWriter, acl
from suho_mt5.commands.signal import publish_signal
from suho_mt5.ingest.writer import Batch, WriteResult
from suho_mt5.protocol import (
    ExecutionReportPacket,
    OrderEventPacket,
    WireDealType,
    WireOrderState,
    WireOrderType,
    encode,
)
from tests.integration.cache.conftest import CacheDb
from tests.integration.ingest._support import jetstream, libpq, quick_settings, running_bridge
from tests.support.servers import NatsServer, RedisServer

D = Decimal


def _us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def test_signals_seen_through_the_cache_equal_the_database(cache_db: CacheDb, nats: NatsServer,
                                                           redis_cache: RedisServer) -> None:
    db = cache_db.db
    (acc,) = db.add_accounts(1, tenants=("acme",))
    now = datetime.now(UTC).replace(microsecond=0)
    writer_url = asyncio.run(acl.grant_writer(redis_cache.admin_url)).url
    grant = asyncio.run(acl.grant_tenant(redis_cache.admin_url, "acme"))
    ttls = CacheTTLs()
    # The broker quotes 3 pips above the reference right now (a reconciled quote, cached).
    live = Batch()
    live.add("mt5_broker_quotes", (now - timedelta(seconds=2), "acme", acc, "EURUSD.m",
                                   D("1.09560"), D("1.09580"), D(0), D(0), 2, D("1.09530"),
                                   D("1.09550"), D("3"), 1), None)

    async def scenario() -> list[Any]:
        writer = CacheWriter(writer_url, ttls=ttls,
                             mapper=quick_settings(db, nats.url).reconciler.mapper)
        writer.after_commit(live, WriteResult(), lambda a: "Broker")
        assert await writer.flush()
        reader = CacheReader(grant.url, database_url=cache_db.app_url, ttls=ttls)
        sent = []
        async with jetstream(nats.url) as (_nc, js), \
                await psycopg.AsyncConnection.connect(libpq(db.ingest_url)) as conn:
            for k, action in enumerate(("BUY", "BUY", "BUY")):
                sent.append(await publish_signal(
                    conn, js, tenant_id="acme", account_id=acc, symbol="EURUSD.m",
                    action=action, volume=D("0.10"), entry_price=D("1.09530"),
                    stop_loss=D("1.09320"), adjust_to_broker=True, references=reader,
                    listener=writer, time=now + timedelta(seconds=k)))
            s1, s2, _s3 = (s.signal_id for s in sent)
            t = _us(now)
            close1 = OrderEventPacket(1, t + 9_000_000, acc.bytes, 501, 500, "EURUSD.m",
                                      10_000_000, 109_600_000, 0, 0, 7_0000, 0, 0, 42,
                                      WireOrderType.SELL, WireDealType.SELL,
                                      WireOrderState.CLOSED)
            exec1 = ExecutionReportPacket(2, t + 5_000_000, acc.bytes, s1.bytes, 500,
                                          109_535_000, 5_000, 10009)
            exec2 = ExecutionReportPacket(3, t + 6_000_000, acc.bytes, s2.bytes, 0, 0, 0,
                                          10006)
            async with running_bridge(quick_settings(db, nats.url, cache=writer)):
                # s1's trade closes before its execution report arrives (another batch)
                for kind, packet in (("order", close1), ("execution", exec1),
                                     ("execution", exec2)):
                    await js.publish(account_subject("acme", acc, kind), encode(packet),
                                     headers={"Nats-Msg-Id": message_id(acc, packet.sequence)})
                    for _ in range(200):
                        table = "mt5_trade_orders" if kind == "order" else \
                            "mt5_signal_executions"
                        if db.count(table) >= (1 if kind == "order" else packet.sequence - 1):
                            break
                        await asyncio.sleep(0.05)
                assert await writer.flush()
        await writer.close()
        cached = await reader.recent_signals("acme", acc)
        await reader.close()
        async with CacheReader(None, database_url=cache_db.app_url, ttls=ttls) as stored:
            from_database = await stored.recent_signals("acme", acc)
        return [sent, cached, from_database]

    sent, cached, from_database = asyncio.run(scenario())
    assert [s.broker_adjustment for s in sent] == [D("0.00030000")] * 3  # 3 pips
    assert sent[0].prices.entry == D("1.09560000")
    assert [s.source for s in cached] == ["cache"] * 3
    assert [s.source for s in from_database] == ["database"] * 3
    assert cached == from_database
    assert [(s.state, s.ticket) for s in cached] == [("sent", None), ("rejected", None),
                                                    ("closed", 500)]
    assert cached[2].closed_at == now + timedelta(seconds=9)
    assert all(s.symbol == "EURUSD.m" and s.volume == D("0.10") for s in cached)
    assert uuid.UUID(str(cached[0].signal_id)) == sent[2].signal_id
