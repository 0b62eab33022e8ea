"""data layer: time series isolated by their tenant views alone, columnstore, leaner keys, hierarchical aggregates

The time series at the seed's volumes (docs/schema.md, "Tenant isolation" and "Columnstore"):

* **Row-level security comes off the eight time-series tables**, on every edition: balance
  history, broker quotes, heartbeats, trade orders, signals, executions, risk events (the
  audit log never had it). Since revision 0009 tenant roles hold no privilege on any of them
  and reach rows only through the ``security_barrier`` views of ``mt5_tenant``; those views
  and the grants are now the isolation, tested on their own. Row-level security under the
  views cost what TimescaleDB is for: TimescaleDB refuses a columnstore on a table with row
  security (trap 3), and planning through it probed every chunk. The plain tenant tables
  (accounts, settings, consents, reports) keep it, ENABLEd and FORCEd. ``health_check()``
  gains a ``tenant_grants`` row: an error as soon as a tenant role holds a privilege on a
  table, a chunk or anything else in ``_timescaledb_internal``.
* **Idempotency keys that serve the queries**: balance history and heartbeats are keyed
  ``(tenant_id, account_id, time, sequence)`` (was ``..., sequence, time``), broker quotes
  ``(tenant_id, account_id, symbol, time, sequence)``: the same rows conflict (a packet's
  sequence is unique per account), and the key now also serves every per-account time
  query, so the ``(tenant_id, account_id[, symbol], time DESC)`` and ``(tenant_id, time
  DESC)`` indexes of those three tables go. ``(time DESC)`` stays: refreshes read by time.
* **Columnstore** (timescale edition): balance history, quotes and heartbeats are converted
  two days after their chunk ends (late history of an EA that was offline for a day still
  lands in the rowstore), signals after seven days (status changes within minutes), trade
  orders after 30 days, the audit log after 90 days. Executions and risk events stay in the
  rowstore: trade closes update executions for as long as a position is open, the ML export
  locks them (``FOR UPDATE``, which TimescaleDB refuses on compressed rows), and risk events
  are a few a day. The audit chain looks its previous event up from the recorded head on, so
  compressed history is not read for every event.
* **Aggregates**: minute bars get sums beside their averages so coarser bars are exact; the
  hourly bars are rebuilt on the minute bars, daily bars on the hourly ones, a weekly P&L on
  the daily P&L (hierarchical continuous aggregates on timescale, materialized views
  refreshed in dependency order elsewhere). Tenant-first indexes on every aggregate.
  Materialized-only except the minute bars (real time); refresh windows reach three days
  back so a day of late history is materialized.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 12:00:00
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.db import Edition
from suho_mt5.migrations.operations import (
    aggregate_index_name,
    aggregate_index_sql,
    bucket_expr,
    execute_sql,
    first_expr,
    health_check_sql,
    last_expr,
    migration_edition,
)

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _sibling(name: str) -> ModuleType:
    """An earlier revision's module, for the exact text its downgrade must restore."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_suho_mt5_revision_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- isolation

_SERIES = {"mt5_compliance": ["SELECT"], "mt5_ingest": ["INSERT", "SELECT"]}
# Each time-series table with the cross-tenant policies revisions 0002-0004 and 0010 gave it
# (what the downgrade puts back).
TIME_SERIES_RLS: tuple[tuple[str, dict[str, list[str]]], ...] = (
    ("mt5_account_balance_history", _SERIES),
    ("mt5_broker_quotes", _SERIES),
    ("mt5_ea_heartbeat", _SERIES),
    ("mt5_trade_orders", _SERIES),
    ("mt5_trading_signals", {"mt5_compliance": ["SELECT"], "mt5_ingest": ["INSERT", "SELECT", "UPDATE"]}),
    ("mt5_signal_executions", {"mt5_compliance": ["SELECT"], "mt5_ingest": ["INSERT"]}),
    ("mt5_risk_events", _SERIES),
)
TIME_SERIES = (*(t for t, _ in TIME_SERIES_RLS), "mt5_audit_log")
# Tables that keep row-level security, ENABLEd and FORCEd.
PLAIN_TENANT_TABLES = ("mt5_user_accounts", "mt5_user_consents", "mt5_compliance_reports",
                       "mt5_account_settings")
