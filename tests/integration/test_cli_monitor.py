"""`suho-mt5 monitor` on native PostgreSQL (the postgresql edition): every section, EA
connectivity from real heartbeats, dead letters once the bridge's table exists, and what a
login of mt5_maintenance (not a superuser) sees."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from suho_mt5.cli import main
from suho_mt5.commands import account as accounts
from suho_mt5.commands import db as db_commands
from suho_mt5.commands import monitor as commands
from suho_mt5.db import make_engine
from suho_mt5.errors import DatabaseError
from tests.db.schema._support import ensure_login, login_url
from tests.support.servers import NatsServer


@pytest.fixture
def url(pg_url: str) -> str:
    """A migrated database (switch to another server's fixture here)."""
    db_commands.upgrade(pg_url, edition="postgresql")
    return pg_url


@pytest.fixture(autouse=True)
def _no_nats_url_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUHO_NATS_URL", raising=False)
    monkeypatch.delenv("SUHO_CACHE_URL", raising=False)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def execute(url: str, *statements: str, **params: Any) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for sql in statements:
                conn.execute(sa.text(sql), params)
    finally:
        engine.dispose()


def heartbeats(url: str) -> None:
    """Three accounts whose latest heartbeats are online, offline and online."""
    ids = [accounts.create(url, tenant_id=tenant, user_id="u", broker_name="B",
                           broker_server="S", mt5_login=login,
                           mt5_account_number=str(login)).account.account_id
           for tenant, login in (("tenant_a", 1), ("tenant_a", 2), ("tenant_b", 1))]
    for n, (account_id, old, new) in enumerate(zip(
            ids, ("offline", "online", "offline"), ("online", "offline", "online"),
            strict=True)):
        execute(url,
                "INSERT INTO public.mt5_ea_heartbeat (time, tenant_id, account_id, status) "
                "SELECT now() - interval '1 minute', tenant_id, account_id, :old "
                "FROM public.mt5_user_accounts WHERE account_id = :id",
                "INSERT INTO public.mt5_ea_heartbeat (time, tenant_id, account_id, status) "
                "SELECT now() - make_interval(secs => :n), tenant_id, account_id, :new "
                "FROM public.mt5_user_accounts WHERE account_id = :id",
                id=account_id, old=old, new=new, n=n)


def sections(result: Result) -> dict[str, dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return {s["name"]: s for s in json.loads(result.output)["sections"]}


def test_every_section_as_json_and_as_tables(url: str) -> None:
    heartbeats(url)
    db_commands.maintain(url)
    report = sections(run("monitor", "--url", url, "--json"))
    assert list(report) == ["hypertables", "aggregates", "chunks", "connectivity",
                            "consumer_lag", "dead_letters", "cache"]
    assert report["cache"]["available"] is False
    hypertables = {r["hypertable_name"]: r for r in report["hypertables"]["rows"]}
    assert len(hypertables) == 8 and hypertables["mt5_ea_heartbeat"]["is_hypertable"] is False
    assert {r["kind"] for r in report["aggregates"]["rows"]} == {"materialized view"}
    assert any(r["hypertable_name"] == "mt5_ea_heartbeat" and r["range_end"] is not None
               for r in report["chunks"]["rows"])
    [connectivity] = report["connectivity"]["rows"]
    assert {k: connectivity[k] for k in ("online", "offline", "degraded", "total")} == {
        "online": 2, "offline": 1, "degraded": 0, "total": 3}
    assert report["consumer_lag"]["available"] is False
    assert report["consumer_lag"]["note"].startswith("not available: ")
    assert report["dead_letters"]["available"] and report["dead_letters"]["rows"] == []

    text = run("monitor", "--url", url)
    assert text.exit_code == 0, text.output
    for title in ("Hypertables", "Continuous aggregates", "Chunks", "EA connectivity",
                  "Consumer lag (JetStream): not available", "Dead letters"):
        assert title in text.output
    assert "mt5_ea_heartbeat" in text.output and "edition postgresql" in text.output


def test_dead_letters_are_counted_by_reason(url: str) -> None:
    execute(url, *(
        "INSERT INTO public.mt5_ingest_dead_letters (stream, stream_seq, subject, reason,"
        f" detail, raw, packet_count) VALUES ('MT5_ACCOUNTS', {n}, 'mt5.account.x', '{reason}',"
        " 'test', '\\x00', 0)"
        for n, reason in enumerate(("undecodable", "undecodable", "unauthorized"))
    ))
    dead = commands.monitor(url).section("dead_letters")
    assert dead.available and [(r["reason"], r["count"]) for r in dead.rows] == [
        ("undecodable", 2), ("unauthorized", 1)]
    assert "unauthorized" in run("monitor", "--url", url).output


def test_a_maintenance_login_reads_it_and_a_tenant_login_is_told_why_not(url: str) -> None:
    admin = make_engine(url)
    try:
        for role in ("mt5_maintenance", "mt5_app"):
            ensure_login(admin, role)
    finally:
        admin.dispose()
    maintenance = login_url(url, "mt5_maintenance").render_as_string(hide_password=False)
    report = commands.monitor(maintenance)
    assert report.section("hypertables").available
    assert report.section("aggregates").available
    app = login_url(url, "mt5_app").render_as_string(hide_password=False)
    refused = sections(run("monitor", "--url", app, "--json"))
    # The views span every tenant: a tenant role may not read them, and is told so.
    assert refused["hypertables"]["available"] is False
    assert "permission denied" in refused["hypertables"]["note"]
    # --role: a superuser session that takes the role on (what an operator's login may do).
    as_role = sections(run("monitor", "--url", url, "--role", "mt5_maintenance", "--json"))
    assert as_role["hypertables"]["available"] is True
    result = run("monitor", "--url", url, "--role", "no_such_role")
    assert result.exit_code == 1 and result.output.strip().splitlines() == [
        'error: role "no_such_role" does not exist'], result.output


def test_an_unmigrated_database_is_one_line(pg_url: str) -> None:
    with pytest.raises(DatabaseError, match="not migrated"):
        commands.monitor(pg_url)
    result = run("monitor", "--url", pg_url)
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: the database is not migrated (no monitoring views): run suho-mt5 db upgrade"]


async def _stream_with_a_lagging_consumer(nats_url: str) -> None:
    """Stream MONITOR_TEST with 5 messages; consumer "bridge" fetched 3 and acked 2."""
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream()
        await js.add_stream(name="MONITOR_TEST", subjects=["monitor.test.>"])
        for n in range(5):
            await js.publish("monitor.test.quotes", str(n).encode())
        subscription = await js.pull_subscribe("monitor.test.>", durable="bridge",
                                               stream="MONITOR_TEST")
        messages = await subscription.fetch(3, timeout=5)
        for message in messages[:2]:
            await message.ack()
    finally:
        await client.close()


def test_consumer_lag_from_jetstream(url: str, nats_server: NatsServer) -> None:
    asyncio.run(_stream_with_a_lagging_consumer(nats_server.url))
    result = run("monitor", "--url", url, "--nats-url", nats_server.url, "--json")
    lag = sections(result)["consumer_lag"]
    assert lag["available"] is True, lag
    [row] = [r for r in lag["rows"] if r["stream"] == "MONITOR_TEST"]
    assert (row["consumer"], row["pending"], row["ack_pending"], row["delivered_seq"],
            row["last_seq"]) == ("bridge", 2, 1, 3, 5)
    text = run("monitor", "--url", url)
    assert "Consumer lag (JetStream): not available: no NATS URL" in text.output
    table = run("monitor", "--url", url, "--nats-url", nats_server.url)
    assert table.exit_code == 0 and "MONITOR_TEST" in table.output, table.output
