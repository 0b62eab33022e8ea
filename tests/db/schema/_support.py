"""Shared by the schema tests of both server lanes (native PostgreSQL and the TimescaleDB
engine): running Alembic, acting as a role with a tenant, two tenants' worth of data, and a
catalog snapshot for up -> down -> up comparisons.

Everything here keeps to one connection at a time, which the single-backend engine needs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine, make_url

from suho_mt5.commands import db as db_commands
from suho_mt5.db import Edition, make_engine
from suho_mt5.db import is_single_backend as engine_is_single_backend

REPO_ROOT = Path(__file__).resolve().parents[3]
ALEMBIC_INI = REPO_ROOT / "alembic.ini"

TENANT_A = "tenant_a"
TENANT_B = "tenant_b"
TENANT_ROLES = ("mt5_app", "mt5_readonly")
ALL_ROLES = ("mt5_owner", "mt5_maintenance", "mt5_app", "mt5_readonly", "mt5_ingest",
             "mt5_compliance")
TENANT_TABLES = (
    "mt5_user_accounts",
    "mt5_account_balance_history",
    "mt5_broker_quotes",
    "mt5_ea_heartbeat",
    "mt5_trade_orders",
    "mt5_trading_signals",
    "mt5_signal_executions",
    "mt5_risk_events",
    "mt5_user_consents",
    "mt5_compliance_reports",
    "mt5_account_settings",
)
TIME_SERIES_TABLES = (
    "mt5_account_balance_history",
    "mt5_broker_quotes",
    "mt5_ea_heartbeat",
    "mt5_trade_orders",
    "mt5_trading_signals",
    "mt5_signal_executions",
    "mt5_audit_log",
    "mt5_risk_events",
)
ALL_TABLES = (*TENANT_TABLES, "mt5_audit_log")
# The tenant tables that keep row-level security (revision 0013: the time series are
# isolated by their views and grants alone).
RLS_TABLES = tuple(t for t in TENANT_TABLES if t not in TIME_SERIES_TABLES)
# tenant view -> raw aggregate
AGGREGATES = {
    "mt5_balance_hourly": "mt5_agg_balance_hourly",
    "mt5_pnl_daily": "mt5_agg_pnl_daily",
    "mt5_pnl_weekly": "mt5_agg_pnl_weekly",
    "mt5_quotes_ohlc_1m": "mt5_agg_quotes_ohlc_1m",
    "mt5_quotes_ohlc_1h": "mt5_agg_quotes_ohlc_1h",
    "mt5_quotes_ohlc_1d": "mt5_agg_quotes_ohlc_1d",
}
SEED_RETENTION = {
    "mt5_account_balance_history": "2 years",
    "mt5_broker_quotes": "90 days",
    "mt5_ea_heartbeat": "30 days",
    "mt5_trade_orders": "7 years",
    "mt5_trading_signals": "90 days",
    "mt5_signal_executions": "2 years",
    "mt5_audit_log": "7 years",
    "mt5_risk_events": "2 years",
}


# database URL (password hidden) -> the edition the backend fixture handed it out for
_EDITIONS: dict[str, Edition] = {}


def register_edition(url: str, edition: Edition) -> str:
    """Record that ``url`` is to be built as ``edition``; :func:`alembic` then passes it.

    A server with TimescaleDB installed but not preloaded refuses to guess (the plain
    PostgreSQL lane is such a server once ``make setup`` has built TimescaleDB)."""
    _EDITIONS[make_url(url).render_as_string(hide_password=True)] = edition
    return url


def registered_edition(engine: Engine) -> Edition | None:
    return _EDITIONS.get(engine.url.render_as_string(hide_password=True))


def _sorted_acl(column: str) -> str:
    """An ACL as text with its items sorted: grants given in another order are the same."""
    return (f"coalesce((SELECT string_agg(x::text, ',' ORDER BY x::text)"
            f" FROM unnest({column}) x), '')")


def schema_engine(url: str, **kwargs: Any) -> Engine:
    """``make_engine(url, **kwargs)``. On the single-backend engine every new connection
    starts from a clean session with PostgreSQL's default ``search_path``."""
    return make_engine(url, **kwargs)


