"""docs/cache.md lists every Redis-protocol command the package sends (and DragonflyDB
supports): the list is checked against what redis-server's MONITOR sees while every part of
the package runs (users, writes of every kind, reads of every kind, rebuild, statistics,
purge)."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis

from suho_mt5.cache import CacheReader, CacheWriter, acl
from suho_mt5.cache.stats import read_stats
from suho_mt5.ingest.writer import Batch, WriteResult
from tests.support.servers import RedisServer

DOC = (Path(__file__).resolve().parents[3] / "docs" / "cache.md").read_text()
_LINE = re.compile(r'^\S+ \[\d+ (?:lua|[^\]]+)\] "([^"]+)"(?: "([^"]*)")?')


def _documented() -> set[str]:
    table = DOC.split("<!-- BEGIN COMMANDS")[1].split("<!-- END COMMANDS")[0]
    names: set[str] = set()
    for cell in re.findall(r"^\| (`[^|]+`) \|", table, re.M):
        names.update(re.findall(r"`([A-Z ]+)`", cell))
    return names


def _workload(server: RedisServer) -> None:
    acc = uuid.uuid4()
    now = datetime.now(UTC)

    async def go() -> None:
        writer_url = (await acl.grant_writer(server.admin_url)).url
        tenant = await acl.grant_tenant(server.admin_url, "acme")
        await acl.list_users(server.admin_url)
        writer = CacheWriter(writer_url, signal_limit=1)  # the second signal trims the first
        b = Batch()
        d = Decimal
        b.add("mt5_broker_quotes", (now, "acme", acc, "EURUSD", d(1), d(2), d(0), d(0), 1,
                                    d(1), d(2), d(0), 1), None)
        b.add("mt5_ea_heartbeat", (now, "acme", acc, "online", "1", 1, True, True, 1, 1), None)
        sid = uuid.uuid4()
        b.add("mt5_signal_executions", (now, "acme", acc, sid, 7, d(1), d(0), 10009, 2), None)
        b.add("mt5_trade_orders", (now, "acme", acc, 8, 7, "EURUSD", "buy", "buy", d(1), d(1),
                                   None, None, d(0), d(0), d(0), 0, "closed", 3), None)
        writer.after_commit(b, WriteResult(), lambda a: None)
        writer.signal_changed("acme", acc, sid, now, "sent", {"symbol": "EURUSD"})
        writer.signal_changed("acme", acc, uuid.uuid4(), now.replace(year=now.year + 1),
                              "pending", {"symbol": "EURUSD"})
        writer.session_changed("acme", acc, True)
        assert await writer.flush()
        await writer.close()
        async with CacheReader(tenant.url) as reader:
            await reader.latest_quote("acme", acc, "EURUSD")
            await reader.ea_status("acme", acc)
            await reader.recent_signals("acme", acc)
        await read_stats(server.admin_url)
        await acl.revoke_tenant(server.admin_url, "acme", purge=True)

    asyncio.run(go())


def test_the_documented_commands_are_the_ones_sent(redis_cache: RedisServer) -> None:
    """Counted by the server itself (``INFO commandstats``, which counts the commands the
    scripts call too), from a ``CONFIG RESETSTAT`` before the workload."""
    admin = redis.Redis.from_url(redis_cache.admin_url, decode_responses=True)
    admin.script_flush()  # the server knows no script: the writer's EVAL runs too
    admin.config_resetstat()
    _workload(redis_cache)
    stats: dict[str, Any] = admin.info("commandstats")
    admin.close()
    sent = {name.removeprefix("cmdstat_").replace("|", " ").upper() for name in stats}
    sent -= {"CONFIG RESETSTAT"}  # this test's own
    documented = _documented()
    assert sent - documented == set(), sent - documented
    # redis-py authenticates within HELLO; other clients send AUTH
    assert documented - sent == {"AUTH"}, documented - sent
