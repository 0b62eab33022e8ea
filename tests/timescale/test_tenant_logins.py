"""Tenant isolation on native TimescaleDB, through real logins (docs/schema.md, "Tenant
isolation"). What the PGlite engine (one superuser backend, SET ROLE) could never show:

* a fresh login in ``mt5_app`` works at all (revision 0001 had closed TimescaleDB's internal
  schema, and every query of a tenant role failed);
* it reads and writes its own tenant through the ORM models, and no relation it can reach —
  enumerated from the catalog: tables, views, chunks, converted (compressed) chunks,
  statistics — shows another tenant;
* each protection of the design, removed, is caught. Since revision 0013 the time series have
  no row-level security: their tenant views and the grants isolate on their own.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from suho_mt5.db import Edition, tenant_session
from suho_mt5.models import (
    BalanceHistory,
    BrokerQuote,
    TradeOrder,
    TradingSignal,
    UserAccount,
)
from tests.db.models._support import role_engine
from tests.db.schema._support import (
    Schema,
    ensure_login,
    login_url,
    migrated_schema,
    register_edition,
)
from tests.support.fixtures import PgServer

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def db(ts_server: PgServer) -> Iterator[Schema]:
    url = register_edition(ts_server.url(ts_server.create_database()), Edition.TIMESCALE)
    try:
        with migrated_schema(url, Edition.TIMESCALE) as migrated:
            yield migrated
    finally:
        ts_server.drop_database(sa.make_url(url).database or "")


def _tenant() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def _account(tenant_id: str) -> UserAccount:
    return UserAccount(
        tenant_id=tenant_id, user_id="user_001", broker_name="ICMarkets",
        broker_server="ICMarkets-Demo", mt5_login=67890, mt5_account_number="12345",
        account_type="demo", api_key_hash="$2b$12$" + "a" * 53,
    )


def _fill(app: Engine, tenant_id: str, marker: str) -> uuid.UUID:
    """One account with a balance, a quote, an order and a signal, written through the
    models by the app login with ``tenant_id`` set; ``marker`` is in every text it can be."""
    with tenant_session(app, tenant_id) as s, s.begin():
        account = _account(tenant_id)
        account.user_id = marker
        s.add(account)
        s.flush()
        aid = account.account_id
        s.add(BalanceHistory(account_id=aid, time=T0, balance=Decimal("1000"),
                             equity=Decimal("1000"), margin=Decimal("0"),
                             free_margin=Decimal("1000"), currency="USD"))
        s.add(BrokerQuote(account_id=aid, time=T0, symbol=marker[:12], bid=Decimal("1.1"),
                          ask=Decimal("1.2")))
        s.add(TradeOrder(account_id=aid, time=T0, ticket=1, symbol=marker[:12],
                         order_type="buy", volume=Decimal("0.1"), price=Decimal("1.1"),
                         status="open", comment=marker))
        s.add(TradingSignal(account_id=aid, time=T0, symbol=marker[:12], action="BUY",
                            entry_price=Decimal("1.1"), model_version="v1",
                            strategy_name=marker, confidence_score=Decimal("0.8"),
                            expires_at=T0 + timedelta(days=3650)))
    return aid


COMPRESSED_CHUNKS = ("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c"
                     " JOIN pg_namespace n ON n.oid = c.relnamespace"
                     " WHERE n.nspname = '_timescaledb_internal'"
                     " AND c.relname LIKE 'compress\\_hyper\\_%' AND c.relkind = 'r'")


@pytest.fixture(scope="module")
def two_tenants(db: Schema) -> tuple[str, str, str]:
    """(tenant A, tenant B, B's marker). Every chunk of a table with a columnstore is
    converted (tenant ids stay plain values there, as segmentby columns), and statistics
    are gathered, so pg_stats has B's values for the chunks and the converted chunks."""
    app = role_engine(db.url, "mt5_app")
    a, b = _tenant(), _tenant()
    marker = f"secret{uuid.uuid4().hex[:8]}"
    try:
        _fill(app, a, "visible_a")
        _fill(app, b, marker)
    finally:
        app.dispose()
    with db.engine.connect() as conn:
        # 1,500 more quotes of B: two batches of one segment, so the statistics of B's
        # converted chunk have B's tenant id among their most common values.
        conn.execute(sa.text(
            "INSERT INTO mt5_broker_quotes (time, tenant_id, account_id, symbol, bid, ask)"
            " SELECT :t0 + n * interval '1 second', tenant_id, account_id, 'EURUSD', 1.1, 1.2"
            " FROM mt5_user_accounts, generate_series(1, 1500) n WHERE tenant_id = :b"),
            {"t0": T0, "b": b})
        conn.execute(sa.text(
            "SELECT count(compress_chunk(c, if_not_compressed => true))"
            " FROM timescaledb_information.hypertables h,"
            " show_chunks(format('%I.%I', h.hypertable_schema, h.hypertable_name)) c"
            " WHERE h.hypertable_schema = 'public' AND h.compression_enabled"))
        conn.commit()
        conn.execute(sa.text("ANALYZE"))
        conn.commit()
        # What the leak checks below must not find is really there to be found.
        compressed = conn.execute(sa.text(COMPRESSED_CHUNKS)).scalars().all()
        assert len(compressed) >= 4, compressed
        stats = conn.execute(sa.text(
            "SELECT count(*) FROM pg_stats WHERE schemaname = '_timescaledb_internal'"
            " AND tablename LIKE 'compress\\_hyper\\_%' AND attname = 'tenant_id'"
            " AND most_common_vals::text LIKE :b"), {"b": f"%{b}%"}).scalar_one()
        assert stats >= 1
    return a, b, marker


def _connect_as(db: Schema, role: str) -> psycopg.Connection[tuple[object, ...]]:
    """A fresh connection of a LOGIN member of ``role``, as an application would open."""
    with db.engine.connect() as admin:
        admin.commit()
    ensure_login(db.engine, role)
    url = login_url(db.url, role)
    return psycopg.connect(host=url.host, port=url.port, user=url.username,
                           password=url.password, dbname=url.database)


def leaks(conn: psycopg.Connection[tuple[object, ...]], tenant: str, marker: str) -> list[str]:
    """Every relation ``conn`` may SELECT from, in every schema it can use, whose rows (as
    text) mention ``marker``, with ``tenant`` set. Enumerated from the catalog."""
    conn.execute("SELECT set_config('app.current_tenant_id', %s, false), "
                 "set_config('search_path', 'mt5_tenant, public', false)", (tenant,))
    relations = conn.execute(
        """SELECT format('%I.%I', n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
             AND has_schema_privilege(n.oid, 'USAGE')
             AND has_table_privilege(c.oid, 'SELECT')
           ORDER BY 1"""
    ).fetchall()
    assert len(relations) > 100  # the catalogs and views of PostgreSQL and TimescaleDB
    found: list[str] = []
    for (rel,) in relations:
        try:
            with conn.transaction():
                hit = conn.execute(
                    f"SELECT EXISTS (SELECT 1 FROM {rel} r WHERE r::text LIKE %s)",
                    (f"%{marker}%",),
                ).fetchone()
        except psycopg.errors.InsufficientPrivilege:
            continue  # e.g. a view over something this role may not read
        except psycopg.Error as exc:  # a catalog view that cannot be read this way
            # XX001: TimescaleDB refuses to read some converted chunks directly
            if exc.sqlstate in ("0A000", "42809", "55000", "XX000", "XX001", "42883"):
                continue
            raise
        if hit and hit[0]:
            found.append(rel)
    return found


def test_a_fresh_app_login_runs_queries_and_sees_its_own_rows(
    db: Schema, two_tenants: tuple[str, str, str]
) -> None:
    a, _, _ = two_tenants
    app = role_engine(db.url, "mt5_app")
    try:
        with tenant_session(app, a) as s, s.begin():
            assert s.scalar(sa.select(sa.func.current_user())) == "suho_login_mt5_app"
            assert [u.user_id for u in s.scalars(sa.select(UserAccount))] == ["visible_a"]
            assert len(s.scalars(sa.select(BalanceHistory)).all()) == 1
            assert len(s.scalars(sa.select(BrokerQuote)).all()) == 1
            assert [o.comment for o in s.scalars(sa.select(TradeOrder))] == ["visible_a"]
            assert len(s.scalars(sa.select(TradingSignal)).all()) == 1
    finally:
        app.dispose()


@pytest.mark.parametrize("role", ["mt5_app", "mt5_readonly"])
def test_no_relation_a_tenant_login_can_reach_shows_another_tenant(
    db: Schema, two_tenants: tuple[str, str, str], role: str
) -> None:
    """B's marker (in its texts) and B's tenant id (a plain value in converted chunks and
    in their statistics) appear nowhere a tenant login of A can read."""
    a, b, marker = two_tenants
    with _connect_as(db, role) as conn:
        assert leaks(conn, a, marker) == []
        assert leaks(conn, a, b) == []


def test_the_leak_check_finds_a_chunk_granted_by_hand(
    db: Schema, two_tenants: tuple[str, str, str]
) -> None:
    """Protection: tenant roles hold no privilege on hypertables, hence none on chunks."""
    a, _, marker = two_tenants
    with db.engine.connect() as admin:
        # the chunk holding tenant B's order (tenants hash to different chunks)
        chunk = admin.execute(sa.text(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM public.mt5_trade_orders o"
            " JOIN pg_class c ON c.oid = o.tableoid JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE o.comment = :m"), {"m": marker}).scalar_one()
        admin.execute(sa.text(f"GRANT SELECT ON {chunk} TO mt5_app"))
        admin.commit()
        try:
            with _connect_as(db, "mt5_app") as conn:
                assert chunk in leaks(conn, a, marker)
        finally:
            admin.execute(sa.text(f"REVOKE SELECT ON {chunk} FROM mt5_app"))
            admin.commit()


def test_the_leak_check_finds_a_converted_chunk_granted_by_hand(
    db: Schema, two_tenants: tuple[str, str, str]
) -> None:
    """Protection: no grant on a converted (compressed) chunk either. Its tenant ids are
    plain values, and so are the statistics on them."""
    a, b, _ = two_tenants
    with db.engine.connect() as admin:
        chunk = admin.execute(sa.text(
            "SELECT format('%I.%I', c2.schema_name, c2.table_name)"
            " FROM _timescaledb_catalog.chunk c1"
            " JOIN _timescaledb_catalog.chunk c2 ON c2.id = c1.compressed_chunk_id"
            " JOIN _timescaledb_catalog.hypertable h ON h.id = c1.hypertable_id"
            " WHERE h.table_name = 'mt5_broker_quotes'")).scalars().all()
        admin.execute(sa.text(f"GRANT SELECT ON {', '.join(chunk)} TO mt5_app"))
        admin.commit()
        try:
            with _connect_as(db, "mt5_app") as conn:
                found = leaks(conn, a, b)
            assert set(found) & set(chunk), found
            assert "pg_catalog.pg_stats" in found
        finally:
            admin.execute(sa.text(f"REVOKE SELECT ON {', '.join(chunk)} FROM mt5_app"))
            admin.commit()


def test_a_grant_on_a_hypertable_reaches_its_converted_chunks(
    db: Schema, two_tenants: tuple[str, str, str]
) -> None:
    """docs/schema.md, trap 7, with the columnstore: TimescaleDB gives a hypertable's grants to
    its chunks and to their converted chunks, which have no row security either. So a grant
    on a time series is a grant on every tenant's rows: tenant roles hold none (checked by
    test_no_hypertable_or_chunk_grants_a_tenant_role_anything and by health_check())."""
    a, b, _ = two_tenants
    with db.engine.connect() as admin:
        admin.execute(sa.text("GRANT SELECT ON public.mt5_trade_orders TO mt5_readonly"))
        admin.commit()
        try:
            with _connect_as(db, "mt5_readonly") as conn:
                found = leaks(conn, a, b)
            assert "public.mt5_trade_orders" in found
            assert any(f.startswith("_timescaledb_internal.compress_hyper_") for f in found), found
            health = dict(admin.execute(sa.text(
                "SELECT component, status FROM health_check()")).all())
            assert health["tenant_grants"] == "error"
        finally:
            admin.execute(sa.text("REVOKE SELECT ON public.mt5_trade_orders FROM mt5_readonly"))
            admin.commit()


def test_no_hypertable_or_chunk_grants_a_tenant_role_anything(
    db: Schema, two_tenants: tuple[str, str, str]
) -> None:
    """Every hypertable TimescaleDB knows (ours, the aggregates' materializations, the
    converted chunks' hypertables) and every chunk, converted or not: no privilege for a
    tenant role, directly, through PUBLIC or through a role it is a member of."""
    with db.engine.connect() as admin:
        hypertables = admin.execute(sa.text(
            "SELECT format('%I.%I', schema_name, table_name)"
            " FROM _timescaledb_catalog.hypertable")).scalars().all()
        chunks = admin.execute(sa.text(
            "SELECT format('%I.%I', schema_name, table_name) FROM _timescaledb_catalog.chunk"
            )).scalars().all()
        relations = hypertables + chunks
        held = admin.execute(sa.text(
            "SELECT r, rel FROM unnest(CAST(:rels AS text[])) rel,"
            " unnest(ARRAY['mt5_app', 'mt5_readonly']) r"
            " WHERE has_table_privilege(r, rel::regclass,"
            "       'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')"),
            {"rels": relations}).all()
        kinds = admin.execute(sa.text(
            "SELECT count(*) FILTER (WHERE table_name LIKE '\\_materialized%'),"
            " count(*) FILTER (WHERE table_name LIKE '\\_compressed%')"
            " FROM _timescaledb_catalog.hypertable")).one()
        health = dict(admin.execute(sa.text(
            "SELECT component, status FROM health_check()")).all())
    # All of them, really: ours, six materializations, six columnstores, and chunks (how
    # many depends on what the tests before this one wrote: at least the fixture's rows').
    assert len(hypertables) >= 20 and kinds[0] >= 6 and kinds[1] >= 6 and chunks, relations
    assert held == []
    assert health["tenant_grants"] == "ok"


def test_the_tenant_views_are_the_only_layer_on_the_time_series(
    db: Schema, two_tenants: tuple[str, str, str]
) -> None:
    """A time series (trade orders) has no row-level security since revision 0013: its
    view's filter alone isolates, and without it the leak check sees tenant B. A plain tenant
    table (accounts) keeps two layers: either the view's filter or FORCE row-level security
    alone isolates."""
    a, b, marker = two_tenants
    with db.engine.connect() as admin:
        flags = dict(admin.execute(sa.text(
            "SELECT relname, relrowsecurity OR relforcerowsecurity FROM pg_class"
            " WHERE relname IN ('mt5_trade_orders', 'mt5_user_accounts')"
            " AND relnamespace = 'public'::regnamespace")).all())
        assert flags == {"mt5_trade_orders": False, "mt5_user_accounts": True}
        for table, twice in (("mt5_trade_orders", False), ("mt5_user_accounts", True)):
            original = admin.execute(sa.text(
                f"SELECT pg_get_viewdef('mt5_tenant.{table}'::regclass)")).scalar_one()
            restore = (f"CREATE OR REPLACE VIEW mt5_tenant.{table} WITH (security_barrier = "
                       f"true) AS {original.rstrip().rstrip(';')} WITH CASCADED CHECK OPTION")
            try:
                admin.execute(sa.text(f"ALTER VIEW mt5_tenant.{table} RESET (check_option)"))
                admin.execute(sa.text(f"CREATE OR REPLACE VIEW mt5_tenant.{table} AS "
                                      f"SELECT * FROM public.{table}"))
                admin.commit()
                with _connect_as(db, "mt5_app") as conn:
                    found = leaks(conn, a, marker)
                if twice:
                    assert found == []
                    admin.execute(sa.text(f"ALTER TABLE public.{table} NO FORCE ROW LEVEL "
                                          "SECURITY"))
                    admin.commit()
                    with _connect_as(db, "mt5_app") as conn:
                        found = leaks(conn, a, marker)
                assert f"mt5_tenant.{table}" in found
            finally:
                admin.rollback()
                if twice:
                    admin.execute(sa.text(f"ALTER TABLE public.{table} FORCE ROW LEVEL SECURITY"))
                admin.execute(sa.text(restore))
                admin.commit()
    del b


def test_writes_through_a_tenant_view_cannot_reach_another_tenant(
    db: Schema, two_tenants: tuple[str, str, str]
) -> None:
    a, b, _ = two_tenants
    with _connect_as(db, "mt5_app") as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, false), "
                     "set_config('search_path', 'mt5_tenant, public', false)", (a,))
        with pytest.raises(psycopg.errors.Error) as err, conn.transaction():
            conn.execute("UPDATE mt5_trade_orders SET tenant_id = %s", (b,))
        # the view's check option, or a chunk's constraint when B hashes to another chunk
        assert err.value.sqlstate in ("44000", "23514")
        assert conn.execute("UPDATE mt5_trade_orders SET comment = 'x' WHERE tenant_id = %s",
                            (b,)).rowcount == 0


