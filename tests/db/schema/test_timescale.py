"""TimescaleDB specifics: hypertables, jobs, chunks, continuous aggregates and the traps of
docs/schema.md ("Known traps") that only TimescaleDB can show."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.engine import Connection

import suho_mt5.migrations.operations  # noqa: F401  (registers the operations)
from suho_mt5.db import Edition
from suho_mt5.migrations.operations import bucket_expr
from tests.db.schema._support import (
    SEED_RETENTION,
    TENANT_A,
    TENANT_B,
    TIME_SERIES_TABLES,
    Schema,
    TenantData,
    session,
)

pytestmark = pytest.mark.engines("timescale", "pglite")


CHUNK_INTERVALS = {
    "mt5_account_balance_history": (timedelta(days=7), 4),
    "mt5_broker_quotes": (timedelta(days=1), 4),
    "mt5_ea_heartbeat": (timedelta(days=1), 4),
    "mt5_trade_orders": (timedelta(days=30), 2),
    "mt5_trading_signals": (timedelta(days=7), 2),
    "mt5_signal_executions": (timedelta(days=30), 2),
    "mt5_audit_log": (timedelta(days=90), 2),
    "mt5_risk_events": (timedelta(days=90), 2),
}


def rows(conn: Connection, sql: str, **params: Any) -> list[Any]:
    return list(conn.execute(sa.text(sql), params).all())


def autocommit(schema: Schema) -> Iterator[Connection]:
    with schema.engine.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


def test_every_time_series_table_is_a_hypertable_with_a_tenant_dimension(schema: Schema) -> None:
    with session(schema.engine) as conn:
        dims = rows(conn, "SELECT hypertable_name, column_name, dimension_type, time_interval,"
                          " num_partitions FROM timescaledb_information.dimensions"
                          " WHERE hypertable_schema = 'public' ORDER BY 1, dimension_number")
        compressed = rows(conn, "SELECT hypertable_name FROM timescaledb_information.hypertables"
                                " WHERE compression_enabled")
    by_table: dict[str, list[Any]] = {}
    for d in dims:
        by_table.setdefault(d.hypertable_name, []).append(d)
    assert set(by_table) == set(TIME_SERIES_TABLES)
    for table, (interval, partitions) in CHUNK_INTERVALS.items():
        time_dim, tenant_dim = by_table[table]
        assert (time_dim.column_name, time_dim.dimension_type, time_dim.time_interval) == (
            "time", "Time", interval)
        assert (tenant_dim.column_name, tenant_dim.dimension_type, tenant_dim.num_partitions) == (
            "tenant_id", "Space", partitions)
    # Revision 0013: the time series have no row-level security, so they can have a
    # columnstore (the two exclude each other, trap 3); TimescaleDB 2.23 of the PGlite engine
    # builds the same. Executions and risk events stay in the rowstore.
    assert {c.hypertable_name for c in compressed} == set(TIME_SERIES_TABLES) - {
        "mt5_signal_executions", "mt5_risk_events"}


def test_jobs_carry_the_seeds_retention_periods_and_the_refresh_policies(schema: Schema) -> None:
    with session(schema.engine) as conn:
        jobs = rows(conn, "SELECT proc_name, owner::text AS owner, hypertable_name,"
                          " config->>'drop_after' AS drop_after, config->>'start_offset' AS start"
                          " FROM timescaledb_information.jobs WHERE hypertable_name LIKE 'mt5\\_%'")
    retention = {j.hypertable_name: (j.drop_after, j.owner) for j in jobs
                 if j.proc_name == "policy_retention"}
    for table, period in SEED_RETENTION.items():
        assert retention[table] == (period, "mt5_owner"), table
    refresh = {j.hypertable_name: j.owner for j in jobs
               if j.proc_name == "policy_refresh_continuous_aggregate"}
    assert refresh == dict.fromkeys(
        ("mt5_agg_balance_hourly", "mt5_agg_pnl_daily", "mt5_agg_pnl_weekly",
         "mt5_agg_quotes_ohlc_1m", "mt5_agg_quotes_ohlc_1h", "mt5_agg_quotes_ohlc_1d"),
        "mt5_maintenance")
    # Converting a chunk needs the table's owner (revision 0013).
    columnstore = {j.hypertable_name: j.owner for j in jobs
                   if j.proc_name == "policy_compression"}
    assert columnstore == dict.fromkeys(
        ("mt5_account_balance_history", "mt5_broker_quotes", "mt5_ea_heartbeat",
         "mt5_trading_signals", "mt5_trade_orders", "mt5_audit_log"), "mt5_owner")
    # The refresh owner sees every tenant, so refreshes are not silently empty (trap 4).
    with session(schema.engine) as conn:
        assert conn.execute(sa.text("SELECT rolbypassrls AND rolcanlogin FROM pg_roles"
                                    " WHERE rolname = 'mt5_maintenance'")).scalar_one()


def test_every_job_runs_through_run_job(schema: Schema, seeded: dict[str, TenantData]) -> None:
    for conn in autocommit(schema):
        jobs = conn.execute(sa.text("SELECT job_id FROM timescaledb_information.jobs"
                                    " WHERE hypertable_name LIKE 'mt5\\_%' ORDER BY job_id")
                            ).scalars().all()
        # retention of 8 tables and 6 aggregates, 6 refreshes, 6 columnstore policies
        assert len(jobs) == 26
        for job in jobs:
            conn.exec_driver_sql(f"CALL run_job({job})")
        failed = conn.execute(sa.text(
            "SELECT count(*) FROM timescaledb_information.job_stats"
            " WHERE hypertable_name LIKE 'mt5\\_%' AND last_run_status = 'Failed'")).scalar_one()
        assert failed == 0


def test_retention_drops_expired_chunks_only(schema: Schema, seeded: dict[str, TenantData]) -> None:
    a = seeded[TENANT_A]
    with session(schema.engine, "mt5_ingest", commit=True) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_ea_heartbeat (time, tenant_id, account_id, status) VALUES"
            " (now() - interval '40 days', :t, :a, 'online'),"
            " (now() - interval '20 days', :t, :a, 'online')"), {"t": TENANT_A, "a": a.account_id})
        conn.execute(sa.text(
            "INSERT INTO mt5_audit_log (time, tenant_id, event_type, actor) VALUES"
            " (now() - interval '8 years', :t, 'old.event', 'archive')"), {"t": TENANT_A})
    for conn in autocommit(schema):
        for table in ("mt5_ea_heartbeat", "mt5_audit_log"):
            job = conn.execute(sa.text(
                "SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_name = :t"
                " AND proc_name = 'policy_retention'"), {"t": table}).scalar_one()
            conn.exec_driver_sql(f"CALL run_job({job})")
    with session(schema.engine) as conn:
        ages = rows(conn, "SELECT min(now() - time) AS newest, max(now() - time) AS oldest"
                          " FROM mt5_ea_heartbeat WHERE tenant_id = :t", t=TENANT_A)[0]
        old_audit = conn.execute(sa.text(
            "SELECT count(*) FROM mt5_audit_log WHERE time < now() - interval '7 years'")
        ).scalar_one()
        recent_audit = conn.execute(sa.text("SELECT count(*) FROM mt5_audit_log")).scalar_one()
    assert timedelta(days=19) < ages.oldest < timedelta(days=21)  # 40 days gone, 20 kept
    assert old_audit == 0 and recent_audit >= 2


@pytest.mark.parametrize("role", ["mt5_app", "mt5_readonly"])
def test_chunks_are_closed_to_the_tenant_roles(
    schema: Schema, seeded: dict[str, TenantData], role: str
) -> None:
    """Chunks inherit the hypertable's grants but not its row-level security (trap 7): the
    tenant roles hold no grant on a hypertable, so none on a chunk, although the extension
    keeps USAGE on its internal schema for everyone."""
    with session(schema.engine) as conn:
        chunks = conn.execute(sa.text(
            "SELECT DISTINCT ON (hypertable_name) format('%I.%I', chunk_schema, chunk_name)"
            " FROM timescaledb_information.chunks ORDER BY hypertable_name, chunk_name")
        ).scalars().all()
        assert len(chunks) >= len(TIME_SERIES_TABLES) + 4  # + the aggregates' chunks
        assert conn.execute(sa.text(
            "SELECT has_schema_privilege(:r, '_timescaledb_internal', 'USAGE')"), {"r": role}
        ).scalar_one() is True
    for chunk in chunks:
        with session(schema.engine, role, TENANT_A) as conn, pytest.raises(
            sa.exc.ProgrammingError, match="permission denied for table"
        ):
            conn.exec_driver_sql(f"SELECT count(*) FROM {chunk}")


def test_audit_chunks_refuse_row_changes(schema: Schema, seeded: dict[str, TenantData]) -> None:
    with session(schema.engine) as conn:
        chunk = conn.execute(sa.text(
            "SELECT format('%I.%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'mt5_audit_log' LIMIT 1")).scalar_one()
        for statement in (f"DELETE FROM {chunk}", f"UPDATE {chunk} SET actor = 'x'"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), conn.begin_nested():
                conn.exec_driver_sql(statement)


PROBE_AGG = f"""SELECT {bucket_expr(Edition.TIMESCALE, '1 hour')} AS bucket, tenant_id,
    count(*) AS beats