TENANT_ROLES = ("mt5_app", "mt5_readonly")
# health_check() as revision 0011 made it.
OLD_HEALTH_TENANT_TABLES = (
    "mt5_user_accounts", "mt5_account_balance_history", "mt5_broker_quotes", "mt5_ea_heartbeat",
    "mt5_trade_orders", "mt5_trading_signals", "mt5_signal_executions", "mt5_risk_events",
    "mt5_user_consents", "mt5_compliance_reports", "mt5_account_settings",
)


def _health_check(*, time_series: bool) -> str:
    tenant_tables = PLAIN_TENANT_TABLES if time_series else OLD_HEALTH_TENANT_TABLES
    all_tables = (*OLD_HEALTH_TENANT_TABLES, "mt5_audit_log")
    return health_check_sql(
        tenant_tables=tenant_tables, all_tables=all_tables, bcrypt_cost=12,
        pbkdf2_iterations=25000, tenant_views=True, or_replace=True,
        time_series=TIME_SERIES if time_series else (),
        tenant_roles=TENANT_ROLES if time_series else ())


# --------------------------------------------------------------------------- keys and indexes

# table, key before, key now, indexes the key now serves (name, columns as revision 0002 had)
KEYS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[tuple[str, list[str]], ...]], ...] = (
    ("mt5_account_balance_history",
     ("tenant_id", "account_id", "sequence", "time"),
     ("tenant_id", "account_id", "time", "sequence"),
     (("mt5_account_balance_history_tenant_id_time_idx", ["tenant_id", "time DESC"]),
      ("mt5_account_balance_history_tenant_id_account_id_time_idx",
       ["tenant_id", "account_id", "time DESC"]))),
    ("mt5_broker_quotes",
     ("tenant_id", "account_id", "sequence", "time"),
     ("tenant_id", "account_id", "symbol", "time", "sequence"),
     (("mt5_broker_quotes_tenant_id_time_idx", ["tenant_id", "time DESC"]),
      ("mt5_broker_quotes_tenant_id_account_id_symbol_time_idx",
       ["tenant_id", "account_id", "symbol", "time DESC"]))),
    ("mt5_ea_heartbeat",
     ("tenant_id", "account_id", "sequence", "time"),
     ("tenant_id", "account_id", "time", "sequence"),
     (("mt5_ea_heartbeat_tenant_id_time_idx", ["tenant_id", "time DESC"]),
      ("mt5_ea_heartbeat_tenant_id_account_id_time_idx", ["tenant_id", "account_id", "time DESC"]))),
)


def _columns(columns: Sequence[str]) -> list[sa.TextClause | str]:
    return [sa.text(c) if " " in c else c for c in columns]


def _rekey(table: str, key: Sequence[str]) -> None:
    name = f"{table}_idempotency_key"
    op.drop_constraint(name, table, type_="unique")
    op.create_unique_constraint(name, table, list(key))


# --------------------------------------------------------------------------- columnstore

