"""monitoring views: v_hypertable_summary, v_continuous_aggregates, v_chunk_summary

The same columns on every edition, so dashboards and ``suho-mt5`` read them alike:

* ``v_hypertable_summary``: one row per time-series table: dimensions, chunk count, size,
  approximate rows, retention. On postgresql a "hypertable" is the plain table.
* ``v_continuous_aggregates``: one row per aggregate: kind (continuous aggregate or
  materialized view), refresh schedule and window, last and next refresh, size.
* ``v_chunk_summary``: one row per chunk with its time range and whether it is past
  retention; on postgresql one row per table, its oldest and newest row
  (``past_retention``: rows older than the retention period are waiting for
  ``mt5_maintain()``).

Owned by ``mt5_maintenance`` and readable by it (and superusers): they span every tenant.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 00:20:00
"""

from collections.abc import Sequence

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.db import Edition
from suho_mt5.migrations.operations import execute_sql, migration_edition

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REL = "format('%I.%I', c.relation_schema, c.relation_name)::regclass"

HYPERTABLE_SUMMARY_TSDB = f"""CREATE VIEW v_hypertable_summary AS
SELECT c.relation_name AS hypertable_name,
       c.time_column,
       c.chunk_time_interval,
       c.tenant_column,
       c.tenant_partitions,
       h.num_chunks::bigint AS num_chunks,
       approximate_row_count({_REL})::bigint AS approximate_rows,
       coalesce(hypertable_size({_REL}), 0)::bigint AS total_bytes,
       pg_size_pretty(coalesce(hypertable_size({_REL}), 0)) AS total_size,
       c.retention,
       h.compression_enabled,
       true AS is_hypertable
FROM mt5_timeseries_catalog c
JOIN timescaledb_information.hypertables h
  ON h.hypertable_schema = c.relation_schema AND h.hypertable_name = c.relation_name
WHERE c.kind = 'hypertable'"""

HYPERTABLE_SUMMARY_PG = f"""CREATE VIEW v_hypertable_summary AS
SELECT c.relation_name AS hypertable_name,
       c.time_column,
       c.chunk_time_interval,
       c.tenant_column,
       c.tenant_partitions,
       1::bigint AS num_chunks,
       greatest(t.reltuples, 0)::bigint AS approximate_rows,
       pg_total_relation_size({_REL}) AS total_bytes,
       pg_size_pretty(pg_total_relation_size({_REL})) AS total_size,
       c.retention,
       false AS compression_enabled,
       false AS is_hypertable
FROM mt5_timeseries_catalog c
JOIN pg_class t ON t.oid = {_REL}
WHERE c.kind = 'hypertable'"""

AGGREGATES_CAGG = """CREATE VIEW v_continuous_aggregates AS
SELECT c.relation_name AS aggregate_name,
       c.tenant_view,
       c.source_relation,
       c.bucket_width,
       'continuous aggregate'::text AS kind,
       ca.materialized_only,
       j.schedule_interval AS refresh_schedule,
       c.refresh_start_offset,
       c.refresh_end_offset,
       s.last_successful_finish AS last_refresh_at,
       s.next_start AS next_refresh_at,
       s.last_run_status::text AS last_run_status,
       c.retention,
       coalesce(hypertable_size(format('%I.%I', ca.materialization_hypertable_schema,
                                       ca.materialization_hypertable_name)::regclass), 0)::bigint
           AS total_bytes
FROM mt5_timeseries_catalog c
JOIN timescaledb_information.continuous_aggregates ca
  ON ca.view_schema = c.relation_schema AND ca.view_name = c.relation_name
LEFT JOIN timescaledb_information.jobs j
  ON j.hypertable_schema = c.relation_schema AND j.hypertable_name = c.relation_name
 AND j.proc_name = 'policy_refresh_continuous_aggregate'
LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id
WHERE c.kind = 'aggregate'"""