def alembic(engine: Engine, cmd: str, *args: Any, edition: Edition | None = None,
            **kwargs: Any) -> None:
    """Run ``alembic <cmd>`` on a connection of ``engine`` (committed at the end)."""
    config = Config(str(ALEMBIC_INI))
    edition = edition or registered_edition(engine)
    if edition is None and not is_single_backend(engine):
        # The plain test server has TimescaleDB's files (make setup builds them) but does
        # not preload it, and then the migrations refuse to guess: name the plain edition.
        edition = Edition.POSTGRESQL
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        if edition is not None:
            config.attributes["suho_edition"] = edition
        getattr(command, cmd)(config, *args, **kwargs)
        conn.commit()


@contextmanager
def migrated_schema(url: str, edition: Edition) -> Iterator[Schema]:
    """The database at ``url`` migrated to head, as a :class:`Schema`; engine disposed after."""
    engine = schema_engine(url)
    try:
        alembic(engine, "upgrade", "head", edition=edition)
        yield Schema(url=url, engine=engine, edition=edition)
    finally:
        engine.dispose()


LOGIN_PASSWORD = "suho-test-login"
_LOGIN_ENGINES: dict[tuple[str, str], Engine] = {}


def is_single_backend(target: str | sa.URL | Engine) -> bool:
    """The PGlite engine: one superuser backend, no logins (a URL says so in its query; an
    engine from make_engine() remembers it)."""
    if isinstance(target, Engine):
        return engine_is_single_backend(target)
    return make_url(target).query.get("single_backend") == "true"


def login_name(role: str) -> str:
    """The test login that is a member of ``role`` (and of nothing else). Not named
    ``mt5_*``: the schema's own roles are those, and tests list them by that prefix."""
    return f"suho_login_{role}"


def ensure_login(admin: Engine, role: str) -> str:
    """Create (once per cluster) a LOGIN role that is a member of ``role``; return its name.

    Applications connect as their own login in a role's group; so do the tests (never
    ``SET ROLE`` from a superuser session, which hides what a real login cannot do)."""
    name = login_name(role)
    with admin.connect() as conn:
        conn.exec_driver_sql(
            f"""DO $t$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
                    CREATE ROLE {name} LOGIN PASSWORD '{LOGIN_PASSWORD}' IN ROLE {role};
                END IF;
                -- Role attributes are not inherited through membership: a login of a role
                -- that bypasses row-level security needs BYPASSRLS itself (docs/schema.md).
                IF (SELECT rolbypassrls FROM pg_roles WHERE rolname = '{role}') THEN
                    ALTER ROLE {name} BYPASSRLS;
                END IF;
                -- What docs/schema.md tells DBAs to give application logins.
                IF '{role}' IN ('mt5_app', 'mt5_readonly') THEN
                    ALTER ROLE {name} SET search_path = mt5_tenant, public;
                END IF;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
            END $t$"""
        )
        conn.commit()
    return name


def login_url(admin_url: str | sa.URL, role: str) -> sa.URL:
    """The URL of the database at ``admin_url`` for the test login of ``role``."""
    return make_url(admin_url).set(username=login_name(role), password=LOGIN_PASSWORD)


def login_engine(admin: Engine, role: str) -> Engine:
    """An engine that logs in as the test login of ``role`` (cached per database and role)."""
    key = (admin.url.render_as_string(hide_password=False), role)
    engine = _LOGIN_ENGINES.get(key)
    if engine is None:
        ensure_login(admin, role)
        engine = make_engine(login_url(admin.url, role).render_as_string(hide_password=False))
        _LOGIN_ENGINES[key] = engine
    return engine


def set_tenant_sql(conn: Connection, tenant: str) -> None:
    """Set the tenant transaction-locally, without validating (tests also try malformed
    tenants). The search path is the role's: tenant logins have mt5_tenant first."""
    conn.execute(sa.text("SELECT set_config('app.current_tenant_id', :t, true)"), {"t": tenant})


@contextmanager
def transaction(engine: Engine, *, commit: bool) -> Iterator[Connection]:
    """A connection of ``engine`` in one transaction, committed at the end if ``commit``,
    rolled back otherwise and on any error."""
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            yield conn
        except BaseException:
            trans.rollback()
            raise
        if commit:
            trans.commit()
        else:
            trans.rollback()


