"""retention and refresh policies, and the maintenance procedure

Retention, from the seed: balance history 2 years, broker quotes 90 days, heartbeat 30 days,
trade orders 7 years, signals 90 days, executions 2 years, audit log 7 years, risk events
2 years; aggregates keep what their use needs (quote minutes 90 days, hours 2 years,
balance hours 2 years, daily P&L 7 years).

* timescale: TimescaleDB jobs. Retention jobs are owned by ``mt5_owner`` (TimescaleDB wants
  the relation's owner), refresh jobs by ``mt5_maintenance``, which sees every tenant.
* apache: ``CALL mt5_maintain()`` refreshes the materialized views and drops expired chunks
  through ``mt5_drop_expired_chunks()`` (``drop_chunks`` needs the table's owner).
* postgresql: ``CALL mt5_maintain()`` refreshes the materialized views and deletes expired
  rows in batches, committing after each (``mt5_maintenance`` gets DELETE for this).

``mt5_maintain(batch_size)`` exists on every edition (``suho-mt5 db maintain`` calls it); on
timescale it runs the mt5 policy jobs the caller may run, for servers without background
workers (the PGlite engine) or to catch up at once. Call it outside a transaction block.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 00:10:00
"""

from collections.abc import Sequence

from alembic import op

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.db import Edition
from suho_mt5.migrations.operations import execute_sql, migration_edition

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RETENTION = (
    ("mt5_account_balance_history", "2 years"),
    ("mt5_broker_quotes", "90 days"),
    ("mt5_ea_heartbeat", "30 days"),
    ("mt5_trade_orders", "7 years"),
    ("mt5_trading_signals", "90 days"),
    ("mt5_signal_executions", "2 years"),
    ("mt5_audit_log", "7 years"),
    ("mt5_risk_events", "2 years"),
)
AGGREGATE_RETENTION = (
    ("mt5_agg_balance_hourly", "2 years"),
    ("mt5_agg_pnl_daily", "7 years"),
    ("mt5_agg_quotes_ohlc_1m", "90 days"),
    ("mt5_agg_quotes_ohlc_1h", "2 years"),
)
# aggregate, start offset, end offset, schedule
REFRESH = (
    ("mt5_agg_balance_hourly", "3 days", "1 hour", "30 minutes"),
    ("mt5_agg_pnl_daily", "35 days", "1 hour", "1 hour"),
    # A whole day back: a refresh only re-reads invalidated ranges, and a reconnecting EA's
    # late ticks still reach the minute bars.
    ("mt5_agg_quotes_ohlc_1m", "1 day", "1 minute", "1 minute"),
    ("mt5_agg_quotes_ohlc_1h", "2 days", "1 hour", "15 minutes"),
)

# A procedure with a SET clause cannot COMMIT: names are schema-qualified instead.
_REFRESH_VIEWS = """    FOR r IN SELECT c.relation_schema, c.relation_name FROM public.mt5_timeseries_catalog c
             WHERE c.kind = 'aggregate' ORDER BY c.relation_name LOOP
        EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %I.%I', r.relation_schema, r.relation_name);
        UPDATE public.mt5_timeseries_catalog c SET last_refresh_at = now()
        WHERE c.relation_schema = r.relation_schema AND c.relation_name = r.relation_name;
        COMMIT;
    END LOOP;"""

MAINTAIN_HEAD = """CREATE PROCEDURE mt5_maintain(batch_size integer DEFAULT 10000)
LANGUAGE plpgsql
AS $fn$
DECLARE
    r record;
    job integer;
    jobs integer[];
    n bigint;
    total bigint;
BEGIN
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
"""

