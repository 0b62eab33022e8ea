"""Tenant sessions behind PgBouncer in transaction mode (docs/operations.md, "PgBouncer").

In transaction mode a client's consecutive transactions run on whichever server connection
is free, and a server connection serves many clients in turn. The tenant session sets the
tenant and the search path at the start of every transaction (``set_config(..., true)``),
so nothing of one tenant's context survives into the next client's transaction, and the
engine prepares no statements (a statement prepared on one server connection does not
exist on the next one).
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
import sqlalchemy as sa

from suho_mt5.db import Edition, make_engine, tenant_session
from tests.db.schema._support import LOGIN_PASSWORD, Schema, ensure_login, migrated_schema
from tests.integration.ingest._support import (
    INGEST_PASSWORD,
    Feed,
    IngestDb,
    assert_exactly_once,
    frames_for,
    jetstream,
    make_ingest_login,
    nats_server,
    publish_all,
    quick_settings,
    running_bridge,
    wait_until_drained,
)
from tests.support.fixtures import PgServer
from tests.support.servers import PgBouncer

THREADS = 8
TRANSACTIONS = 1_000
SERVER_CONNECTIONS = 2
APP_LOGIN = "suho_login_mt5_app"
# What every transaction reads: the tenant's accounts through the tenant view, the tenant
# setting and the search path as the transaction sees them, and the server backend.
READ = sa.text(
    "SELECT a.tenant_id, current_setting('app.current_tenant_id', true),"
    " current_setting('search_path'), pg_backend_pid() FROM mt5_user_accounts a"
    " RIGHT JOIN (SELECT 1) one ON true"
)


@pytest.fixture(scope="module")
def db(ts_server: PgServer) -> Iterator[Schema]:
    name = ts_server.create_database()
    try:
        with migrated_schema(ts_server.url(name), Edition.TIMESCALE) as migrated:
            ensure_login(migrated.engine, "mt5_app")
            yield migrated
    finally:
        ts_server.drop_database(name)


@pytest.fixture(scope="module")
def tenants(db: Schema) -> tuple[str, str]:
    """Two tenants, three accounts each, written by the superuser."""
    pair = (f"a{uuid.uuid4().hex[:10]}", f"b{uuid.uuid4().hex[:10]}")
    with db.engine.begin() as conn:
        for tenant in pair:
            for n in range(3):
                conn.execute(sa.text(
                    "INSERT INTO public.mt5_user_accounts (tenant_id, user_id, broker_name,"
                    " broker_server, mt5_login, mt5_account_number, account_type)"
                    " VALUES (:t, 'u', 'B', 'B-Demo', :login, '1', 'demo')"),
                    {"t": tenant, "login": n + 1})
    return pair


@dataclass
class Seen:
    """What the transactions of one thread saw."""

    wrong: list[str] = field(default_factory=list)
    backends: Counter[int] = field(default_factory=Counter)
    tenants_of_backend: dict[int, set[str | None]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def _hammer(engine: sa.Engine, tenants: tuple[str, str], thread: int, seen: Seen,
            start: threading.Barrier) -> None:
    """TRANSACTIONS transactions; transaction j is tenant A's, B's, or no tenant's."""
    start.wait()
    for j in range(TRANSACTIONS):
        tenant = (*tenants, None)[(thread + j) % 3]
        try:
            if tenant is None:
                # A client of the same login that sets no tenant: it must see nothing,
                # whatever the server connection did for the tenant before it.
                with engine.begin() as conn:
                    rows = conn.execute(READ).all()
            else:
                with tenant_session(engine, tenant) as session, session.begin():
                    rows = session.execute(READ).all()
        except sa.exc.DBAPIError as exc:
            seen.errors.append(f"{type(exc.orig).__name__}: {exc.orig}")
            continue
        owners = {r[0] for r in rows if r[0] is not None}
        setting = {r[1] or None for r in rows}
        backend = rows[0][3]
        seen.backends[backend] += 1
        seen.tenants_of_backend.setdefault(backend, set()).add(tenant)
        expected = {tenant} if tenant else set()
        if owners != expected or setting != {tenant}:
            seen.wrong.append(f"thread {thread} txn {j} as {tenant}: rows of {owners}, "
                              f"setting {setting}, search_path {rows[0][2]!r}")
        elif tenant is not None and len(rows) != 3:
            seen.wrong.append(f"thread {thread} txn {j} as {tenant}: {len(rows)} rows, not 3")


