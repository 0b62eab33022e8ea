"""The apache edition (TimescaleDB without TSL features), built on the engine with
``-x edition=apache``: hypertables, but materialized views instead of continuous aggregates,
and ``CALL mt5_maintain()`` instead of policy jobs (``drop_chunks`` for retention)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from suho_mt5.db import Edition
from tests.db.schema._support import (
    TENANT_A,
    TIME_SERIES_TABLES,
    Schema,
    TenantData,
    alembic,
    catalog_snapshot,
    leftovers,
    maintain,
    schema_engine,
    seed_two_tenants,
    session,
)
from tests.db.schema.test_aggregates import (  # noqa: F401  (run here too)
    test_materialized_rows_cover_both_tenants,
    test_tenant_view_equals_group_by_over_the_base_table,
)

pytestmark = pytest.mark.engines("timescale", "pglite")



@pytest.fixture(scope="module")
def schema(fresh_url: Callable[[], str]) -> Iterator[Schema]:
    url = fresh_url()
    engine = schema_engine(url)
    try:
        alembic(engine, "upgrade", "head", edition=Edition.APACHE)
        yield Schema(url=url, engine=engine, edition=Edition.APACHE)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def seeded(schema: Schema) -> dict[str, TenantData]:
    return seed_two_tenants(schema.engine)


def test_the_apache_edition_has_hypertables_and_materialized_views(schema: Schema) -> None:
    with session(schema.engine) as conn:
        assert conn.execute(sa.text("SELECT mt5_schema_edition()")).scalar_one() == "apache"
        hypertables = conn.execute(sa.text(
            "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE num_dimensions"
            " = 2")).scalars().all()
        matviews = conn.execute(sa.text(
            "SELECT count(*) FROM pg_matviews WHERE matviewname LIKE 'mt5\\_agg\\_%'")).scalar()
        caggs = conn.execute(sa.text(
            "SELECT count(*) FROM timescaledb_information.continuous_aggregates")).scalar()
        jobs = conn.execute(sa.text(
            "SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_name LIKE"
            " 'mt5\\_%'")).scalar()
        health = {r.component: r for r in conn.execute(sa.text(
            "SELECT component, status, detail FROM health_check()")).all()}
        columnstore = conn.execute(sa.text(
            "SELECT count(*) FROM timescaledb_information.hypertables"
            " WHERE compression_enabled")).scalar()
    assert set(hypertables) == set(TIME_SERIES_TABLES)
    assert (matviews, caggs, jobs, columnstore) == (6, 0, 0, 0)
    # login_roles (revision 0014) warns about the test servers' trust rules: by design
    assert {r.status for k, r in health.items() if k != "login_roles"} == {"ok"}
    # what the edition lacks, said where a DBA looks
    assert "not available in the apache edition" in health["columnstore"].detail


def test_maintain_drops_expired_chunks(schema: Schema, seeded: dict[str, TenantData]) -> None:
    account = seeded[TENANT_A].account_id
    with session(schema.engine, "mt5_ingest", commit=True) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_ea_heartbeat (time, tenant_id, account_id, status) VALUES"
            " (now() - interval '40 days', :t, :a, 'online')"), {"t": TENANT_A, "a": account})
        conn.execute(sa.text(
            "INSERT INTO mt5_audit_log (time, tenant_id, event_type, actor) VALUES"
            " (now() - interval '8 years', :t, 'old.event', 'archive')"), {"t": TENANT_A})
    maintain(schema.engine)
    with session(schema.engine, "mt5_maintenance") as conn:
        oldest = conn.execute(sa.text(
            "SELECT max(now() - time) < interval '30 days' FROM mt5_ea_heartbeat")).scalar()
        audit = conn.execute(sa.text(
            "SELECT count(*) FILTER (WHERE time < now() - interval '7 years'), count(*)"
            " FROM mt5_audit_log")).one()
        removed = dict(conn.execute(sa.text(
            "SELECT relation_name, last_retention_removed FROM mt5_timeseries_catalog"
            " WHERE kind = 'hypertable'")).all())
    assert oldest is True
    assert audit[0] == 0 and audit[1] > 0
    assert removed["mt5_ea_heartbeat"] >= 1 and removed["mt5_audit_log"] >= 1


def test_only_maintenance_may_drop_chunks(schema: Schema) -> None:
    with session(schema.engine, "mt5_app", TENANT_A) as conn, pytest.raises(
        sa.exc.ProgrammingError, match="permission denied"
    ):
        conn.exec_driver_sql("SELECT mt5_drop_expired_chunks('public', 'mt5_ea_heartbeat')")
    with session(schema.engine, "mt5_maintenance") as conn, pytest.raises(
        sa.exc.DBAPIError, match="no retention period"
    ):
        conn.exec_driver_sql("SELECT mt5_drop_expired_chunks('public', 'mt5_user_accounts')")


def test_down_and_up_again_rebuild_the_same_catalog(schema: Schema) -> None:
    with session(schema.engine) as conn:
        first = catalog_snapshot(conn)
    alembic(schema.engine, "downgrade", "base", edition=Edition.APACHE)
    with session(schema.engine) as conn:
        assert leftovers(conn) == []
    alembic(schema.engine, "upgrade", "head", edition=Edition.APACHE)
    with session(schema.engine) as conn:
        second = catalog_snapshot(conn)
    for key in first:
        assert second[key] == first[key], key

