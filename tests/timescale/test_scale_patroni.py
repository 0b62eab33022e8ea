"""TimescaleDB high availability with Patroni (docs/operations.md, docs/scaling.md): two
PostgreSQL 15 + TimescaleDB nodes over one etcd, a primary and a synchronous streaming
replica, reached through libpq multi-host URLs.

* the migrations run on the primary through ``target_session_attrs=read-write``;
* the replica serves a tenant login through ``target_session_attrs=prefer-standby``, and
  the tenant views isolate there as on the primary;
* the primary's node is SIGKILLed while the Data Bridge ingests; Patroni promotes the
  replica, the bridge (one multi-host URL) carries on against it, and every packet is
  stored exactly once. The time from the kill to the first rows committed on the new
  primary, and the replication lag under ingest, are printed (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from suho_mt5.db import Edition, make_engine, tenant_session
from tests.db.schema._support import LOGIN_PASSWORD, ensure_login, migrated_schema
from tests.integration.ingest._support import (
    INGEST_PASSWORD,
    Feed,
    IngestDb,
    assert_exactly_once,
    bridge_process,
    frames_for,
    jetstream,
    make_ingest_login,
    nats_server,
    publish_all,
    stop_process,
    wait_until_drained,
)
from tests.support.servers import PatroniCluster, wait_until
from tests.timescale.test_tenant_logins import leaks

DATABASE = "suho_ha"
APP_LOGIN = "suho_login_mt5_app"
PACKETS = 50_000


@dataclass
class HaDb:
    cluster: PatroniCluster
    admin_url: str  # multi-host, read-write: always the primary
    tenants: tuple[str, str]
    marker: str


@pytest.fixture(scope="module")
def ha(patroni_cluster: PatroniCluster) -> Iterator[HaDb]:
    """The database migrated on the primary, an app login, two tenants' accounts."""
    cluster = patroni_cluster
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    admin_url = cluster.url(DATABASE)
    tenants = (f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}")
    marker = f"secret{uuid.uuid4().hex[:8]}"
    with migrated_schema(admin_url, Edition.TIMESCALE) as schema:
        ensure_login(schema.engine, "mt5_app")
        with schema.engine.begin() as conn:
            for tenant, user in zip(tenants, ("visible", marker), strict=True):
                for n in range(2):
                    conn.execute(sa.text(
                        "INSERT INTO public.mt5_user_accounts (tenant_id, user_id,"
                        " broker_name, broker_server, mt5_login, mt5_account_number,"
                        " account_type) VALUES (:t, :u, 'B', 'B-Demo', :n, '1', 'demo')"),
                        {"t": tenant, "u": user, "n": n + 1})
            conn.execute(sa.text("ANALYZE"))
        yield HaDb(cluster, admin_url, tenants, marker)


def test_migrations_ran_on_the_primary_through_the_multi_host_url(ha: HaDb) -> None:
    primary = ha.cluster.primary()
    assert primary is not None
    engine = make_engine(ha.admin_url)
    try:
        with engine.connect() as conn:
            port, recovery = conn.execute(sa.text(
                "SELECT inet_server_port(), pg_is_in_recovery()")).one()
            assert (port, recovery) == (primary.port, False)
            assert conn.execute(sa.text("SELECT extversion FROM pg_extension"
                                        " WHERE extname = 'timescaledb'")).scalar() is not None
    finally:
        engine.dispose()


def test_the_replica_serves_a_tenant_login_its_own_tenant_only(ha: HaDb) -> None:
    a, b = ha.tenants
    replica = ha.cluster.replicas()[0]
    url = ha.cluster.url(DATABASE, user=APP_LOGIN, password=LOGIN_PASSWORD,
                         target="prefer-standby")
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT inet_server_port(), pg_is_in_recovery()")
                                ).one() == (replica.port, True)

        def replayed() -> bool:  # synchronous commit waits for the flush, not the replay
            with tenant_session(engine, b) as s, s.begin():
                return s.scalar(sa.text("SELECT count(*) FROM mt5_user_accounts")) == 2

        wait_until("the replica to replay the accounts", replayed, 30)
        for tenant, user in ((a, "visible"), (b, ha.marker)):
            with tenant_session(engine, tenant) as s, s.begin():
                rows = s.execute(sa.text("SELECT tenant_id, user_id FROM mt5_user_accounts")
                                 ).all()
                assert {tuple(r) for r in rows} == {(tenant, user)} and len(rows) == 2
        with engine.connect() as conn:  # no tenant set: nothing
            assert conn.execute(sa.text("SELECT count(*) FROM mt5_user_accounts")).scalar() == 0
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                conn.execute(sa.text("SELECT count(*) FROM public.mt5_user_accounts"))
    finally:
        engine.dispose()
    # Every relation the login can reach on the replica, enumerated from the catalog.
    conninfo = ha.cluster.url(DATABASE, user=APP_LOGIN, password=LOGIN_PASSWORD,
                              target="standby")
    with psycopg.connect(conninfo) as conn:
        assert leaks(conn, a, ha.marker) == []