def test_tenant_roles_cannot_name_the_tables_themselves(db: Schema) -> None:
    with _connect_as(db, "mt5_app") as conn:
        for table in ("public.mt5_trade_orders", "public.mt5_user_accounts"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(f"SELECT 1 FROM {table} LIMIT 1")


def test_eight_threads_on_a_pool_of_two_never_see_another_tenant(
    db: Schema, two_tenants: tuple[str, str, str]
) -> None:
    """8 threads x 1,000 transactions over a pool of 2 connections, alternating tenants."""
    a, b, _ = two_tenants
    app = role_engine(db.url, "mt5_app", pool_size=2, max_overflow=0, pool_timeout=60)
    errors: list[str] = []
    query = sa.text("SELECT DISTINCT tenant_id FROM mt5_account_balance_history")

    def work(n: int) -> None:
        try:
            for i in range(1000):
                tenant_id = (a, b)[(n + i) % 2]
                with tenant_session(app, tenant_id) as s, s.begin():
                    seen = s.scalars(query).all()
                    if seen != [tenant_id]:
                        errors.append(f"{tenant_id} saw {seen}")
        except Exception as exc:  # reported below, not swallowed
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        app.dispose()
    assert errors == []


def test_the_ingest_login_copies_into_every_hypertable(db: Schema) -> None:
    tenant_id = _tenant()
    app = role_engine(db.url, "mt5_app")
    try:
        with tenant_session(app, tenant_id) as s, s.begin():
            account = _account(tenant_id)
            s.add(account)
            s.flush()
            aid = account.account_id
    finally:
        app.dispose()
    rows = {
        "mt5_account_balance_history": (
            ["time", "tenant_id", "account_id", "balance", "equity", "margin", "free_margin",
             "currency"], [T0, tenant_id, aid, 1, 1, 0, 1, "USD"]),
        "mt5_broker_quotes": (
            ["time", "tenant_id", "account_id", "symbol", "bid", "ask"],
            [T0, tenant_id, aid, "EURUSD", Decimal("1.1"), Decimal("1.2")]),
        "mt5_ea_heartbeat": (["time", "tenant_id", "account_id", "status"],
                             [T0, tenant_id, aid, "online"]),
        "mt5_trade_orders": (
            ["time", "tenant_id", "account_id", "ticket", "symbol", "order_type", "volume",
             "price", "status"],
            [T0, tenant_id, aid, 7, "EURUSD", "buy", Decimal("0.1"), Decimal("1.1"), "open"]),
        "mt5_risk_events": (
            ["time", "tenant_id", "account_id", "event_type", "severity"],
            [T0, tenant_id, aid, "drawdown", "warning"]),
    }
    with _connect_as(db, "mt5_ingest") as conn:
        for table, (columns, values) in rows.items():
            with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
                cp.write_row(values)
        conn.commit()
    with db.engine.connect() as admin:
        for table in rows:
            assert admin.execute(sa.text(
                f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": tenant_id}
            ).scalar_one() == 1, table


KNOWN_JOB_FAILURE = "Failed: ('24000', 'cannot drop portal \"\" while it is being set up')"


def _run_job_now(admin: sa.Connection, job_id: int) -> None:
    admin.execute(sa.text("SELECT alter_job(:j, next_start => now())"), {"j": job_id})
    admin.commit()
    # The launcher looks for new databases only every timescaledb.bgw_launcher_poll_time
    # (a minute); start this database's scheduler now rather than wait for it.
    admin.execute(sa.text("SELECT _timescaledb_functions.start_background_workers()"))
    admin.commit()


def _wait_for_run(admin: sa.Connection, job_id: int, after: datetime) -> str:
    import time

    for _ in range(1200):
        # (last_run_started_at is -infinity before the first run: compared in SQL)
        row = admin.execute(sa.text(
            "SELECT last_run_status, last_run_started_at >= :after FROM "
            "timescaledb_information.job_stats WHERE job_id = :j"),
            {"j": job_id, "after": after}).first()
        admin.commit()
        if row is not None and row[1] and row[0] is not None:
            if row[0] != "Success":  # say why, from the scheduler's own log of errors
                errors = admin.execute(sa.text(
                    "SELECT sqlerrcode, err_message FROM timescaledb_information.job_errors"
                    " WHERE job_id = :j ORDER BY start_time DESC LIMIT 1"),
                    {"j": job_id}).first()
                return f"{row[0]}: {errors}"
            return str(row[0])
        time.sleep(0.1)
    raise AssertionError(f"the scheduler did not run job {job_id} within 120 s")


def test_the_scheduler_runs_a_refresh_and_a_retention_policy(
    db: Schema, two_tenants: tuple[str, str, str]
) -> None:
    """Policies run by TimescaleDB's own background workers, not by CALL run_job."""
    with db.engine.connect() as admin:
        old = datetime.now(UTC) - timedelta(days=400)
        account = admin.execute(sa.text(
            "SELECT account_id, tenant_id FROM mt5_user_accounts LIMIT 1")).one()
        admin.execute(sa.text(
            "INSERT INTO mt5_ea_heartbeat (time, tenant_id, account_id, status) "
            "VALUES (:t, :tenant, :a, 'online')"),
            {"t": old, "tenant": account.tenant_id, "a": account.account_id})
        admin.execute(sa.text(
            "INSERT INTO mt5_account_balance_history (time, tenant_id, account_id, balance, "
            "equity, margin, free_margin, currency) VALUES (now() - interval '2 hours', "
            ":tenant, :a, 5, 5, 0, 5, 'USD')"),
            {"tenant": account.tenant_id, "a": account.account_id})
        admin.commit()
        jobs = dict(admin.execute(sa.text(
            "SELECT proc_name || ':' || hypertable_name, job_id FROM "
            "timescaledb_information.jobs WHERE hypertable_name IN "
            "('mt5_ea_heartbeat', 'mt5_agg_balance_hourly')")).all())
        retention = jobs["policy_retention:mt5_ea_heartbeat"]
        refresh = jobs["policy_refresh_continuous_aggregate:mt5_agg_balance_hourly"]
        started = admin.execute(sa.text("SELECT now()")).scalar_one()
        admin.commit()
        _run_job_now(admin, retention)
        _run_job_now(admin, refresh)
        outcomes = {_wait_for_run(admin, job, started) for job in (retention, refresh)}
        if outcomes == {KNOWN_JOB_FAILURE}:
            # Every background job of an unpatched TimescaleDB 2.28.3 fails this way on
            # PostgreSQL 15.20 (docs/schema.md, trap 13); `make setup` builds it with
            # scripts/timescaledb-patches/, so only an external server can get here
            # ($SUHO_TEST_TIMESCALE_URL). Any other outcome is judged below.
            pytest.xfail("TimescaleDB 2.28.3 background jobs fail on this PostgreSQL minor: "
                         + KNOWN_JOB_FAILURE)
        assert outcomes == {"Success"}
        assert admin.execute(sa.text(
            "SELECT count(*) FROM mt5_ea_heartbeat WHERE time < now() - interval '30 days'")
        ).scalar_one() == 0
        assert admin.execute(sa.text(
            "SELECT count(*) FROM mt5_agg_balance_hourly WHERE tenant_id = :t"),
            {"t": account.tenant_id}).scalar_one() >= 1


def test_the_time_series_have_a_columnstore_and_no_row_security(db: Schema) -> None:
    """Revision 0013: TimescaleDB refuses a columnstore on a table with row security
    (docs/schema.md, trap 3), and each protection now stands on its own: the time series
    have a columnstore and no row security, the plain tenant tables keep ENABLE + FORCE."""
    with db.engine.connect() as admin:
        columnstore = set(admin.execute(sa.text(
            "SELECT hypertable_name FROM timescaledb_information.hypertables"
            " WHERE hypertable_schema = 'public' AND compression_enabled")).scalars())
        protected = dict(admin.execute(sa.text(
            "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
            " AND relname IN ('mt5_user_accounts', 'mt5_account_settings', 'mt5_user_consents',"
            " 'mt5_compliance_reports', 'mt5_broker_quotes', 'mt5_trade_orders')")).all())
        with pytest.raises(sa.exc.DBAPIError) as err:
            admin.execute(sa.text("ALTER TABLE mt5_broker_quotes ENABLE ROW LEVEL SECURITY"))
        admin.rollback()
    assert columnstore == {"mt5_account_balance_history", "mt5_broker_quotes",
                           "mt5_ea_heartbeat", "mt5_trade_orders", "mt5_trading_signals",
                           "mt5_audit_log"}
    assert protected == {"mt5_user_accounts": True, "mt5_account_settings": True,
                         "mt5_user_consents": True, "mt5_compliance_reports": True,
                         "mt5_broker_quotes": False, "mt5_trade_orders": False}
    assert "columnstore" in str(err.value.orig)


def test_session_helpers_are_tenant_scoped(db: Schema) -> None:
    """A tenant session leaves neither the tenant nor its search path on the connection."""
    app = role_engine(db.url, "mt5_app", pool_size=1, max_overflow=0)
    try:
        with Session(app) as s, s.begin():
            s.execute(sa.text("SET search_path = public"))  # a session default of its own
        with tenant_session(app, "whoever") as s, s.begin():
            assert s.scalar(sa.text("SHOW search_path")) == "mt5_tenant, public"
        with Session(app) as s, s.begin():
            assert s.scalar(sa.text(
                "SELECT coalesce(current_setting('app.current_tenant_id', true), '')")) == ""
            assert s.scalar(sa.text("SHOW search_path")) == "public"
    finally:
        app.dispose()


def _notices_of_a_leaky_function(db: Schema, tenant: str) -> list[str]:
    """What a tenant login's own cheap function sees when asked to filter the tenant view:
    a temporary function that reports every value it is given (the classic leak past a view
    that is not a security barrier)."""
    seen: list[str] = []
    with _connect_as(db, "mt5_app") as conn:
        conn.add_notice_handler(lambda diag: seen.append(diag.message_primary or ""))
        conn.execute("SELECT set_config('app.current_tenant_id', %s, false), "
                     "set_config('search_path', 'mt5_tenant, public', false)", (tenant,))
        conn.execute(
            "CREATE FUNCTION pg_temp.peek(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001"
            " AS $f$ BEGIN RAISE NOTICE 'saw %', $1; RETURN true; END $f$")
        conn.execute("SELECT count(*) FROM mt5_trade_orders WHERE pg_temp.peek(comment)")
    return seen


def test_a_leaky_function_sees_only_the_tenants_rows_through_the_barrier(
    db: Schema, two_tenants: tuple[str, str, str]
) -> None:
    """Protection: security_barrier. Without it (and the time series have no row security
    behind their views since revision 0013) the planner runs the caller's cheap function
    before the view's tenant filter, and it sees tenant B."""
    a, b, marker = two_tenants
    table = "mt5_trade_orders"
    with db.engine.connect() as admin:
        # A row of B in the rowstore: in converted chunks the tenant filter goes to the
        # compressed batches (a segmentby column) before any row reaches the function.
        admin.execute(sa.text(
            "INSERT INTO mt5_trade_orders (tenant_id, account_id, ticket, symbol, order_type,"
            " volume, price, status, comment) SELECT tenant_id, account_id, 99, 'EURUSD',"
            " 'buy', 0.1, 1.1, 'open', :m FROM mt5_user_accounts WHERE tenant_id = :b"),
            {"m": marker, "b": b})
        admin.commit()
    assert not any(marker in n for n in _notices_of_a_leaky_function(db, a))
    with db.engine.connect() as admin:
        try:
            admin.execute(sa.text(f"ALTER VIEW mt5_tenant.{table} SET (security_barrier = false)"))
            admin.commit()
            assert any(marker in n for n in _notices_of_a_leaky_function(db, a))
        finally:
            admin.rollback()
            admin.execute(sa.text(f"ALTER VIEW mt5_tenant.{table} SET (security_barrier = true)"))
            admin.commit()


def test_an_error_message_does_not_carry_another_tenants_value_through_the_barrier(
    db: Schema, two_tenants: tuple[str, str, str]
) -> None:
    """Built-in functions leak too: a cast that fails names the value it could not cast.
    Behind the barrier a cast (not leakproof) only ever sees the tenant's own rows: it fails
    on A's own comment, and when A's rows are filtered out first it never fails at all,
    although B's comment would fail it."""
    a, _, marker = two_tenants

    def run(query: str) -> str:
        with _connect_as(db, "mt5_app") as conn:
            conn.execute("SELECT set_config('app.current_tenant_id', %s, false), "
                         "set_config('search_path', 'mt5_tenant, public', false)", (a,))
            try:
                return str(conn.execute(query).fetchall())
            except psycopg.errors.InvalidTextRepresentation as exc:
                return str(exc)

    failed = run("SELECT count(*) FROM mt5_trade_orders WHERE CAST(comment AS integer) > 0")
    assert "visible_a" in failed and marker not in failed
    assert run("SELECT count(*) FROM mt5_trade_orders WHERE comment <> 'visible_a'"
               " AND CAST(comment AS integer) > 0") == "[(0,)]"