# table, segmentby, orderby, sparse indexes, converted when the chunk ended this long ago
COLUMNSTORE: tuple[tuple[str, tuple[str, ...], str, str | None, str], ...] = (
    # minmax(sequence) in place of TimescaleDB's automatic sparse indexes, whose bloom filter
    # on (time, sequence) (from the idempotency key) costs a byte a row and serves nothing.
    ("mt5_account_balance_history", ("tenant_id", "account_id"), "time DESC",
     "minmax(sequence)", "2 days"),
    ("mt5_broker_quotes", ("tenant_id", "account_id", "symbol"), "time DESC",
     "minmax(sequence)", "2 days"),
    ("mt5_ea_heartbeat", ("tenant_id", "account_id"), "time DESC", "minmax(sequence)", "2 days"),
    ("mt5_trading_signals", ("tenant_id", "account_id"), "time DESC", "bloom(signal_id)",
     "7 days"),
    ("mt5_trade_orders", ("tenant_id", "account_id"), "time DESC",
     "bloom(signal_id), minmax(ticket), minmax(position_id)", "30 days"),
    ("mt5_audit_log", ("tenant_id",), "chain_seq DESC, time DESC", "minmax(time), bloom(event_id)",
     "90 days"),
)


# --------------------------------------------------------------------------- aggregates

READERS = ("mt5_app", "mt5_readonly")
PER_ACCOUNT = ("bucket", "tenant_id", "account_id")
PER_SYMBOL = (*PER_ACCOUNT, "symbol")
# Tenant first: a whole tenant over time, and one account (and symbol) over time.
ACCOUNT_INDEXES = (("tenant_id", "bucket DESC"), ("tenant_id", "account_id", "bucket DESC"))
SYMBOL_INDEXES = (("tenant_id", "bucket DESC"),
                  ("tenant_id", "account_id", "symbol", "bucket DESC"))


def _ohlc_from_rows(edition: Edition, column: str) -> str:
    return (f"{first_expr(edition, column)} AS {column}_open, max({column}) AS {column}_high, "
            f"min({column}) AS {column}_low, {last_expr(edition, column)} AS {column}_close")


def _ohlc_from_bars(edition: Edition, column: str) -> str:
    return (f"{first_expr(edition, f'{column}_open', 'bucket')} AS {column}_open, "
            f"max({column}_high) AS {column}_high, min({column}_low) AS {column}_low, "
            f"{last_expr(edition, f'{column}_close', 'bucket')} AS {column}_close")


def quotes_ohlc_1m(edition: Edition) -> str:
    """Minute bars from the raw quotes, with the sums coarser bars add up exactly."""
    bucket = bucket_expr(edition, "1 minute")
    return f"""SELECT {bucket} AS bucket, tenant_id, account_id, symbol,
    {_ohlc_from_rows(edition, "bid")},
    {_ohlc_from_rows(edition, "ask")},
    avg(ask - bid) AS spread_avg,
    max(ask - bid) AS spread_max,
    avg(price_deviation) AS deviation_avg,
    max(abs(price_deviation)) AS deviation_max_abs,
    sum(volume) AS volume,
    count(*) AS ticks,
    sum(ask - bid) AS spread_sum,
    sum(price_deviation) AS deviation_sum,
    count(price_deviation) AS deviation_count
FROM mt5_broker_quotes
GROUP BY {bucket}, tenant_id, account_id, symbol"""


def quotes_ohlc_rollup(edition: Edition, width: str, source: str) -> str:
    """Coarser bars from finer ones: averages from the sums, so they equal the raw rows'."""
    bucket = bucket_expr(edition, width, "bucket")
    return f"""SELECT {bucket} AS bucket, tenant_id, account_id, symbol,
    {_ohlc_from_bars(edition, "bid")},
    {_ohlc_from_bars(edition, "ask")},
    sum(spread_sum) / sum(ticks) AS spread_avg,
    max(spread_max) AS spread_max,
    sum(deviation_sum) / NULLIF(sum(deviation_count), 0) AS deviation_avg,
    max(deviation_max_abs) AS deviation_max_abs,
    sum(volume) AS volume,
    sum(ticks)::bigint AS ticks,
    sum(spread_sum) AS spread_sum,
    sum(deviation_sum) AS deviation_sum,
    sum(deviation_count)::bigint AS deviation_count
FROM {source}
GROUP BY {bucket}, tenant_id, account_id, symbol"""


