"""Trap 4, shown: refreshed by an owner that row-level security applies to, a continuous
aggregate materializes nothing, and says nothing. The schema's aggregates are owned by
``mt5_maintenance``, which has BYPASSRLS; taking that away reproduces the trap, so the
aggregate tests (tests/integration/schema/test_aggregates.py) would catch a regression.

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


def test_a_refresh_owner_without_bypassrls_materializes_nothing(schema: Schema) -> None:
    with session(schema.engine, commit=True) as conn:
        conn.exec_driver_sql("ALTER ROLE mt5_maintenance NOBYPASSRLS")
    try:
        seed_two_tenants(schema.engine)  # runs the refresh jobs as mt5_maintenance
        assert materialized(schema, "mt5_agg_balance_hourly") == {}
        assert materialized(schema, "mt5_agg_quotes_ohlc_1h") == {}
    finally:
        with session(schema.engine, commit=True) as conn:
            conn.exec_driver_sql("ALTER ROLE mt5_maintenance BYPASSRLS")
    # With the attribute back, newly invalidated ranges materialize for both tenants.
    with session(schema.engine, "mt5_ingest", commit=True) as conn:
        accounts = dict(conn.execute(sa.text(
            "SELECT tenant_id, account_id FROM mt5_user_accounts")).all())
        for tenant in (TENANT_A, TENANT_B):
            conn.execute(sa.text(
                "INSERT INTO mt5_account_balance_history (time, tenant_id, account_id, balance,"
                " equity) VALUES (now() - interval '3 hours', :t, :a, 5, 5)"),
                {"t": tenant, "a": accounts[tenant]})
    with role_connection(schema.engine, "mt5_maintenance") as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "CALL mt5_maintain()")
    assert set(materialized(schema, "mt5_agg_balance_hourly")) == {TENANT_A, TENANT_B}