def _run_all(bouncer: PgBouncer, db: Schema, tenants: tuple[str, str]) -> list[Seen]:
    # Behind transaction pooling psycopg must not prepare statements (docs/operations.md).
    url = bouncer.url(sa.make_url(db.url).database or "", APP_LOGIN) + "?prepare_threshold=none"
    engine = make_engine(url, pool_size=THREADS, max_overflow=0)
    try:
        seen = [Seen() for _ in range(THREADS)]
        barrier = threading.Barrier(THREADS)
        threads = [threading.Thread(target=_hammer, args=(engine, tenants, i, seen[i], barrier))
                   for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(240)
        assert not any(t.is_alive() for t in threads), "a thread hung"
        return seen
    finally:
        engine.dispose()


@pytest.fixture
def bouncer(db: Schema, ts_server: PgServer,
            start_pgbouncer: Callable[..., PgBouncer]) -> PgBouncer:
    """PgBouncer, transaction mode, at most two server connections to the database."""
    return start_pgbouncer(ts_server.port, {APP_LOGIN: LOGIN_PASSWORD,
                                            ts_server.user: ts_server.password},
                           admin_user=ts_server.user, pool_mode="transaction",
                           pool_size=SERVER_CONNECTIONS,
                           max_db_connections=SERVER_CONNECTIONS)


def test_eight_threads_alternating_tenants_through_two_server_connections(
    db: Schema, tenants: tuple[str, str], bouncer: PgBouncer
) -> None:
    seen = _run_all(bouncer, db, tenants)
    errors = [e for s in seen for e in s.errors]
    assert errors == [], f"{len(errors)} transactions failed, first: {errors[:3]}"
    wrong = [w for s in seen for w in s.wrong]
    assert wrong == [], f"{len(wrong)} transactions saw another tenant, first: {wrong[:3]}"
    backends: Counter[int] = sum((s.backends for s in seen), Counter())
    assert sum(backends.values()) == THREADS * TRANSACTIONS
    # Two server connections served all 8,000 transactions of the eight clients, and each
    # of them served both tenants and the tenant-less client in turn.
    assert len(backends) <= SERVER_CONNECTIONS, backends
    served: dict[int, set[str | None]] = {}
    for s in seen:
        for backend, kinds in s.tenants_of_backend.items():
            served.setdefault(backend, set()).update(kinds)
    assert all(kinds == {*tenants, None} for kinds in served.values()), served
    pools = [p for p in bouncer.show("pools") if p["user"] == APP_LOGIN]
    assert pools and all(p["pool_mode"] == "transaction" for p in pools)


def test_a_session_wide_tenant_would_leak_through_the_pool(
    db: Schema, tenants: tuple[str, str], bouncer: PgBouncer
) -> None:
    """Protection, shown: the same pool with the tenant set for the *session* (what the
    tenant session must never do) hands tenant A's context to a client that set none."""
    a, _ = tenants
    url = bouncer.url(sa.make_url(db.url).database or "", APP_LOGIN)
    conninfo = sa.make_url(url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as first, \
            psycopg.connect(conninfo, autocommit=True, prepare_threshold=None) as second:
        backends = set()
        leaked = 0
        for _ in range(20):  # with two server connections, the second lands on the first's
            first.execute("SELECT set_config('app.current_tenant_id', %s, false)", (a,))
            backends.add(first.execute("SELECT pg_backend_pid()").fetchone())
            rows = second.execute("SELECT tenant_id FROM mt5_user_accounts").fetchall()
            leaked += sum(1 for (t,) in rows if t == a)
            first.execute("RESET app.current_tenant_id")
        assert leaked > 0, "the pool never handed the first client's server connection on"


def test_the_data_bridge_through_pgbouncer_in_session_mode(
    db: Schema, ts_server: PgServer, start_pgbouncer: Callable[..., PgBouncer]
) -> None:
    """The bridge holds one connection per worker for its life and creates its staging
    tables (temporary: they live in one server session) when it connects: it needs a server
    connection of its own, PgBouncer's session mode (docs/operations.md)."""
    admin = db.url
    login_url = sa.make_url(make_ingest_login(admin))
    bouncer = start_pgbouncer(ts_server.port, {login_url.username or "": INGEST_PASSWORD},
                              pool_mode="session", pool_size=4)
    ingest = IngestDb(admin, bouncer.url(login_url.database or "", login_url.username or ""))
    ingest.add_accounts(2)
    frames, published = frames_for(Feed(ingest.accounts), 3_000, 50)

    async def run() -> None:
        async with jetstream(nats.url) as (_nc, js):
            await publish_all(js, frames)
            async with running_bridge(quick_settings(ingest, nats.url, workers=2,
                                                     batch_size=10)):
                await wait_until_drained(js, ingest, published.rows, timeout=90)

    with nats_server() as nats:
        asyncio.run(run())
    assert_exactly_once(ingest, published)