def pnl_weekly(edition: Edition) -> str:
    bucket = bucket_expr(edition, "1 week", "bucket")
    return f"""SELECT {bucket} AS bucket, tenant_id, account_id, symbol,
    sum(trades)::bigint AS trades,
    sum(wins)::bigint AS wins,
    sum(losses)::bigint AS losses,
    sum(volume) AS volume,
    sum(profit) AS profit,
    sum(commission) AS commission,
    sum(swap) AS swap,
    sum(fee) AS fee,
    sum(net_profit) AS net_profit
FROM mt5_agg_pnl_daily
GROUP BY {bucket}, tenant_id, account_id, symbol"""


# Every aggregate is materialized only: real-time aggregation plans a union with the rows
# under the last refresh on every query (on a hierarchical aggregate a union per level), and
# measured it cost more than the rest of the query (docs/schema.md, "Aggregates"). Instead
# the refresh policies reach up to the newest row (end offset NULL, the forming bucket
# included) every minute or five: an aggregate lags by at most its schedule.
MATERIALIZED_ONLY = dict.fromkeys(
    ("mt5_agg_balance_hourly", "mt5_agg_pnl_daily", "mt5_agg_pnl_weekly",
     "mt5_agg_quotes_ohlc_1m", "mt5_agg_quotes_ohlc_1h", "mt5_agg_quotes_ohlc_1d"), True)


# name, tenant view, source, width, key, definition, indexes
def new_aggregates(edition: Edition) -> list[tuple[str, str, str, str, tuple[str, ...], str,
                                                   tuple[tuple[str, ...], ...]]]:
    return [
        ("mt5_agg_quotes_ohlc_1m", "mt5_quotes_ohlc_1m", "mt5_broker_quotes", "1 minute",
         PER_SYMBOL, quotes_ohlc_1m(edition), SYMBOL_INDEXES),
        ("mt5_agg_quotes_ohlc_1h", "mt5_quotes_ohlc_1h", "mt5_agg_quotes_ohlc_1m", "1 hour",
         PER_SYMBOL, quotes_ohlc_rollup(edition, "1 hour", "mt5_agg_quotes_ohlc_1m"),
         SYMBOL_INDEXES),
        ("mt5_agg_quotes_ohlc_1d", "mt5_quotes_ohlc_1d", "mt5_agg_quotes_ohlc_1h", "1 day",
         PER_SYMBOL, quotes_ohlc_rollup(edition, "1 day", "mt5_agg_quotes_ohlc_1h"),
         SYMBOL_INDEXES),
        ("mt5_agg_pnl_weekly", "mt5_pnl_weekly", "mt5_agg_pnl_daily", "7 days",
         PER_SYMBOL, pnl_weekly(edition), ACCOUNT_INDEXES[:1] + SYMBOL_INDEXES[1:]),
    ]


# The aggregates revision 0005 made and this one keeps, with their new indexes.
KEPT_AGGREGATES = (
    ("mt5_agg_balance_hourly", ACCOUNT_INDEXES, ("tenant_id", "account_id")),
    ("mt5_agg_pnl_daily", ACCOUNT_INDEXES[:1] + SYMBOL_INDEXES[1:],
     ("tenant_id", "account_id", "symbol")),
)
# aggregate, start offset, end offset, schedule (revision 0006's, for the downgrade)
OLD_REFRESH = {
    "mt5_agg_balance_hourly": ("3 days", "1 hour", "30 minutes"),
    "mt5_agg_pnl_daily": ("35 days", "1 hour", "1 hour"),
    "mt5_agg_quotes_ohlc_1m": ("1 day", "1 minute", "1 minute"),
    "mt5_agg_quotes_ohlc_1h": ("2 days", "1 hour", "15 minutes"),
}
# Up to the newest row (None: no end offset), finer levels first. Three days back: an EA
# back after a day offline sends a day of history, and a refresh only ever reads the ranges
# new rows invalidated (older late rows need a CALL refresh_continuous_aggregate by hand).
REFRESH = (
    ("mt5_agg_balance_hourly", "3 days", None, "5 minutes"),
    ("mt5_agg_pnl_daily", "35 days", None, "5 minutes"),
    ("mt5_agg_pnl_weekly", "63 days", None, "5 minutes"),
    ("mt5_agg_quotes_ohlc_1m", "3 days", None, "1 minute"),
    ("mt5_agg_quotes_ohlc_1h", "3 days", None, "5 minutes"),
    ("mt5_agg_quotes_ohlc_1d", "7 days", None, "15 minutes"),
)
RETENTION = (
    ("mt5_agg_quotes_ohlc_1m", "90 days"),
    ("mt5_agg_quotes_ohlc_1h", "2 years"),
    ("mt5_agg_quotes_ohlc_1d", "2 years"),
    ("mt5_agg_pnl_weekly", "7 years"),
)

