"""Trap 4, shown: refreshed by an owner that row-level security applies to, a continuous
aggregate materializes nothing, and says nothing. The schema's aggregates are owned by
``mt5_maintenance``, which has BYPASSRLS. Since revision 0013 their sources, the time series,
have no row-level security, so they no longer depend on it; the trap is shown on a table
that has it, and the aggregate tests (tests/db/schema/test_aggregates.py) would catch an
empty refresh.

A module of its own: it needs its own engine, whose roles it alters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from suho_mt5.db import Edition
from tests.db.schema._support import (
    TENANT_A,
    TENANT_B,
    Schema,
    alembic,
    role_connection,
    schema_engine,
    seed_two_tenants,
    session,
)

pytestmark = pytest.mark.engines("timescale", "pglite")



@pytest.fixture(scope="module")
def schema(fresh_url: Callable[[], str]) -> Iterator[Schema]:
    url = fresh_url()
    engine = schema_engine(url)
    try:
        alembic(engine, "upgrade", "head")
        yield Schema(url=url, engine=engine, edition=Edition.TIMESCALE)
    finally:
        engine.dispose()


def materialized(schema: Schema, aggregate: str) -> dict[str, int]:
    with session(schema.engine) as conn:
        table = conn.execute(sa.text(
            "SELECT format('%I.%I', materialization_hypertable_schema,"
            " materialization_hypertable_name) FROM timescaledb_information.continuous_aggregates"
            " WHERE view_name = :v"), {"v": aggregate}).scalar_one()
        return dict(conn.execute(sa.text(f"SELECT tenant_id, count(*) FROM {table} GROUP BY 1")
                                 ).all())


def _refresh(schema: Schema, aggregate: str) -> None:
    with role_connection(schema.engine, "mt5_maintenance") as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            f"CALL refresh_continuous_aggregate('{aggregate}', NULL, NULL)")


def test_a_refresh_owner_without_bypassrls_materializes_nothing(schema: Schema) -> None:
    """On a table with row-level security (FORCEd), created with an aggregate on it first
    (trap 1), owned by mt5_maintenance like the schema's aggregates."""
    with session(schema.engine, commit=True) as conn:
        conn.exec_driver_sql(
            "CREATE TABLE probe_rls (time timestamptz NOT NULL, tenant_id text NOT NULL)")
        conn.exec_driver_sql("SELECT create_hypertable('probe_rls', by_range('time'))")
        conn.exec_driver_sql(
            "INSERT INTO probe_rls VALUES (now() - interval '3 hours', 'tenant_a'),"
            " (now() - interval '3 hours', 'tenant_b')")
        conn.exec_driver_sql(
            "CREATE MATERIALIZED VIEW probe_rls_hourly WITH (timescaledb.continuous,"
            " timescaledb.materialized_only = true) AS SELECT time_bucket('1 hour', time)"
            " AS bucket, tenant_id, count(*) FROM probe_rls GROUP BY 1, 2 WITH NO DATA")
        conn.exec_driver_sql("ALTER MATERIALIZED VIEW probe_rls_hourly OWNER TO mt5_maintenance")
        conn.exec_driver_sql("GRANT SELECT ON probe_rls TO mt5_maintenance")
        conn.exec_driver_sql("ALTER TABLE probe_rls ENABLE ROW LEVEL SECURITY")
        conn.exec_driver_sql("ALTER TABLE probe_rls FORCE ROW LEVEL SECURITY")
        conn.exec_driver_sql(
            "CREATE POLICY tenant_isolation ON probe_rls USING (tenant_id ="
            " (SELECT NULLIF(current_setting('app.current_tenant_id', true), '')))")
        conn.exec_driver_sql("ALTER ROLE mt5_maintenance NOBYPASSRLS")
    try:
        _refresh(schema, "probe_rls_hourly")
        assert materialized(schema, "probe_rls_hourly") == {}  # silently empty
    finally:
        with session(schema.engine, commit=True) as conn:
            conn.exec_driver_sql("ALTER ROLE mt5_maintenance BYPASSRLS")
    # With the attribute back, newly invalidated ranges materialize for both tenants.
    with session(schema.engine, commit=True) as conn:
        conn.exec_driver_sql("INSERT INTO probe_rls VALUES (now() - interval '3 hours',"
                             " 'tenant_a'), (now() - interval '3 hours', 'tenant_b')")
    _refresh(schema, "probe_rls_hourly")
    assert materialized(schema, "probe_rls_hourly") == {TENANT_A: 1, TENANT_B: 1}


def test_the_schemas_aggregates_refresh_whole_without_bypassrls(schema: Schema) -> None:
    """Their sources have no row-level security since revision 0013: the refresh jobs see
    every tenant whatever their owner's attributes."""
    with session(schema.engine, commit=True) as conn:
        conn.exec_driver_sql("ALTER ROLE mt5_maintenance NOBYPASSRLS")
    try:
        seed_two_tenants(schema.engine)  # runs the refresh jobs as mt5_maintenance
        assert set(materialized(schema, "mt5_agg_balance_hourly")) == {TENANT_A, TENANT_B}
        assert set(materialized(schema, "mt5_agg_quotes_ohlc_1h")) == {TENANT_A, TENANT_B}
    finally:
        with session(schema.engine, commit=True) as conn:
            conn.exec_driver_sql("ALTER ROLE mt5_maintenance BYPASSRLS")