@contextmanager
def role_connection(engine: Engine, role: str) -> Iterator[Connection]:
    """A connection acting as ``role`` across transactions: a fresh connection of its test
    login on a native server; ``SET ROLE`` (reset afterwards) on the PGlite engine."""
    if not is_single_backend(engine):
        with login_engine(engine, role).connect() as conn:
            yield conn
        return
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SET ROLE {role}")
        conn.exec_driver_sql("SET search_path = mt5_tenant, public")
        conn.commit()
        try:
            yield conn
        finally:
            conn.rollback()
            conn.exec_driver_sql("RESET ROLE")
            conn.exec_driver_sql("RESET search_path")
            conn.commit()


@contextmanager
def session(engine: Engine, role: str | None = None, tenant: str | None = None, *,
            commit: bool = False) -> Iterator[Connection]:
    """One transaction as ``role`` (None: the superuser) with the tenant set transaction-
    locally (docs/schema.md, trap 6); rolled back unless ``commit``.

    On a native server ``role`` is a fresh connection of a LOGIN member of that role; on the
    single-backend PGlite engine, which has no logins, ``SET LOCAL ROLE``."""
    single = is_single_backend(engine)
    target = engine if role is None or single else login_engine(engine, role)
    with transaction(target, commit=commit) as conn:
        if role is not None and single:
            conn.exec_driver_sql(f"SET LOCAL ROLE {role}")
        if role in TENANT_ROLES:
            # What docs/schema.md tells DBAs to give application logins:
            # ALTER ROLE <login> SET search_path = mt5_tenant, public.
            conn.exec_driver_sql("SET LOCAL search_path = mt5_tenant, public")
        if tenant is not None:
            set_tenant_sql(conn, tenant)
        yield conn


@dataclass
class TenantData:
    """What :func:`seed_two_tenants` inserted for one tenant."""

    tenant: str
    account_id: uuid.UUID
    signal_id: uuid.UUID
    rows: dict[str, int] = field(default_factory=dict)