# On timescale the rebuilt hourly bars can only hold what the minute bars (and the raw
# quotes, both kept 90 days) still have: refuse rather than lose older hourly bars.
HOURLY_BARS_GUARD = """DO $suho$
BEGIN
    IF EXISTS (SELECT 1 FROM public.mt5_agg_quotes_ohlc_1h
               WHERE bucket < (SELECT coalesce(min(time), 'infinity') FROM public.mt5_broker_quotes)
                              - INTERVAL '1 hour') THEN
        RAISE EXCEPTION 'revision 0013 rebuilds mt5_agg_quotes_ohlc_1h from the minute bars, '
            'and this database has hourly bars older than its raw quotes, which would be lost'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Export them (COPY (SELECT * FROM mt5_agg_quotes_ohlc_1h WHERE bucket < ...) '
                         'TO ...), then SELECT drop_chunks(''mt5_agg_quotes_ohlc_1h'', older_than => ...) '
                         'and upgrade again.';
    END IF;
END
$suho$"""


def _drop_group_indexes_sql(view: str) -> str:
    return f"""DO $suho$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT ic.oid::regclass AS index_name
             FROM timescaledb_information.continuous_aggregates ca
             JOIN pg_class mc ON mc.relname = ca.materialization_hypertable_name
             JOIN pg_namespace mn ON mn.oid = mc.relnamespace
                                 AND mn.nspname = ca.materialization_hypertable_schema
             JOIN pg_index i ON i.indrelid = mc.oid
             JOIN pg_class ic ON ic.oid = i.indexrelid
             JOIN pg_attribute a ON a.attrelid = mc.oid AND a.attnum = i.indkey[0]
             WHERE ca.view_schema = 'public' AND ca.view_name = '{view}'
               AND i.indnatts = 2 AND a.attname <> 'bucket'
    LOOP
        EXECUTE format('DROP INDEX %s', r.index_name);
    END LOOP;
END
$suho$"""


def _group_indexes_sql(view: str, columns: Sequence[str]) -> list[str]:
    return [f"CREATE INDEX ON public.{view} ({c}, bucket DESC)" for c in columns]


def _drop_aggregate_index_sql(edition: Edition, view: str, columns: Sequence[str]) -> str:
    # On timescale the index is on the aggregate's materialization hypertable, in its schema.
    schema = "_timescaledb_internal" if edition.has_continuous_aggregates else "public"
    return f"DROP INDEX {schema}.{aggregate_index_name(view, columns)}"


# --------------------------------------------------------------------------- mt5_maintain