MAINTAIN_BODY = {
    Edition.TIMESCALE: """    -- Policies normally run in TimescaleDB's background workers; this runs every mt5 policy
    -- job the caller may run now (refreshes first, then retention).
    SELECT array_agg(j.job_id ORDER BY j.proc_name = 'policy_retention', j.job_id) INTO jobs
    FROM timescaledb_information.jobs j
    JOIN public.mt5_timeseries_catalog c
      ON c.relation_schema = j.hypertable_schema AND c.relation_name = j.hypertable_name
    WHERE pg_has_role(current_user, j.owner, 'USAGE');
    FOREACH job IN ARRAY coalesce(jobs, '{}'::integer[]) LOOP
        CALL run_job(job);
        COMMIT;
    END LOOP;""",
    Edition.APACHE: _REFRESH_VIEWS + """
    FOR r IN SELECT c.relation_schema, c.relation_name FROM public.mt5_timeseries_catalog c
             WHERE c.kind = 'hypertable' AND c.retention IS NOT NULL ORDER BY c.relation_name LOOP
        n := public.mt5_drop_expired_chunks(r.relation_schema, r.relation_name);
        UPDATE public.mt5_timeseries_catalog c SET last_retention_at = now(), last_retention_removed = n
        WHERE c.relation_schema = r.relation_schema AND c.relation_name = r.relation_name;
        COMMIT;
    END LOOP;""",
    Edition.POSTGRESQL: _REFRESH_VIEWS + """
    FOR r IN SELECT c.relation_schema, c.relation_name, c.time_column, c.retention
             FROM public.mt5_timeseries_catalog c
             WHERE c.kind = 'hypertable' AND c.retention IS NOT NULL ORDER BY c.relation_name LOOP
        total := 0;
        LOOP
            -- Lets mt5_audit_log's append-only trigger accept rows past its retention period.
            PERFORM set_config('suho_mt5.audit_retention', 'on', true);
            EXECUTE format('DELETE FROM %1$I.%2$I WHERE ctid = ANY (ARRAY('
                           'SELECT ctid FROM %1$I.%2$I WHERE %3$I < $1 LIMIT $2))',
                           r.relation_schema, r.relation_name, r.time_column)
                USING now() - r.retention, batch_size;
            GET DIAGNOSTICS n = ROW_COUNT;
            total := total + n;
            COMMIT;
            EXIT WHEN n < batch_size;
        END LOOP;
        UPDATE public.mt5_timeseries_catalog c SET last_retention_at = now(), last_retention_removed = total
        WHERE c.relation_schema = r.relation_schema AND c.relation_name = r.relation_name;
        COMMIT;
    END LOOP;""",
}

DROP_EXPIRED_CHUNKS_SQL = """CREATE FUNCTION mt5_drop_expired_chunks(target_schema text, target_relation text)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- drop_chunks() needs the hypertable's owner: this runs as mt5_owner, and only with the
-- retention period recorded for the table, so a caller cannot drop anything younger.
DECLARE
    keep interval;
    dropped bigint;
BEGIN
    SELECT c.retention INTO keep FROM mt5_timeseries_catalog c
    WHERE c.relation_schema = target_schema AND c.relation_name = target_relation
      AND c.kind = 'hypertable';
    IF keep IS NULL THEN
        RAISE EXCEPTION '%.% has no retention period recorded', target_schema, target_relation
            USING ERRCODE = 'undefined_object';
    END IF;
    SELECT count(*) INTO dropped
    FROM drop_chunks(format('%I.%I', target_schema, target_relation)::regclass, older_than => now() - keep);
    RETURN dropped;
END
$fn$"""

TIME_SERIES_TABLES = tuple(t for t, _ in RETENTION)


def upgrade() -> None:
    edition = migration_edition()
    for table, period in RETENTION:
        op.add_retention_policy(table, period)
    for view, start, end, schedule in REFRESH:
        op.add_refresh_policy(view, start_offset=start, end_offset=end, schedule_interval=schedule)
    for view, period in AGGREGATE_RETENTION:
        op.add_retention_policy(view, period, owner="mt5_maintenance")

    if edition is Edition.APACHE:
        execute_sql(DROP_EXPIRED_CHUNKS_SQL)
        execute_sql("ALTER FUNCTION mt5_drop_expired_chunks(text, text) OWNER TO mt5_owner")
        execute_sql("REVOKE ALL ON FUNCTION mt5_drop_expired_chunks(text, text) FROM PUBLIC")
        execute_sql("GRANT EXECUTE ON FUNCTION mt5_drop_expired_chunks(text, text) TO mt5_maintenance")
    if edition is Edition.POSTGRESQL:
        execute_sql(f"GRANT DELETE ON {', '.join(TIME_SERIES_TABLES)} TO mt5_maintenance")

    execute_sql(MAINTAIN_HEAD + MAINTAIN_BODY[edition] + "\nEND\n$fn$")
    execute_sql("ALTER PROCEDURE mt5_maintain(integer) OWNER TO mt5_owner")
    execute_sql("REVOKE ALL ON PROCEDURE mt5_maintain(integer) FROM PUBLIC")
    execute_sql("GRANT EXECUTE ON PROCEDURE mt5_maintain(integer) TO mt5_maintenance")
    execute_sql(
        "COMMENT ON PROCEDURE mt5_maintain(integer) IS 'suho-mt5: apply retention and refresh "
        "aggregates where TimescaleDB policies do not (CALL it outside a transaction block)'"
    )


def downgrade() -> None:
    edition = migration_edition()
    execute_sql("DROP PROCEDURE mt5_maintain(integer)")
    if edition is Edition.POSTGRESQL:
        execute_sql(f"REVOKE DELETE ON {', '.join(TIME_SERIES_TABLES)} FROM mt5_maintenance")
    if edition is Edition.APACHE:
        execute_sql("DROP FUNCTION mt5_drop_expired_chunks(text, text)")
    for view, period in reversed(AGGREGATE_RETENTION):
        op.remove_retention_policy(view, drop_after=period, owner="mt5_maintenance")
    for view, *_ in reversed(REFRESH):
        op.remove_refresh_policy(view)
    for table, period in reversed(RETENTION):
        op.remove_retention_policy(table, drop_after=period)
