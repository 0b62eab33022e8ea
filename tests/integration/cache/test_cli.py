"""``suho-mt5 cache ...``, ``monitor --cache-url`` and ``ingest run --cache-url`` against
real servers, as an operator runs them."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

from suho_mt5.cli import main
from tests.integration.cache._support import cached, differences, expected
from tests.integration.cache.conftest import CacheDb
from tests.integration.ingest._support import (
    BASE_TIME,
    Feed,
    assert_exactly_once,
    bridge_process,
    frames_for,
    jetstream,
    publish_all,
    stop_process,
    wait_until_drained,
)
from tests.support.cli import one_error_line
from tests.support.servers import NatsServer, RedisServer, free_port


@pytest.fixture(autouse=True)
def _no_urls_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SUHO_CACHE_URL", "SUHO_DATABASE_URL", "SUHO_NATS_URL"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def ok_json(*args: str) -> Any:
    result = run(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _rows(cache_db: CacheDb) -> dict[str, uuid.UUID]:
    now = datetime.now(UTC)
    accounts = {t: cache_db.db.add_accounts(1, tenants=(t,))[0] for t in ("acme", "initech")}
    with cache_db.db.connect() as conn:
        for tenant, acc in accounts.items():
            conn.execute(
                "INSERT INTO mt5_broker_quotes (time, tenant_id, account_id, symbol, bid, ask,"
                " last, volume, spread_points, polygon_bid, polygon_ask, price_deviation,"
                " sequence) VALUES (%s, %s, %s, 'EURUSD.m', 1.1, 1.1002, 0, 0, 2, 1.0999,"
                " 1.1001, 2, 1)", (now - timedelta(seconds=5), tenant, acc))
            conn.execute(
                "INSERT INTO mt5_ea_heartbeat (time, tenant_id, account_id, status, ea_version,"
                " terminal_build, terminal_connected, trade_allowed, ping_ms, sequence) VALUES"
                " (%s, %s, %s, 'online', '1', 4410, true, true, 5, 2)",
                (now - timedelta(seconds=5), tenant, acc))
    return accounts


def test_an_operator_grants_rebuilds_reads_monitors_and_revokes(
        cache_db: CacheDb, redis_cache: RedisServer) -> None:
    admin = redis_cache.admin_url
    accounts = _rows(cache_db)
    writer = ok_json("cache", "grant-writer", "--cache-url", admin, "--json")
    assert writer["user"] == "suho-writer" and writer["persisted"]
    first = ok_json("cache", "grant-tenant", "acme", "--cache-url", admin, "--json")
    tenant = ok_json("cache", "grant-tenant", "acme", "--cache-url", admin, "--json")
    assert tenant["password"] != first["password"] and tenant["keys"] == "suho:{acme}:*"
    listed = {u["user"]: u for u in ok_json("cache", "users", "--cache-url", admin, "--json")}
    assert {"suho-writer", "suho-tenant-acme", "suho-admin"} <= set(listed)

    report = ok_json("cache", "rebuild", "--url", cache_db.maintenance_url, "--cache-url",
                     writer["url"], "--tenant", "acme", "--quiet", "--json")
    assert report["tenant_id"] == "acme" and report["written"] == 3  # quote, status, ref
    assert not report["broker_names"]  # mt5_maintenance may not read mt5_user_accounts
    keys = redis.Redis.from_url(admin, decode_responses=True).keys("suho:{*")
    assert keys and all(k.startswith("suho:{acme}:") for k in keys)

    acme = str(accounts["acme"])
    got = ok_json("cache", "get", "quote", "--tenant", "acme", "--account", acme, "--symbol",
                  "EURUSD.m", "--cache-url", tenant["url"])
    assert got["source"] == "cache" and got["bid"] == "1.10000000"
    status = ok_json("cache", "get", "status", "--tenant", "acme", "--account", acme,
                     "--cache-url", tenant["url"])
    assert status["status"] == "online"
    ref = ok_json("cache", "get", "reference", "--tenant", "acme", "--symbol", "EURUSD",
                  "--cache-url", tenant["url"])
    assert ref["bid"] == "1.09990000"
    other = str(accounts["initech"])
    fallback = ok_json("cache", "get", "quote", "--tenant", "initech", "--account", other,
                       "--symbol", "EURUSD.m", "--url", cache_db.app_url)
    assert fallback["source"] == "database"
    one_error_line(run("cache", "get", "quote", "--tenant", "initech", "--account", other,
                       "--symbol", "EURUSD.m", "--cache-url", tenant["url"]), "no permissions")
    one_error_line(run("cache", "get", "quote", "--tenant", "acme", "--account", acme,
                       "--cache-url", tenant["url"]), "quote needs --symbol")

    stats = ok_json("cache", "stats", "--cache-url", admin, "--json")
    assert stats["tenants"] == {"acme": {"quote": 1, "status": 1, "reference": 1}}
    assert stats["rebuilt"]["tenant"] == "acme" and stats["epoch"]
    monitor = {s["name"]: s for s in ok_json("monitor", "--url", cache_db.db.admin_url,
                                             "--cache-url", admin, "--json")["sections"]}
    (row,) = monitor["cache"]["rows"]
    assert (row["tenant"], row["quote"], row["total"]) == ("acme", 1, 3)
    assert "hit ratio" in monitor["cache"]["note"]
    assert [w["writer"].startswith("rebuild:") for w in monitor["cache_writers"]["rows"]] \
        == [True]
    text = run("monitor", "--url", cache_db.db.admin_url, "--cache-url", admin)
    assert "Latest-state cache" in text.output and "Cache writers" in text.output

    revoked = run("cache", "revoke-tenant", "acme", "--purge", "--cache-url", admin)
    assert revoked.exit_code == 0 and "deleted; 3 key(s) deleted" in revoked.output
    one_error_line(run("cache", "grant-tenant", "bad tenant", "--cache-url", admin),
                   "malformed tenant_id")
    one_error_line(run("cache", "grant-tenant", "acme"), "no cache URL")
    one_error_line(run("cache", "stats", "--cache-url", "http://x"), "not a cache URL")
    one_error_line(run("cache", "rebuild", "--url", cache_db.maintenance_url, "--cache-url",
                       redis_cache.url("suho-writer", "wrong")), "invalid username-password")
    one_error_line(run("ingest", "run", "--url", cache_db.db.ingest_url, "--cache-ttl",
                       "quote=-1"), "not a TTL")


def test_ingest_run_with_a_cache_url_fills_it_and_exports_its_metrics(
        cache_db: CacheDb, nats: NatsServer, redis_cache: RedisServer, tmp_path: Path) -> None:
    db = cache_db.db
    db.add_accounts(2)
    frames, published = frames_for(Feed(db.accounts), 3_000, 50)
    writer = ok_json("cache", "grant-writer", "--cache-url", redis_cache.admin_url, "--json")
    port = free_port()
    proc = bridge_process(db.ingest_url, nats.url, "--cache-url", writer["url"],
                          "--cache-ttl", "all=315360000", "--metrics-port", str(port),
                          log=tmp_path / "bridge.log")
    try:
        async def scenario() -> None:
            async with jetstream(nats.url) as (_nc, js):
                await publish_all(js, frames)
                await wait_until_drained(js, db, published.rows)

        asyncio.run(scenario())
        diff: list[str] = ["not checked"]
        for _ in range(100):  # the writer's last round trip follows the last commit
            diff = differences(expected(db.admin_url, BASE_TIME - timedelta(days=1)),
                               cached(redis_cache.admin_url))
            if not diff:
                break
            asyncio.run(asyncio.sleep(0.1))
        assert not diff, "\n".join(diff[:10])
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        written = [line for line in metrics.splitlines()
                   if line.startswith("suho_cache_values_written_total ")]
        assert written and float(written[0].split()[1]) > 0
        assert "suho_cache_write_lag_seconds_bucket" in metrics
        assert "suho_ingest_batches_committed_total" in metrics  # one registry, one page
    finally:
        assert stop_process(proc) == 0, (tmp_path / "bridge.log").read_text()[-3000:]
    assert_exactly_once(db, published)
    stats = ok_json("cache", "stats", "--cache-url", redis_cache.admin_url, "--json")
    assert [w["name"].startswith("bridge@") for w in stats["writers"]] == [True]