# Refresh materialized views in dependency order: minute bars before the hourly bars built on
# them, and those before the daily bars (apache and postgresql).
_REFRESH_IN_ORDER = """    FOR r IN WITH RECURSIVE depth(relation_schema, relation_name, level) AS (
                 SELECT c.relation_schema, c.relation_name, 0 FROM public.mt5_timeseries_catalog c
                 WHERE c.kind = 'aggregate'
                 UNION ALL
                 SELECT c.relation_schema, c.relation_name, d.level + 1
                 FROM public.mt5_timeseries_catalog c
                 JOIN depth d ON c.source_relation = d.relation_name
                 WHERE c.kind = 'aggregate' AND d.level < 16)
             SELECT relation_schema, relation_name FROM depth
             GROUP BY relation_schema, relation_name ORDER BY max(level), relation_name LOOP
        EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %I.%I', r.relation_schema, r.relation_name);
        UPDATE public.mt5_timeseries_catalog c SET last_refresh_at = now()
        WHERE c.relation_schema = r.relation_schema AND c.relation_name = r.relation_name;
        COMMIT;
    END LOOP;"""


def _maintain_sql(edition: Edition, *, ordered: bool) -> str:
    policies = _sibling("0006_policies")
    body = policies.MAINTAIN_BODY[edition]
    if ordered:
        body = body.replace(policies._REFRESH_VIEWS, _REFRESH_IN_ORDER)
    head = policies.MAINTAIN_HEAD.replace("CREATE PROCEDURE", "CREATE OR REPLACE PROCEDURE")
    return head + body + "\nEND\n$fn$"


# --------------------------------------------------------------------------- the audit chain

_CHAIN_LOOKUP_V2 = """    SELECT a.chain_seq, a.row_hash INTO last_seq, last_hash
    FROM mt5_audit_log a
    WHERE a.tenant_id = NEW.tenant_id
    ORDER BY a.chain_seq DESC
    LIMIT 1;
    SELECT h.chain_seq, h.row_hash INTO head_seq, head_hash
    FROM mt5_audit_chain_heads h WHERE h.tenant_id = NEW.tenant_id;"""
# Only events at or after the recorded head can be further than it; on TimescaleDB the bound
# lets the scan skip every compressed batch by its min/max instead of decompressing one per
# chunk for every event written.
_CHAIN_LOOKUP_V3 = """    SELECT h.chain_seq, h.row_hash INTO head_seq, head_hash
    FROM mt5_audit_chain_heads h WHERE h.tenant_id = NEW.tenant_id;
    -- Only events at or after the recorded head can be further than it: the bound lets
    -- TimescaleDB skip compressed history by its min/max (docs/schema.md, "Columnstore").
    SELECT a.chain_seq, a.row_hash INTO last_seq, last_hash
    FROM mt5_audit_log a
    WHERE a.tenant_id = NEW.tenant_id AND a.chain_seq >= coalesce(head_seq, 0)
    ORDER BY a.chain_seq DESC
    LIMIT 1;"""


def _chain_sql(v3: bool) -> str:
    v2 = _sibling("0011_compliance").CHAIN_V2_SQL
    assert _CHAIN_LOOKUP_V2 in v2
    return v2.replace(_CHAIN_LOOKUP_V2, _CHAIN_LOOKUP_V3) if v3 else v2


# --------------------------------------------------------------------------- the fill trigger

# Revision 0003's BEFORE INSERT trigger on executions took a closed trade's result for
# whatever tenant the row named, as the owner. A tenant's row naming another tenant is
# refused by its view's check only afterwards, and the refusal shows the row as the trigger
# left it (docs/schema.md, trap 18): fill only rows of the inserting session's own tenant
# (service logins set none and fill any). The time series have no row security any more,
# so the function no longer sets the tenant (and so reads the caller's).
FILL_HEAD = """CREATE OR REPLACE FUNCTION mt5_signal_execution_fill() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- The trade may have closed before this report arrived: take its result now. Raises
-- nothing, and fills nothing into a row of another tenant than the session's (the view's
-- check then refuses the row, and its error shows the row: docs/schema.md, trap 18).
DECLARE
    closing record;
    session_tenant text := NULLIF(current_setting('app.current_tenant_id', true), '');
BEGIN
    IF NEW.tenant_id IS NULL OR NEW.trade_closed
       OR NEW.tenant_id IS DISTINCT FROM coalesce(session_tenant, NEW.tenant_id) THEN
        RETURN NEW;
    END IF;
"""