def _lag_sampler(cluster: PatroniCluster, stop: threading.Event,
                 samples: list[tuple[int, float]]) -> None:
    """(bytes the replica has yet to replay, replay lag in seconds) every 0.1 s."""
    primary = cluster.primary()
    assert primary is not None
    with psycopg.connect(host="127.0.0.1", port=primary.port, user="postgres",
                         password=cluster.password, dbname="postgres",
                         autocommit=True) as conn:
        while not stop.is_set():
            try:
                row = conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint,"
                    " coalesce(extract(epoch FROM replay_lag), 0)::float8"
                    " FROM pg_stat_replication").fetchone()
            except psycopg.Error:
                return  # the primary was killed
            if row is not None:
                samples.append((int(row[0]), float(row[1])))
            stop.wait(0.1)


def test_the_primary_killed_during_ingest_loses_and_doubles_nothing(
    ha: HaDb, tmp_path: Path
) -> None:
    cluster = ha.cluster
    old = cluster.primary()
    assert old is not None
    single = cluster.node_url(old, DATABASE)  # the login is created once, on the primary
    login = sa.make_url(make_ingest_login(single, bypassrls=True)).username or ""
    bridge_url = cluster.url(DATABASE, user=login, password=INGEST_PASSWORD)
    db = IngestDb(ha.admin_url, bridge_url)
    db.add_accounts(2)
    frames, published = frames_for(Feed(db.accounts), PACKETS, 100)
    samples: list[tuple[int, float]] = []
    stop_sampling = threading.Event()
    with nats_server() as nats:

        async def publish() -> None:
            async with jetstream(nats.url) as (_nc, js):
                await publish_all(js, frames)

        asyncio.run(publish())
        sampler = threading.Thread(target=_lag_sampler, args=(cluster, stop_sampling, samples))
        log = tmp_path / "bridge.log"
        bridge = bridge_process(bridge_url, nats.url, "--batch-size", "20", log=log)
        try:
            sampler.start()
            wait_until("the first rows", lambda: sum(db.counts().values()) >= PACKETS // 5, 120)
            stop_sampling.set()
            sampler.join(10)
            killed = time.monotonic()
            old.kill()
            new = cluster.wait_primary(other_than=old, timeout=120)
            promoted = time.monotonic()
            conninfo = f"host=127.0.0.1 port={new.port} user=postgres dbname={DATABASE} " \
                       f"password={cluster.password}"
            with psycopg.connect(conninfo, autocommit=True) as conn:
                at_promotion = _rows(conn)
                first = wait_until("the bridge's first commit on the new primary",
                                   lambda: _rows(conn) > at_promotion and time.monotonic(),
                                   120, every=0.02)

            async def drain() -> None:
                async with jetstream(nats.url, setup=False) as (_nc, js):
                    await wait_until_drained(js, db, published.rows, timeout=180)

            asyncio.run(drain())
        finally:
            stop_sampling.set()
            code = stop_process(bridge)
    assert code == 0, log.read_text()[-3000:]
    assert_exactly_once(db, published)
    lag_bytes = [s[0] for s in samples]
    lag_s = [s[1] for s in samples]
    assert samples, "no replication sample taken under ingest"
    median_ms, max_ms = statistics.median(lag_s) * 1000, max(lag_s) * 1000
    median_kib, max_kib = statistics.median(lag_bytes) / 1024, max(lag_bytes) / 1024
    print(f"\nPatroni (ttl {cluster.ttl} s, loop_wait {cluster.loop_wait} s): primary "
          f"{old.member} SIGKILLed, {new.member} promoted {promoted - killed:.1f} s later, "
          f"first batch committed there {first - killed:.1f} s after the kill; replication "
          f"under ingest ({len(samples)} samples): replay lag median {median_ms:.1f} ms, "
          f"max {max_ms:.1f} ms; WAL not yet replayed median {median_kib:.0f} KiB, "
          f"max {max_kib:.0f} KiB")


def _rows(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM mt5_broker_quotes) + (SELECT count(*) FROM"
        " mt5_account_balance_history) + (SELECT count(*) FROM mt5_ea_heartbeat) +"
        " (SELECT count(*) FROM mt5_trade_orders)").fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]