AGGREGATES_MATVIEW = f"""CREATE VIEW v_continuous_aggregates AS
SELECT c.relation_name AS aggregate_name,
       c.tenant_view,
       c.source_relation,
       c.bucket_width,
       'materialized view'::text AS kind,
       true AS materialized_only,
       c.refresh_schedule,
       c.refresh_start_offset,
       c.refresh_end_offset,
       c.last_refresh_at,
       c.last_refresh_at + c.refresh_schedule AS next_refresh_at,
       CASE WHEN c.last_refresh_at IS NOT NULL AND m.ispopulated THEN 'Success' END AS last_run_status,
       c.retention,
       pg_total_relation_size({_REL}) AS total_bytes
FROM mt5_timeseries_catalog c
JOIN pg_matviews m ON m.schemaname = c.relation_schema AND m.matviewname = c.relation_name
WHERE c.kind = 'aggregate'"""

CHUNKS_TSDB = """CREATE VIEW v_chunk_summary AS
SELECT c.relation_name AS hypertable_name,
       ch.chunk_schema::text AS chunk_schema,
       ch.chunk_name::text AS chunk_name,
       ch.range_start,
       ch.range_end,
       ch.is_compressed,
       pg_total_relation_size(format('%I.%I', ch.chunk_schema, ch.chunk_name)::regclass) AS total_bytes,
       c.retention,
       coalesce(ch.range_end <= now() - c.retention, false) AS past_retention
FROM mt5_timeseries_catalog c
JOIN timescaledb_information.chunks ch
  ON ch.hypertable_schema = c.relation_schema AND ch.hypertable_name = c.relation_name
WHERE c.kind = 'hypertable'"""

TIME_BOUNDS = """CREATE FUNCTION mt5_time_bounds(target_schema text, target_relation text, time_column text,
                                OUT range_start timestamptz, OUT range_end timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
-- Oldest and newest row of a time-series table, from its (time DESC) index; runs as the
-- caller, so it sees what the caller's row-level security lets it see.
BEGIN
    EXECUTE format('SELECT min(%1$I), max(%1$I) FROM %2$I.%3$I', time_column, target_schema, target_relation)
        INTO range_start, range_end;
END
$fn$"""

CHUNKS_PG = f"""CREATE VIEW v_chunk_summary AS
SELECT c.relation_name AS hypertable_name,
       c.relation_schema AS chunk_schema,
       c.relation_name AS chunk_name,
       b.range_start,
       b.range_end,
       false AS is_compressed,
       pg_total_relation_size({_REL}) AS total_bytes,
       c.retention,
       coalesce(b.range_start < now() - c.retention, false) AS past_retention
FROM mt5_timeseries_catalog c
CROSS JOIN LATERAL mt5_time_bounds(c.relation_schema, c.relation_name, c.time_column) b
WHERE c.kind = 'hypertable'"""

VIEWS = ("v_hypertable_summary", "v_continuous_aggregates", "v_chunk_summary")


def upgrade() -> None:
    edition = migration_edition()
    if edition.has_hypertables:
        execute_sql(HYPERTABLE_SUMMARY_TSDB)
        execute_sql(CHUNKS_TSDB)
    else:
        execute_sql(HYPERTABLE_SUMMARY_PG)
        execute_sql(TIME_BOUNDS)
        execute_sql("ALTER FUNCTION mt5_time_bounds(text, text, text) OWNER TO mt5_owner")
        execute_sql(CHUNKS_PG)
    execute_sql(AGGREGATES_CAGG if edition is Edition.TIMESCALE else AGGREGATES_MATVIEW)
    for view in VIEWS:
        execute_sql(f"ALTER VIEW {view} OWNER TO mt5_maintenance")
        execute_sql(f"REVOKE ALL ON {view} FROM PUBLIC")
        execute_sql(f"GRANT SELECT ON {view} TO mt5_maintenance")


def downgrade() -> None:
    edition = migration_edition()
    for view in reversed(VIEWS):
        execute_sql(f"DROP VIEW {view}")
    if not edition.has_hypertables:
        execute_sql("DROP FUNCTION mt5_time_bounds(text, text, text)")