def _fill_trigger(edition: Edition, *, fixed: bool) -> None:
    # CREATE OR REPLACE keeps owner and grants, and replaces the function's settings. The
    # lookup and the filling stay revision 0003's, from its SELECT on.
    v1 = _sibling("0003_trading_tables").EXECUTION_BEFORE_INSERT
    body = (FILL_HEAD + v1[v1.index("    SELECT o.price"):] if fixed
            else v1.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1))
    execute_sql(body)
    if edition.has_hypertables:  # as revision 0003 (timescaledb#6790)
        execute_sql("ALTER FUNCTION mt5_signal_execution_fill() "
                    "SET timescaledb.enable_chunk_append = off")


# --------------------------------------------------------------------------- upgrade

# A refresh job locks its aggregate, then reads the table under it; this revision alters the
# tables, then the aggregates. Taking the aggregates first (waiting for a running refresh to
# finish), then the table of running refreshes, keeps the scheduler's jobs from deadlocking
# with this revision or changing catalog rows it deletes, on a live database.
LOCK_AGGREGATES = r"""DO $suho$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT format('%I.%I', materialization_hypertable_schema,
                          materialization_hypertable_name) AS mat
             FROM timescaledb_information.continuous_aggregates
             WHERE view_schema = 'public' AND view_name LIKE 'mt5\_agg\_%'
             ORDER BY view_name LOOP
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', r.mat);
    END LOOP;
    -- A refresh registers its window here, and clears the entries of finished backends,
    -- which dropping an aggregate deletes too ("tuple concurrently deleted").
    -- (TimescaleDB 2.28; the PGlite engine's 2.23 has no such table)
    IF to_regclass('_timescaledb_catalog.continuous_aggs_jobs_refresh_ranges') IS NOT NULL THEN
        LOCK TABLE _timescaledb_catalog.continuous_aggs_jobs_refresh_ranges
            IN SHARE UPDATE EXCLUSIVE MODE;
    END IF;
END
$suho$"""


def upgrade() -> None:
    edition = migration_edition()
    if edition.has_continuous_aggregates:
        execute_sql(LOCK_AGGREGATES)
    for table, cross_tenant in TIME_SERIES_RLS:
        op.disable_tenant_rls(table, cross_tenant=cross_tenant)
    for table, _, key, indexes in KEYS:
        _rekey(table, key)
        for name, _ in indexes:
            op.drop_index(name, table_name=table)

    aggregates = _sibling("0005_aggregates")
    if edition.has_continuous_aggregates:
        execute_sql(HOURLY_BARS_GUARD)
    for name in ("mt5_agg_quotes_ohlc_1h", "mt5_agg_quotes_ohlc_1m"):
        # Policies first, through TimescaleDB's API: a DROP that takes a job with it can hit
        # the scheduler updating that job ("tuple concurrently deleted").
        op.remove_refresh_policy(name)
        op.remove_retention_policy(name, owner="mt5_maintenance")
        view = next(v for n, v, *_ in aggregates.aggregates(edition) if n == name)
        op.drop_continuous_aggregate(name, tenant_view=view)
    for name, view, source, width, key, definition, indexes in new_aggregates(edition):
        op.create_continuous_aggregate(
            name, definition, source=source, bucket_width=width, unique_key=key,
            tenant_view=view, reader_roles=READERS, materialized_only=MATERIALIZED_ONLY[name],
            indexes=indexes)
    for name, indexes, _ in KEPT_AGGREGATES:
        if edition.has_continuous_aggregates:
            execute_sql(_drop_group_indexes_sql(name))
            if MATERIALIZED_ONLY[name]:
                execute_sql(f"ALTER MATERIALIZED VIEW {name} "
                            "SET (timescaledb.materialized_only = true)")
        for columns in indexes:
            execute_sql(aggregate_index_sql(name, columns))
    for name, *_ in KEPT_AGGREGATES:
        op.remove_refresh_policy(name)

    for table, segmentby, orderby, sparse, after in COLUMNSTORE:
        op.enable_columnstore(table, segmentby=segmentby, orderby=orderby, sparse_index=sparse,
                              after=after)
    if not edition.has_continuous_aggregates:
        execute_sql(_maintain_sql(edition, ordered=True))
    execute_sql(_chain_sql(v3=True))
    _fill_trigger(edition, fixed=True)
    execute_sql(_health_check(time_series=True))

    # Materialize what existed before this revision, finer bars first. On timescale this
    # leaves the transaction (docs/schema.md, trap 5), and it comes before the refresh
    # policies: a new policy's job starts at once and would collide with it.
    for name, *_ in new_aggregates(edition):
        op.refresh_continuous_aggregate(name)
    for name, start, end, schedule in REFRESH:
        op.add_refresh_policy(name, start_offset=start, end_offset=end, schedule_interval=schedule)
    for name, period in RETENTION:
        op.add_retention_policy(name, period, owner="mt5_maintenance")