def seed_two_tenants(engine: Engine, *, now: datetime | None = None) -> dict[str, TenantData]:
    """Rows in every table for TENANT_A and TENANT_B, written as ``mt5_app`` of each tenant
    (so the defaults and triggers run as in production), dated within the last three days
    and at least two hours old (older than every aggregate's refresh end offset), then
    ``CALL mt5_maintain()`` so the aggregates are refreshed."""
    now = now or datetime.now(UTC).replace(microsecond=0)
    base = now - timedelta(hours=5)
    out: dict[str, TenantData] = {}
    for n, tenant in enumerate((TENANT_A, TENANT_B)):
        account_id = uuid.uuid4()
        signal_id = uuid.uuid4()
        data = TenantData(tenant, account_id, signal_id)
        with session(engine, "mt5_app", tenant, commit=True) as conn:
            x = conn.execute
            x(sa.text(
                "INSERT INTO mt5_user_accounts (account_id, user_id, broker_name, broker_server,"
                " mt5_login, mt5_account_number, account_type, api_key_hash)"
                " VALUES (:a, :u, 'ICMarkets', 'ICMarkets-Demo', :login, '12345', 'demo',"
                " NULL)"), {"a": account_id, "u": f"user_{tenant}", "login": 1000 + n})
            balance_rows = [
                {"t": base + timedelta(minutes=10 * i), "a": account_id,
                 "b": Decimal("10000.0000") + i * (n + 1), "e": Decimal("10010.5000") - i,
                 "m": Decimal("100") if i % 2 else Decimal("0"),
                 "ml": Decimal("10010.5") if i % 2 else Decimal("0"), "s": i}
                for i in range(18)
            ]
            x(sa.text(
                "INSERT INTO mt5_account_balance_history (time, account_id, balance, equity,"
                " margin, margin_level, sequence) VALUES (:t, :a, :b, :e, :m, :ml, :s)"),
              balance_rows)
            quote_rows = [
                {"t": base + timedelta(seconds=97 * i), "a": account_id,
                 "sym": "EURUSD" if i % 3 else "XAUUSD",
                 "bid": Decimal("1.09530000") + Decimal(i) / 10**5 * (n + 1),
                 "ask": Decimal("1.09545000") + Decimal(i) / 10**5 * (n + 1),
                 "dev": Decimal(i % 7 - 3) / 10, "v": Decimal("1.5"), "s": i}
                for i in range(150)
            ]
            x(sa.text(
                "INSERT INTO mt5_broker_quotes (time, account_id, symbol, bid, ask, volume,"
                " polygon_bid, polygon_ask, price_deviation, sequence)"
                " VALUES (:t, :a, :sym, :bid, :ask, :v, :bid, :ask, :dev, :s)"), quote_rows)
            x(sa.text(
                "INSERT INTO mt5_ea_heartbeat (time, account_id, status, ea_version,"
                " terminal_build, terminal_connected, trade_allowed, ping_ms, sequence)"
                " VALUES (:t, :a, :st, '1.0.0', 4410, true, true, 12, :s)"),
              [{"t": base + timedelta(minutes=i), "a": account_id,
                "st": "online" if i < 9 else ("offline" if n else "degraded"), "s": i}
               for i in range(10)])
            x(sa.text(
                "INSERT INTO mt5_trading_signals (time, signal_id, account_id, symbol, action,"
                " entry_price, stop_loss, take_profit, volume, confidence_score, model_version,"
                " strategy_name, polygon_ask) VALUES (:t, :sid, :a, 'EURUSD', 'BUY', 1.0953,"
                " 1.0932, 1.0982, 0.1, 0.85, 'v1', 'trend', 1.09531)"),
              {"t": base, "sid": signal_id, "a": account_id})
            x(sa.text(
                "INSERT INTO mt5_signal_executions (time, signal_id, account_id, ticket,"
                " actual_entry_price, slippage, result_code, spread_at_execution,"
                " market_volatility, sequence) VALUES (:t, :sid, :a, :ticket, 1.09535, 0.00005,"
                " 10009, 0.00015, 0.0042, 1)"),
              {"t": base + timedelta(seconds=2), "sid": signal_id, "a": account_id,
               "ticket": 5000 + n})
            order_rows = [
                {"t": base - timedelta(hours=8 * i), "a": account_id,
                 "ticket": 5000 + n + 10 * i, "pos": 5000 + n + 10 * i,
                 "sym": "EURUSD" if i % 2 else "XAUUSD", "v": Decimal("0.10") * (i + 1),
                 "p": Decimal("1.0960"), "pr": Decimal(i * 7 - 10) * (n + 1),
                 "c": Decimal("-0.7"), "sw": Decimal("-0.1"),
                 "st": "closed" if i % 3 != 2 else "open", "s": i,
                 "sid": signal_id if i == 0 else None}
                for i in range(9)
            ]
            x(sa.text(
                "INSERT INTO mt5_trade_orders (time, account_id, ticket, position_id, symbol,"
                " order_type, deal_type, volume, price, profit, commission, swap, status,"
                " magic_number, signal_id, profit_pips, sequence) VALUES (:t, :a, :ticket, :pos,"
                " :sym, 'buy', 'sell', :v, :p, :pr, :c, :sw, :st, 42, :sid, 7.0, :s)"),
              order_rows)
            x(sa.text(
                "INSERT INTO mt5_risk_events (time, account_id, event_type, severity, details,"
                " sequence) VALUES (:t, :a, 'drawdown_limit', 'warning', '{\"dd\": 0.05}', 1)"),
              {"t": base + timedelta(minutes=30), "a": account_id})
            x(sa.text(
                "INSERT INTO mt5_user_consents (user_id, account_id, consent_type, granted)"
                " VALUES (:u, :a, 'ml_training', true)"), {"u": f"user_{tenant}", "a": account_id})
            x(sa.text("INSERT INTO mt5_account_settings (account_id, name, value)"
                      " VALUES (:a, 'risk_pct', '1.50')"), {"a": account_id})
            x(sa.text(
                "INSERT INTO mt5_audit_log (event_type, actor, account_id, payload)"
                " VALUES ('account.created', 'test', :a, '{\"by\": \"seed\"}')"),
              {"a": account_id})
        with session(engine, "mt5_compliance", commit=True) as conn:
            conn.execute(sa.text(
                "INSERT INTO mt5_compliance_reports (tenant_id, report_type, report_period_start,"
                " report_period_end, report_data) VALUES (:t, 'risk_summary', :s, :e, '{}')"),
                {"t": tenant, "s": base - timedelta(days=1), "e": base})
        with session(engine) as conn:
            for table in ALL_TABLES:
                data.rows[table] = conn.execute(
                    sa.text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"), {"t": tenant}
                ).scalar_one()
        out[tenant] = data
    maintain(engine)
    return out


