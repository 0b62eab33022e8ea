"""The SQL the custom operations' entities build, per edition, without a server."""

from __future__ import annotations

from datetime import timedelta

import pytest

from suho_mt5.db import Edition
from suho_mt5.errors import MigrationError
from suho_mt5.migrations.operations import (
    AggregateRefresh,
    Columnstore,
    ContinuousAggregate,
    Hypertable,
    RefreshPolicy,
    RetentionPolicy,
    TenantRLS,
    aggregate_index_name,
    bucket_expr,
    first_expr,
    ident,
    interval_sql,
    last_expr,
    literal,
    qualified,
    tenant_default,
    tenant_predicate,
)

pytestmark = pytest.mark.unit


def test_identifiers_are_quoted_only_when_needed() -> None:
    assert ident("mt5_trade_orders") == "mt5_trade_orders"
    assert ident("select") == '"select"'
    assert ident('we"ird') == '"we""ird"'
    assert qualified("t", "public") == "public.t"
    with pytest.raises(MigrationError):
        ident("")


def test_literals_and_intervals() -> None:
    assert literal("o'clock") == "'o''clock'"
    assert interval_sql("2 years") == "INTERVAL '2 years'"
    assert interval_sql(" 1  day 2 hours ") == "INTERVAL '1 day 2 hours'"
    assert interval_sql(timedelta(minutes=1)) == "INTERVAL '60 seconds'"
    for bad in ("7", "forever", "1 day; DROP TABLE x", "1 day'"):
        with pytest.raises(MigrationError):
            interval_sql(bad)
    with pytest.raises(MigrationError):
        interval_sql(timedelta(0))
    with pytest.raises(MigrationError):
        literal("nul\x00")


def test_the_tenant_predicate_fails_closed_and_reads_the_setting_once() -> None:
    assert tenant_default() == "NULLIF(current_setting('app.current_tenant_id', true), '')"
    assert tenant_predicate() == (
        "tenant_id = (SELECT NULLIF(current_setting('app.current_tenant_id', true), ''))"
    )
    assert tenant_predicate("org", "app.org") == (
        "org = (SELECT NULLIF(current_setting('app.org', true), ''))"
    )
    with pytest.raises(MigrationError):
        tenant_predicate(setting="no_dot")


@pytest.mark.parametrize("edition", list(Edition))
def test_bucket_first_last_per_edition(edition: Edition) -> None:
    bucket = bucket_expr(edition, "1 hour")
    first, last = first_expr(edition, "bid"), last_expr(edition, "bid")
    if edition.has_hypertables:
        assert bucket == "time_bucket(INTERVAL '1 hour', time)"
        assert (first, last) == ("first(bid, time)", "last(bid, time)")
    else:
        assert bucket.startswith("date_bin(INTERVAL '1 hour', time, TIMESTAMPTZ '2000-01-03")
        assert first == "(array_agg(bid ORDER BY time))[1]"
        assert last == "(array_agg(bid ORDER BY time DESC))[1]"


@pytest.mark.parametrize("edition", list(Edition))
def test_hypertables_per_edition(edition: Edition) -> None:
    sql = "\n".join(Hypertable("mt5_x", chunk_time_interval="1 day").create_sql(edition))
    if edition.has_hypertables:
        assert "create_hypertable('public.mt5_x', by_range('time', INTERVAL '1 day'))" in sql
        assert "add_dimension('public.mt5_x', by_hash('tenant_id', 4))" in sql
    else:
        assert "CREATE INDEX mt5_x_time_idx ON public.mt5_x (time DESC)" in sql
    assert "INSERT INTO mt5_timeseries_catalog" in sql
    with pytest.raises(MigrationError):
        Hypertable("t", chunk_time_interval="1 day", tenant_partitions=0).create_sql(edition)


@pytest.mark.parametrize("edition", list(Edition))
def test_tenant_rls_is_enabled_forced_and_verified(edition: Edition) -> None:
    sql = "\n".join(TenantRLS("mt5_x", cross_tenant={"mt5_ingest": ["insert"]}).create_sql(
        edition))
    assert "ALTER TABLE public.mt5_x ENABLE ROW LEVEL SECURITY" in sql
    assert "ALTER TABLE public.mt5_x FORCE ROW LEVEL SECURITY" in sql
    assert f"USING ({tenant_predicate()}) WITH CHECK ({tenant_predicate()})" in sql
    assert "FOR INSERT TO mt5_ingest WITH CHECK (true)" in sql
    assert sql.rstrip().endswith("$suho$") and "relforcerowsecurity" in sql
    assert ("compression_enabled" in sql) is edition.has_hypertables
    with pytest.raises(MigrationError):
        TenantRLS("t", cross_tenant={"r": ["TRUNCATE"]})