FROM mt5_probe_rls
GROUP BY {bucket_expr(Edition.TIMESCALE, '1 hour')}, tenant_id"""


def test_an_aggregate_added_later_keeps_row_level_security(schema: Schema) -> None:
    """Trap 1: on a table with row security the plain CREATE fails; the operation switches
    it off and on in the same transaction, and the table ends as protected as it began.
    (The time series have no row security since revision 0013: a hypertable of its own.)"""
    with session(schema.engine, commit=True) as conn:
        conn.exec_driver_sql("CREATE TABLE mt5_probe_rls (time timestamptz NOT NULL,"
                             " tenant_id text NOT NULL)")
        conn.exec_driver_sql("SELECT create_hypertable('mt5_probe_rls', by_range('time'))")
        conn.exec_driver_sql("INSERT INTO mt5_probe_rls VALUES (now(), :a), (now(), :b),"
                             " (now(), :b)".replace(":a", f"'{TENANT_A}'").replace(
                                 ":b", f"'{TENANT_B}'"))
        conn.exec_driver_sql("GRANT SELECT ON mt5_probe_rls TO mt5_maintenance")
        ops = Operations(MigrationContext.configure(conn, opts={"suho_edition": "timescale"}))
        ops.enable_tenant_rls("mt5_probe_rls")
    with session(schema.engine) as conn, pytest.raises(sa.exc.DBAPIError, match="row security"):
        conn.exec_driver_sql(
            "CREATE MATERIALIZED VIEW mt5_agg_probe WITH (timescaledb.continuous) AS "
            + PROBE_AGG + " WITH NO DATA")
    with session(schema.engine, commit=True) as conn:
        ops = Operations(MigrationContext.configure(conn, opts={"suho_edition": "timescale"}))
        ops.create_continuous_aggregate(
            "mt5_agg_probe_hourly", PROBE_AGG, source="mt5_probe_rls",
            bucket_width="1 hour", unique_key=["bucket", "tenant_id"],
            tenant_view="mt5_probe_hourly", reader_roles=["mt5_app"],
        )
    try:
        with session(schema.engine) as conn:
            flags = conn.execute(sa.text(
                "SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
                " WHERE oid = 'mt5_probe_rls'::regclass")).one()
            owner = conn.execute(sa.text(
                "SELECT view_owner::text FROM timescaledb_information.continuous_aggregates"
                " WHERE view_name = 'mt5_agg_probe_hourly'")).scalar_one()
        assert tuple(flags) == (True, True) and owner == "mt5_maintenance"
        with session(schema.engine, "mt5_app", TENANT_B) as conn:
            seen = rows(conn, "SELECT tenant_id, sum(beats) AS beats FROM mt5_probe_hourly"
                              " GROUP BY 1")
        assert [tuple(s) for s in seen] == [(TENANT_B, 2)]
    finally:
        with session(schema.engine, commit=True) as conn:
            ops = Operations(MigrationContext.configure(conn, opts={"suho_edition": "timescale"}))
            ops.drop_continuous_aggregate("mt5_agg_probe_hourly", tenant_view="mt5_probe_hourly")
            conn.exec_driver_sql("DROP TABLE mt5_probe_rls")


def test_rls_is_refused_on_a_hypertable_with_columnstore(schema: Schema) -> None:
    """Trap 3: enable_tenant_rls refuses up front instead of half-enabling."""
    with session(schema.engine) as conn:
        conn.exec_driver_sql("CREATE TABLE mt5_probe (time timestamptz NOT NULL,"
                             " tenant_id text NOT NULL, v int)")
        conn.exec_driver_sql("SELECT create_hypertable('mt5_probe', by_range('time'))")
        conn.exec_driver_sql("ALTER TABLE mt5_probe SET (timescaledb.compress)")
        ops = Operations(MigrationContext.configure(conn, opts={"suho_edition": "timescale"}))
        with pytest.raises(sa.exc.DBAPIError, match="columnstore"):
            ops.enable_tenant_rls("mt5_probe")


def test_refresh_cannot_run_in_a_transaction_but_the_operation_can(schema: Schema) -> None:
    """Trap 5: the operation leaves the migration's transaction for the refresh."""
    with session(schema.engine) as conn, pytest.raises(sa.exc.DBAPIError,
                                                       match="transaction block"):
        conn.exec_driver_sql(
            "CALL refresh_continuous_aggregate('mt5_agg_balance_hourly', NULL, NULL)")
    with schema.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"suho_edition": "timescale", "transaction_per_migration": True})
        with ctx.begin_transaction(_per_migration=True):
            Operations(ctx).refresh_continuous_aggregate("mt5_agg_balance_hourly")
        conn.commit()