def maintain(engine: Engine, *, attempts: int = 100) -> None:
    """``CALL mt5_maintain()`` as the maintenance role, outside a transaction block:
    refreshes the aggregates (and applies retention) on every edition.

    On native TimescaleDB the scheduler runs the same refresh jobs in the background, and a
    refresh that finds one in progress fails with SQLSTATE 55P03 (lock not available): on a
    native server this goes through ``suho_mt5.commands.db.maintain`` as the maintenance
    login, which tries again; the PGlite engine has no scheduler."""
    import time

    if not is_single_backend(engine):
        ensure_login(engine, "mt5_maintenance")
        url = login_url(engine.url, "mt5_maintenance").render_as_string(hide_password=False)
        db_commands.maintain(url)
        return
    for attempt in range(attempts):
        try:
            with role_connection(engine, "mt5_maintenance") as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "CALL mt5_maintain()")
            return
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03" or attempt == attempts - 1:
                raise
            time.sleep(0.1)


_INTERNAL_IDS = re.compile(
    r"(_materialized_hypertable_|_hyper_|cagg_watermark\(|invalidation_trigger\(')\d+"
)


def catalog_snapshot(conn: Connection) -> dict[str, Any]:
    """What up -> down -> up must reproduce: tables, columns, constraints, indexes, policies,
    RLS flags, grants, owners, functions, views, triggers, roles and TimescaleDB jobs and
    dimensions, without OIDs or job ids."""
    def rows(sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in conn.execute(sa.text(sql)).all()]

    mt5 = "(c.relname LIKE 'mt5\\_%' OR c.relname LIKE 'v\\_%')"
    snap: dict[str, Any] = {
        "relations": rows(
            "SELECT c.relname, c.relkind, c.relowner::regrole::text, c.relrowsecurity,"
            f" c.relforcerowsecurity, {_sorted_acl('c.relacl')} FROM pg_class c"
            f" WHERE c.relnamespace = 'public'::regnamespace AND {mt5} AND c.relkind <> 'i'"
            " ORDER BY 1"),
        "columns": rows(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,"
            f" pg_get_expr(d.adbin, d.adrelid), {_sorted_acl('a.attacl')} FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid"
            " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
            f" WHERE c.relnamespace = 'public'::regnamespace AND {mt5} AND a.attnum > 0"
            " AND NOT a.attisdropped ORDER BY 1, 2"),
        "constraints": rows(
            "SELECT c.relname, k.conname, pg_get_constraintdef(k.oid) FROM pg_constraint k"
            f" JOIN pg_class c ON c.oid = k.conrelid WHERE c.relnamespace = 'public'::regnamespace"
            f" AND {mt5} ORDER BY 1, 2"),
        "indexes": rows(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " AND tablename LIKE 'mt5\\_%' ORDER BY 1, 2"),
        "policies": rows(
            "SELECT tablename, policyname, permissive, roles::text, cmd, qual, with_check"
            " FROM pg_policies WHERE schemaname = 'public' ORDER BY 1, 2"),
        "functions": rows(
            "SELECT p.oid::regprocedure::text, p.proowner::regrole::text, p.prosecdef,"
            f" coalesce(p.proconfig::text, ''), {_sorted_acl('p.proacl')}, md5(p.prosrc)"
            " FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace"
            " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid"
            "                 AND d.deptype = 'e') ORDER BY 1"),
        # Continuous aggregates name their internal materialization hypertable by id.
        "views": [
            (name, _INTERNAL_IDS.sub(r"\1N", definition))
            for name, definition in rows(
                "SELECT c.relname, pg_get_viewdef(c.oid) FROM pg_class c"
                f" WHERE c.relnamespace = 'public'::regnamespace AND {mt5}"
                " AND c.relkind IN ('v', 'm') ORDER BY 1")
        ],
        "triggers": [
            (table, name, _INTERNAL_IDS.sub(r"\1N", definition))
            for table, name, definition in rows(
                "SELECT c.relname, t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t"
                " JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
                f" AND c.relnamespace = 'public'::regnamespace AND {mt5} ORDER BY 1, 2")
        ],
        "roles": rows(
            "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,"
            " rolbypassrls FROM pg_roles WHERE rolname LIKE 'mt5\\_%' ORDER BY 1"),
        "catalog": rows(
            "SELECT relation_schema, relation_name, kind, time_column, chunk_time_interval,"
            " tenant_column, tenant_partitions, source_relation, bucket_width, tenant_view,"
            " retention, refresh_start_offset, refresh_end_offset, refresh_schedule"
            " FROM mt5_timeseries_catalog ORDER BY 1, 2")
        if conn.execute(sa.text("SELECT to_regclass('public.mt5_timeseries_catalog')")).scalar()
        else [],
    }
    if conn.execute(sa.text("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
                    ).scalar_one():
        snap["jobs"] = rows(
            "SELECT proc_name, owner::text, hypertable_name, schedule_interval::text,"
            " (config - 'mat_hypertable_id' - 'hypertable_id')::text"
            " FROM timescaledb_information.jobs WHERE hypertable_name LIKE 'mt5\\_%'"
            " ORDER BY 3, 1")
        snap["dimensions"] = rows(
            "SELECT hypertable_name, dimension_number, column_name, dimension_type,"
            " time_interval::text, num_partitions FROM timescaledb_information.dimensions"
            " WHERE hypertable_name LIKE 'mt5\\_%' ORDER BY 1, 2")
        snap["internal_schema_acl"] = rows(
            f"SELECT {_sorted_acl('nspacl')} FROM pg_namespace"
            " WHERE nspname = '_timescaledb_internal'")
    return snap


def leftovers(conn: Connection) -> list[tuple[Any, ...]]:
    """Every suho-mt5 object still in the database (after ``downgrade base``)."""
    return [tuple(r) for r in conn.execute(sa.text(
        "SELECT 'relation', relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
        "   AND (relname LIKE 'mt5\\_%' OR relname LIKE 'v\\_%')"
        " UNION ALL SELECT 'function', p.oid::regprocedure::text FROM pg_proc p"
        "   WHERE p.pronamespace = 'public'::regnamespace"
        "     AND (p.proname LIKE 'mt5\\_%' OR p.proname IN ('health_check', 'generate_api_key',"
        "          'hash_api_key', 'verify_api_key'))"
        " UNION ALL SELECT 'policy', policyname FROM pg_policies WHERE schemaname = 'public'"
        " UNION ALL SELECT 'trigger', tgname FROM pg_trigger WHERE tgname LIKE 'mt5\\_%'"
        " ORDER BY 1, 2")).all()]


@dataclass
class Schema:
    """A database migrated to head, as the lane's fixtures hand it to the tests."""

    url: str
    engine: Engine
    edition: Edition


def psql_binary() -> str:
    found = shutil.which("psql") or next(
        (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))), None)
    assert found, "psql is needed (Debian: postgresql-client, installed with postgresql)"
    return found


def psql_apply(url: str, files: list[Path]) -> None:
    """``psql -X -f`` each file in order, one psql run per file, as a DBA would."""
    parsed = make_url(url)
    env = {**os.environ, "PGPASSWORD": parsed.password or "", "PGSSLMODE": "disable"}
    for path in files:
        result = subprocess.run(
            [psql_binary(), "-X", "-q", "-h", parsed.host or "127.0.0.1",
             "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres",
             "-d", parsed.database or "postgres", "-f", str(path)],
            env=env, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, f"psql -f {path} failed:\n{result.stderr[-4000:]}"