def downgrade() -> None:
    edition = migration_edition()
    if edition.has_continuous_aggregates:
        execute_sql(LOCK_AGGREGATES)
    execute_sql(_health_check(time_series=False))
    execute_sql(_chain_sql(v3=False))
    _fill_trigger(edition, fixed=False)
    if not edition.has_continuous_aggregates:
        execute_sql(_maintain_sql(edition, ordered=False))
    for table, *_ in reversed(COLUMNSTORE):
        op.disable_columnstore(table)

    for name, _ in reversed(RETENTION):
        op.remove_retention_policy(name, owner="mt5_maintenance")
    for name, *_ in reversed(REFRESH):
        op.remove_refresh_policy(name)
    for name, indexes, groups in reversed(KEPT_AGGREGATES):
        for columns in indexes:
            execute_sql(_drop_aggregate_index_sql(edition, name, columns))
        if edition.has_continuous_aggregates:
            if MATERIALIZED_ONLY[name]:
                execute_sql(f"ALTER MATERIALIZED VIEW {name} "
                            "SET (timescaledb.materialized_only = false)")
            for statement in _group_indexes_sql(name, groups):
                execute_sql(statement)
    for name, view, *_ in reversed(new_aggregates(edition)):
        op.drop_continuous_aggregate(name, tenant_view=view)
    aggregates = _sibling("0005_aggregates")
    old = [a for a in aggregates.aggregates(edition)
           if a[0] in ("mt5_agg_quotes_ohlc_1m", "mt5_agg_quotes_ohlc_1h")]
    for name, view, source, width, key, definition in old:
        op.create_continuous_aggregate(name, definition, source=source, bucket_width=width,
                                       unique_key=key, tenant_view=view,
                                       reader_roles=aggregates.READERS)
    for table, old_key, _, indexes in reversed(KEYS):
        for name, columns in indexes:
            op.create_index(name, table, _columns(columns))
        _rekey(table, old_key)
    for table, cross_tenant in reversed(TIME_SERIES_RLS):
        op.enable_tenant_rls(table, cross_tenant=cross_tenant)

    # As in the upgrade: refreshes (leaving the transaction on timescale), then policies.
    for name, *_ in old:
        op.refresh_continuous_aggregate(name)
    retention = dict(_sibling("0006_policies").AGGREGATE_RETENTION)
    for name in (*(n for n, *_ in KEPT_AGGREGATES), *(n for n, *_ in old)):
        start, end, schedule = OLD_REFRESH[name]
        op.add_refresh_policy(name, start_offset=start, end_offset=end, schedule_interval=schedule)
        if name in retention and name not in {n for n, *_ in KEPT_AGGREGATES}:
            op.add_retention_policy(name, retention[name], owner="mt5_maintenance")