def test_multi_node_is_gone(schema: Schema) -> None:
    """Trap 10: the seed's "multi-node clustering" does not exist in TimescaleDB 2.14+."""
    with session(schema.engine) as conn:
        assert conn.execute(sa.text(
            "SELECT count(*) FROM pg_proc WHERE proname = 'create_distributed_hypertable'")
        ).scalar_one() == 0


def test_tenants_see_fresh_rows_once_the_refresh_policy_ran(
    schema: Schema, seeded: dict[str, TenantData]
) -> None:
    """The aggregates are materialized only (revision 0013): a fresh row shows after the
    next run of the refresh policy, which reaches the newest row (no end offset)."""
    with session(schema.engine, "mt5_app", TENANT_A, commit=True) as conn:
        before = conn.execute(sa.text("SELECT coalesce(sum(ticks), 0) FROM mt5_quotes_ohlc_1m")
                              ).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO mt5_broker_quotes (account_id, symbol, bid, ask) VALUES (:a, 'EURUSD',"
            " 1.1, 1.2)"), {"a": seeded[TENANT_A].account_id})
        assert conn.execute(sa.text("SELECT sum(ticks) FROM mt5_quotes_ohlc_1m")
                            ).scalar_one() == before
    for conn in autocommit(schema):
        job = conn.execute(sa.text(
            "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name ="
            " 'policy_refresh_continuous_aggregate' AND hypertable_name ="
            " 'mt5_agg_quotes_ohlc_1m'")).scalar_one()
        conn.exec_driver_sql(f"CALL run_job({job})")
    with session(schema.engine, "mt5_app", TENANT_A) as conn:
        after = conn.execute(sa.text("SELECT sum(ticks) FROM mt5_quotes_ohlc_1m")).scalar_one()
    assert after == before + 1