@pytest.mark.parametrize("edition", list(Edition))
def test_aggregates_per_edition(edition: Edition) -> None:
    sql = "\n".join(ContinuousAggregate(
        "mt5_agg_x", "SELECT 1 AS bucket", source="mt5_x", bucket_width="1 hour",
        unique_key=["bucket"], tenant_view="mt5_x_hourly",
        reader_roles=["mt5_readonly", "mt5_app"]).create_sql(edition))
    if edition.has_continuous_aggregates:
        # docs/schema.md, trap 1: row security off and on around the CREATE, in the same transaction
        assert sql.index("DISABLE ROW LEVEL SECURITY") < sql.index("timescaledb.continuous")
        assert sql.index("timescaledb.continuous") < sql.index("ENABLE ROW LEVEL SECURITY")
        assert "NO FORCE ROW LEVEL SECURITY" in sql and "WITH NO DATA" in sql
    else:
        assert "ROW LEVEL SECURITY" not in sql and "WITH DATA" in sql
        assert "CREATE UNIQUE INDEX mt5_agg_x_key ON public.mt5_agg_x (bucket)" in sql
    assert "ALTER MATERIALIZED VIEW public.mt5_agg_x OWNER TO mt5_maintenance" in sql
    assert "REVOKE ALL ON public.mt5_agg_x FROM PUBLIC" in sql
    assert "WITH (security_barrier = true)" in sql and f"WHERE {tenant_predicate()}" in sql
    assert "GRANT SELECT ON public.mt5_x_hourly TO mt5_app, mt5_readonly" in sql


def test_policies_run_as_their_owner_on_timescale_only() -> None:
    ts = RefreshPolicy("v", start_offset="1 day", end_offset="1 hour",
                       schedule_interval="5 minutes").create_sql(Edition.TIMESCALE)
    assert ts[:3] == [
        "SET LOCAL ROLE mt5_maintenance",
        "SELECT add_continuous_aggregate_policy('public.v', start_offset => INTERVAL '1 day', "
        "end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '5 minutes')",
        "RESET ROLE",
    ]
    for edition in (Edition.APACHE, Edition.POSTGRESQL):
        sql = RetentionPolicy("t", "90 days", owner="o").create_sql(edition)
        assert len(sql) == 1 and "retention = INTERVAL '90 days'" in sql[0]
        assert "IF NOT FOUND" in sql[0]  # a policy on an unknown relation fails loudly


def test_refresh_per_edition() -> None:
    assert AggregateRefresh("v").create_sql(Edition.TIMESCALE) == [
        "CALL refresh_continuous_aggregate('public.v', NULL, NULL)"]
    pg = AggregateRefresh("v", concurrently=True).create_sql(Edition.POSTGRESQL)
    assert pg[0] == "REFRESH MATERIALIZED VIEW CONCURRENTLY public.v"


@pytest.mark.parametrize("edition", list(Edition))
def test_the_columnstore_is_timescale_only_and_refuses_row_security(edition: Edition) -> None:
    store = Columnstore("mt5_x", segmentby=["tenant_id", "account_id"], orderby="time DESC",
                        sparse_index="minmax(sequence)", after="2 days")
    sql = "\n".join(store.create_sql(edition))
    drop = "\n".join(store.drop_sql(edition))
    if not edition.has_columnstore:
        assert sql == drop == ""  # the apache license and plain PostgreSQL lack it
        return
    # docs/schema.md, trap 3: a table with row security is refused before anything is done
    assert sql.index("relrowsecurity") < sql.index("ALTER TABLE")
    assert ("ALTER TABLE public.mt5_x SET (timescaledb.enable_columnstore = true, "
            "timescaledb.segmentby = 'tenant_id, account_id', timescaledb.orderby = "
            "'time DESC', timescaledb.sparse_index = 'minmax(sequence)')") in sql
    # the job runs as the table's owner (converting a chunk needs it)
    assert ("SET LOCAL ROLE mt5_owner\nCALL add_columnstore_policy('public.mt5_x', "
            "after => INTERVAL '2 days')\nRESET ROLE") in sql
    assert drop.index("remove_columnstore_policy") < drop.index("decompress_chunk") < drop.index(
        "enable_columnstore = false")
    assert Columnstore("t").missing() == ["segmentby", "orderby", "after"]


@pytest.mark.parametrize("edition", list(Edition))
def test_aggregates_get_their_tenant_first_indexes(edition: Edition) -> None:
    sql = "\n".join(ContinuousAggregate(
        "mt5_agg_x", "SELECT 1 AS bucket", source="mt5_x", bucket_width="1 hour",
        unique_key=["bucket"], tenant_view="mt5_x_hourly", materialized_only=True,
        indexes=[("tenant_id", "bucket DESC"), ("tenant_id", "account_id", "bucket DESC")],
    ).create_sql(edition))
    assert ("CREATE INDEX mt5_agg_x_tenant_id_account_id_bucket_idx ON public.mt5_agg_x "
            "(tenant_id, account_id, bucket DESC)") in sql
    if edition.has_continuous_aggregates:
        assert ("timescaledb.materialized_only = true, "
                "timescaledb.create_group_indexes = false") in sql
    assert aggregate_index_name("v", ["tenant_id", "bucket DESC"]) == "v_tenant_id_bucket_idx"
    with pytest.raises(MigrationError):
        aggregate_index_name("v", ["bucket SIDEWAYS"])
