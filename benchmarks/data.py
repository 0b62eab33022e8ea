"""The data layer at the seed's volumes (docs/schema.md, "Columnstore" and "Aggregates").

One native TimescaleDB server, one database per size, each migrated to head and filled
with the seed's rates *inside the server* (``INSERT ... SELECT`` from ``generate_series`` as
the superuser, triggers off), for tenant A at three sizes and a co-tenant B of 10 accounts
in every database. Per size: bytes per row before and after the columnstore, the seed's
queries raw and through the aggregates as a tenant login (answers compared), and at the
largest size the tenant views against a BYPASSRLS login with a literal tenant (also with two
years of chunks), JIT, real time against materialized only, COPY into the rowstore and into
compressed chunks, and the storage a year takes at the seed's rates.

``python -m benchmarks --only data`` runs this section alone (and updates only its part of
docs/benchmarks.md and the plot docs/benchmarks-data.png).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from ._registry import Row, Section, Settings, section

REPO = Path(__file__).resolve().parents[1]
PLOT = REPO / "docs" / "benchmarks-data.png"
TITLE = "The data layer at the seed's volumes (columnstore, aggregates, tenant views)"

TENANT, CO_TENANT = "tenant_a", "tenant_b"
CO_TENANT_ACCOUNTS = 10
# Eight more small tenants (2 accounts, a quote stream for the last day), so the planner sees
# what a server with many tenants has: a tenant filter that is selective.
SMALL_TENANTS = tuple(f"tenant_{c}" for c in "cdefghij")
SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCHF", "USDCAD", "NZDUSD", "EURJPY",
           "XAUUSD", "EURGBP")
PASSWORD = "bench"
APP, SVC, INGEST = "suho_bench_app", "suho_bench_svc", "suho_bench_ingest"

# The seed's rates (rows per day) and retention, and this schema's columnstore windows
# (revision 0013): (rows per account per day, or None for per-stream/per-tenant rates,
# retention days, days after a chunk's end it is converted, chunk days).
RATES = {
    "mt5_account_balance_history": (2880, 730, 2, 7),
    "mt5_broker_quotes": (None, 90, 2, 1),       # 86,400 per quote stream
    "mt5_ea_heartbeat": (2880, 30, 2, 1),
    "mt5_trade_orders": (50, 2555, 30, 30),
    "mt5_trading_signals": (20, 90, 7, 7),
    "mt5_signal_executions": (20, 730, None, 30),  # rowstore
    "mt5_audit_log": (90, 2555, 90, 90),        # one event per order, signal, execution
    "mt5_risk_events": (None, 730, None, 90),    # ~5 a day per tenant, rowstore
}
QUOTES_PER_STREAM = 86_400
STREAMS_PER_ACCOUNT = 0.1   # one quote stream (broker symbol) per 10 accounts
SEED_GB = 50.0


@dataclass(frozen=True)
class Scale:
    sizes: tuple[int, ...]
    balance_days: int
    quote_days: int
    heartbeat_days: int
    trade_days: int
    rounds: int
    ingest_pairs: int


FULL = Scale((10, 30, 100), 14, 3, 3, 14, 11, 5)
QUICK = Scale((3, 6, 10), 10, 3, 3, 10, 3, 2)


# --------------------------------------------------------------------------- server, logins


def _conninfo(server: Any, db: str, user: str | None = None) -> str:
    if user is None:
        return (f"host={server.host} port={server.port} user={server.user} "
                f"password={server.password} dbname={db}")
    return f"host={server.host} port={server.port} user={user} password={PASSWORD} dbname={db}"


def _logins(server: Any) -> None:
    """The tenant login, the BYPASSRLS baseline login and a bridge login (cluster-wide)."""
    with psycopg.connect(_conninfo(server, "postgres"), autocommit=True) as conn:
        for name, role, attrs in ((APP, "mt5_app", ""), (SVC, "mt5_maintenance", " BYPASSRLS"),
                                  (INGEST, "mt5_ingest", " BYPASSRLS")):
            conn.execute(f"""DO $d$ BEGIN
                IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
                    CREATE ROLE {name} LOGIN PASSWORD '{PASSWORD}'{attrs} IN ROLE {role};
                END IF; END $d$""")
        conn.execute(f"ALTER ROLE {APP} SET search_path = mt5_tenant, public")


def _database(server: Any) -> str:
    """A database migrated to head (as the ingest benchmark makes them), its jobs paused."""
    from .ingest import _database as migrated

    deadline = time.monotonic() + 120
    while True:  # a server with a large shared_buffers may still be starting up
        try:
            psycopg.connect(_conninfo(server, "postgres")).close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    admin_url, _ = migrated(server)
    name = admin_url.rsplit("/", 1)[1].split("?")[0]
    with psycopg.connect(_conninfo(server, name), autocommit=True) as conn:
        # Deterministic measurements: every policy is run by hand below, at a known moment.
        conn.execute("SELECT alter_job(job_id, scheduled => false) "
                     "FROM timescaledb_information.jobs WHERE job_id >= 1000")
    _logins(server)  # once the migrations made the roles
    with psycopg.connect(_conninfo(server, name), autocommit=True) as conn:
        # The baseline login reads the raw tables and aggregates with a literal tenant.
        conn.execute(f"GRANT SELECT ON mt5_user_accounts TO {SVC}")
    return name


# --------------------------------------------------------------------------- data


def _generate(conn: psycopg.Connection[Any], tenant: str, accounts: int, login0: int,
              end: dt.datetime, scale: Scale, *, quote_days: int | None = None) -> None:
    """The seed's rates for ``accounts`` accounts of ``tenant``, ending at ``end`` (quotes
    over ``quote_days``, the scale's by default)."""
    streams = max(1, round(accounts * STREAMS_PER_ACCOUNT))
    p = {"t": tenant, "n": accounts, "l0": login0, "end": end, "streams": streams,
         "bd": scale.balance_days, "qd": quote_days or scale.quote_days,
         "hd": scale.heartbeat_days,
         "td": scale.trade_days, "syms": list(SYMBOLS)}
    x = conn.execute
    x("SET session_replication_role = replica")  # no audit or feedback triggers, no FK checks
    x("SELECT setseed(0.18)")
    x("""INSERT INTO mt5_user_accounts (tenant_id, user_id, broker_name, broker_server,
                mt5_login, mt5_account_number, account_type, currency, leverage)
         SELECT %(t)s, 'user_' || g, 'Broker', 'Broker-Live', %(l0)s + g, (%(l0)s + g)::text,
                'real', 'USD', 100 FROM generate_series(1, %(n)s) g""", p)
    x("""CREATE TEMP TABLE acc ON COMMIT DROP AS
         SELECT account_id, tenant_id, row_number() OVER (ORDER BY mt5_login)::int AS k
         FROM mt5_user_accounts WHERE tenant_id = %(t)s""", p)
    # Balance and equity every 30 s: the balance steps when a trade closes, the margin when a
    # position opens or closes, the equity (and with it free margin and margin level)
    # wanders with the open positions, two decimals of noise (synthetic, but not constant).
    x("""INSERT INTO mt5_account_balance_history (time, tenant_id, account_id, balance, equity,
                margin, free_margin, margin_level, credit, leverage, currency, sequence)
         SELECT ts, a.tenant_id, a.account_id, b, e, m, e - m,
                CASE WHEN m > 0 THEN round(e / m * 100, 2) ELSE 0 END, 0, 100, 'USD', i
         FROM acc a
         CROSS JOIN LATERAL (SELECT i, %(end)s - make_interval(days => %(bd)s)
                                 + i * interval '30 s' + (random() * 0.4 + a.k * 0) * interval '1 s'
                                 AS ts
                             FROM generate_series(0, %(bd)s * 2880 - 1) i) s
         CROSS JOIN LATERAL (SELECT round((10000 + a.k * 100
                                 + 400 * sin(floor(i / 180.0) * 1.7 + a.k))::numeric, 2) AS b) bb
         CROSS JOIN LATERAL (SELECT round(b + (150 * sin(i / 97.0 + a.k)
                                 + 20 * random())::numeric, 2) AS e,
                                    round((150 + 100 * abs(sin(floor(i / 170.0) * 2.3
                                                               + a.k)))::numeric, 2)
                                        AS m) ee""",
      p)
    # One quote a second per stream, five-digit prices, a spread of 5-14 points.
    x("""INSERT INTO mt5_broker_quotes (time, tenant_id, account_id, symbol, bid, ask,
                spread_points, volume, sequence)
         SELECT ts, a.tenant_id, a.account_id, (%(syms)s::text[])[1 + (a.k - 1) %% 10],
                round(px::numeric, 5), round((px + sp * 0.00001)::numeric, 5), sp,
                round((random() * 3)::numeric, 2), i
         FROM acc a
         CROSS JOIN LATERAL (SELECT i, %(end)s - make_interval(days => %(qd)s)
                                 + i * interval '1 s' + (random() * 0.9 + a.k * 0) * interval '1 s'
                                 AS ts
                             FROM generate_series(0, %(qd)s * 86400 - 1) i) s
         CROSS JOIN LATERAL (SELECT (1.1 + a.k * 0.1) * (1 + 0.002 * sin(i / 3600.0 + a.k)
                                 + 0.0003 * sin(i / 60.0) + 0.00002 * random()) AS px,
                                    (5 + floor(random() * 10))::int AS sp) q
         WHERE a.k <= %(streams)s""", p)
    x("""INSERT INTO mt5_ea_heartbeat (time, tenant_id, account_id, status, ea_version,
                terminal_build, terminal_connected, trade_allowed, ping_ms, sequence)
         SELECT ts, a.tenant_id, a.account_id,
                CASE WHEN random() < 0.002 THEN 'degraded' ELSE 'online' END, '2.4.1', 4410,
                true, true, (20 + random() * 40)::int, i
         FROM acc a
         CROSS JOIN LATERAL (SELECT i, %(end)s - make_interval(days => %(hd)s)
                                 + i * interval '30 s' + (random() * 0.3 + a.k * 0) * interval '1 s'
                                 AS ts
                             FROM generate_series(0, %(hd)s * 2880 - 1) i) s""", p)
    # 50 order events a day per account: 25 trades, each an open and a close, on 5 symbols.
    x("""INSERT INTO mt5_trade_orders (time, tenant_id, account_id, ticket, position_id, symbol,
                order_type, deal_type, deal_entry, volume, price, stop_loss, take_profit, profit,
                commission, swap, fee, profit_pips, status, magic_number, comment, sequence)
         SELECT CASE WHEN leg = 0 THEN opened ELSE opened + held END, a.tenant_id,
                a.account_id, 1000000 * a.k + 2 * j + leg, 1000000 * a.k + 2 * j,
                (%(syms)s::text[])[1 + (a.k + j) %% 5],
                CASE WHEN j %% 2 = 0 THEN 'buy' ELSE 'sell' END,
                CASE WHEN (j + leg) %% 2 = 0 THEN 'buy' ELSE 'sell' END,
                CASE WHEN leg = 0 THEN 'in' ELSE 'out' END,
                vol, round((1.1 + random() * 0.1)::numeric, 5), NULL, NULL,
                CASE WHEN leg = 1 THEN pnl ELSE 0 END,
                round(-vol * 3.5, 2), CASE WHEN leg = 1 THEN round((random() - 0.5)::numeric, 2)
                ELSE 0 END, 0, CASE WHEN leg = 1 THEN round(pnl / 10, 1) END,
                CASE WHEN leg = 1 THEN 'closed' ELSE 'open' END, 20260101,
                'ea v2.4.1 #' || j, 2 * j + leg
         FROM acc a
         CROSS JOIN LATERAL (SELECT j, %(end)s - make_interval(days => %(td)s)
                                 + j * interval '3456 s'
                                 + (random() * 600 + a.k * 0) * interval '1 s'
                                 AS opened,
                                    (random() * 3000 + 60 + a.k * 0) * interval '1 s' AS held,
                                    round((0.01 + floor(random() * 100) / 100)::numeric, 2) AS vol,
                                    round(((random() - 0.45) * 120)::numeric, 2) AS pnl
                             FROM generate_series(0, %(td)s * 25 - 1) j) t
         CROSS JOIN generate_series(0, 1) leg
         WHERE (CASE WHEN leg = 0 THEN opened ELSE opened + held END) < %(end)s""", p)
    x("""INSERT INTO mt5_trading_signals (time, signal_id, tenant_id, account_id, symbol, action,
                entry_price, stop_loss, take_profit, volume, expires_at, confidence_score,
                model_version, strategy_name, magic_number, status, sent_at, executed_at)
         SELECT ts, gen_random_uuid(), a.tenant_id, a.account_id,
                (%(syms)s::text[])[1 + (a.k + j) %% 5], 'BUY', 1.1, 1.09, 1.12, 0.1,
                ts + interval '1 hour', round(random()::numeric, 4), 'lstm-v7',
                'mean_reversion', 20260101, 'executed', ts + interval '80 ms',
                ts + interval '900 ms'
         FROM acc a
         CROSS JOIN LATERAL (SELECT j, %(end)s - make_interval(days => %(td)s)
                                 + j * interval '4320 s'
                                 + (random() * 600 + a.k * 0) * interval '1 s' AS ts
                             FROM generate_series(0, %(td)s * 20 - 1) j) s""", p)
    x("""INSERT INTO mt5_signal_executions (time, tenant_id, account_id, signal_id, ticket,
                actual_entry_price, slippage, executed_volume, result_code, spread_at_execution,
                execution_latency_ms, trade_closed, close_price, closed_at, profit, profit_pips,
                feedback_status, sequence)
         SELECT s.time + interval '900 ms', s.tenant_id, s.account_id, s.signal_id,
                row_number() OVER (), 1.1 + random() / 1000, random() / 10000, 0.1, 10009,
                0.00012, (20 + random() * 200)::int, true, 1.101, s.time + interval '1 hour',
                round(((random() - 0.45) * 50)::numeric, 2), 5.5, 'pending',
                row_number() OVER ()
         FROM mt5_trading_signals s WHERE s.tenant_id = %(t)s""", p)
    # What revision 0011's triggers write: one chained event per order, signal and execution
    # (hashes are random here: storage is what is measured, not the chain).
    x("""INSERT INTO mt5_audit_log (time, event_id, tenant_id, event_type, actor, account_id,
                payload, recorded_at, chain_seq, prev_hash, row_hash, app_user)
         SELECT e.time, gen_random_uuid(), %(t)s, e.kind, 'suho_bridge', e.account_id,
                e.payload, e.time + interval '3 ms',
                coalesce((SELECT max(chain_seq) FROM mt5_audit_log WHERE tenant_id = %(t)s), 0)
                    + row_number() OVER (ORDER BY e.time),
                md5(random()::text) || md5(random()::text),
                md5(random()::text) || md5(random()::text), NULL
         FROM (SELECT time, account_id, 'trade_order.inserted' AS kind,
                      jsonb_build_object('ticket', ticket, 'symbol', symbol, 'status', status,
                                         'volume', volume, 'price', price, 'profit', profit,
                                         'comment', comment) AS payload
               FROM mt5_trade_orders WHERE tenant_id = %(t)s
               UNION ALL
               SELECT time, account_id, 'trading_signal.inserted',
                      jsonb_build_object('signal_id', signal_id, 'symbol', symbol,
                                         'action', action, 'entry_price', entry_price,
                                         'model_version', model_version)
               FROM mt5_trading_signals WHERE tenant_id = %(t)s
               UNION ALL
               SELECT time, account_id, 'signal_execution.inserted',
                      jsonb_build_object('signal_id', signal_id, 'ticket', ticket,
                                         'result_code', result_code, 'slippage', slippage)
               FROM mt5_signal_executions WHERE tenant_id = %(t)s) e""", p)
    x("""INSERT INTO mt5_risk_events (time, tenant_id, account_id, event_type, severity, details,
                threshold, observed_value)
         SELECT %(end)s - j * interval '4.8 hours', %(t)s,
                (SELECT account_id FROM acc WHERE k = 1 + j %% %(n)s), 'drawdown', 'warning',
                '{"rule": "daily_loss"}', 5, 5.5
         FROM generate_series(1, %(td)s * 5) j""", p)
    x("RESET session_replication_role")


def _sparse_history(conn: psycopg.Connection[Any], end: dt.datetime, start: dt.datetime) -> None:
    """Two years of chunks before ``start`` (one balance row per account a day, quotes and
    heartbeats over their retention, orders and signals): what planning sees on a database
    that has run for two years, without two years of rows."""
    p = {"end": end, "start": start}
    x = conn.execute
    x("SET session_replication_role = replica")
    x("""INSERT INTO mt5_account_balance_history (time, tenant_id, account_id, balance, equity,
                margin, sequence)
         SELECT %(start)s - d * interval '1 day', a.tenant_id, a.account_id, 1000, 1000, 0,
                10000000 + d
         FROM mt5_user_accounts a CROSS JOIN generate_series(1, 716) d""", p)
    x("""INSERT INTO mt5_broker_quotes (time, tenant_id, account_id, symbol, bid, ask, sequence)
         SELECT %(start)s - h * interval '1 hour', q.tenant_id, q.account_id, q.symbol, 1.1,
                1.1001, 10000000 + h
         FROM (SELECT DISTINCT tenant_id, account_id, symbol FROM mt5_broker_quotes) q
         CROSS JOIN generate_series(1, 87 * 24, 6) h""", p)
    x("""INSERT INTO mt5_ea_heartbeat (time, tenant_id, account_id, status, sequence)
         SELECT %(start)s - d * interval '1 day', a.tenant_id, a.account_id, 'online',
                10000000 + d
         FROM mt5_user_accounts a CROSS JOIN generate_series(1, 27) d""", p)
    x("""INSERT INTO mt5_trade_orders (time, tenant_id, account_id, ticket, symbol, order_type,
                volume, price, profit, status, sequence)
         SELECT %(start)s - d * interval '1 day', a.tenant_id, a.account_id, d, 'EURUSD', 'buy',
                0.1, 1.1, 1, 'closed', 10000000 + d
         FROM mt5_user_accounts a CROSS JOIN generate_series(1, 716, 3) d""", p)
    x("""INSERT INTO mt5_trading_signals (time, tenant_id, account_id, symbol, action, status)
         SELECT %(start)s - d * interval '1 day', a.tenant_id, a.account_id, 'EURUSD', 'BUY',
                'expired'
         FROM mt5_user_accounts a CROSS JOIN generate_series(1, 87, 3) d""", p)
    x("RESET session_replication_role")


# --------------------------------------------------------------------------- measuring


def _scalar(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> Any:
    """The first column of the first row ``sql`` returns."""
    row = conn.execute(sql, params).fetchone()
    assert row is not None, sql
    return row[0]


def _table_sizes(conn: psycopg.Connection[Any],
                 tables: Sequence[str]) -> dict[str, tuple[int, int]]:
    """table -> (total bytes with indexes and TOAST, rows)."""
    out = {}
    for t in tables:
        total = _scalar(conn, "SELECT hypertable_size(%s::regclass)", (t,)) or 0
        rows = _scalar(conn, f"SELECT count(*) FROM {t}")
        out[t] = (int(total), int(rows))
    return out


def _run_columnstore_policies(conn: psycopg.Connection[Any]) -> None:
    """The columnstore jobs, as the scheduler would run them now."""
    for (job,) in conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_compression' ORDER BY job_id").fetchall():
        conn.execute("CALL run_job(%s)", (job,))


def _compress_everything(conn: psycopg.Connection[Any]) -> None:
    for (t,) in conn.execute(
            "SELECT hypertable_name FROM timescaledb_information.hypertables "
            "WHERE hypertable_schema = 'public' AND compression_enabled ORDER BY 1").fetchall():
        conn.execute(f"SELECT count(compress_chunk(c, if_not_compressed => true)) "
                     f"FROM show_chunks('{t}') c")


def _chunk_ids(conn: psycopg.Connection[Any]) -> list[int]:
    return [r[0] for r in conn.execute("SELECT id FROM _timescaledb_catalog.chunk").fetchall()]


def _columnstore_stats(conn: psycopg.Connection[Any],
                       chunks: Sequence[int]) -> dict[str, tuple[int, int, int]]:
    """table -> (bytes before, bytes after, rows) of its compressed chunks among ``chunks``:
    the same rows, before and after, as TimescaleDB measured them converting each chunk."""
    rows = conn.execute("""
        SELECT h.table_name, sum(s.uncompressed_heap_size + s.uncompressed_toast_size
                                 + s.uncompressed_index_size),
               sum(s.compressed_heap_size + s.compressed_toast_size + s.compressed_index_size),
               sum(s.numrows_pre_compression)
        FROM _timescaledb_catalog.compression_chunk_size s
        JOIN _timescaledb_catalog.chunk c ON c.id = s.chunk_id
        JOIN _timescaledb_catalog.hypertable h ON h.id = c.hypertable_id
        WHERE h.schema_name = 'public' AND c.id = ANY(%s) GROUP BY 1""",
                        (list(chunks),)).fetchall()
    return {t: (int(b), int(a), int(n)) for t, b, a, n in rows}


def _refresh_all(conn: psycopg.Connection[Any]) -> None:
    for name in ("mt5_agg_balance_hourly", "mt5_agg_pnl_daily", "mt5_agg_pnl_weekly",
                 "mt5_agg_quotes_ohlc_1m", "mt5_agg_quotes_ohlc_1h", "mt5_agg_quotes_ohlc_1d"):
        conn.execute(f"CALL refresh_continuous_aggregate('{name}', NULL, NULL)")


@dataclass
class Query:
    """One of the seed's queries, raw and through its aggregate, as the tenant login sends
    them (through the mt5_tenant views) and as the BYPASSRLS baseline sends them (the tables
    and the raw aggregates, with a literal tenant)."""

    name: str
    raw: str
    agg: str
    raw_rows: str  # how many raw rows the raw query reads
    aggregate: str  # the raw aggregate (for the baseline)
    view: str  # its tenant view
    table: str  # the raw hypertable


QUERIES = (
    Query("last 24 h balance",
          """SELECT time_bucket('1 hour', time) AS bucket, account_id, last(balance, time),
                    last(equity, time), min(equity)
             FROM {table} WHERE {tenant} time >= %(day)s AND time < %(end)s {account}
             GROUP BY 1, 2 ORDER BY 2, 1""",
          """SELECT bucket, account_id, balance_close, equity_close, equity_low
             FROM {agg} WHERE {tenant} bucket >= %(day)s AND bucket < %(end)s {account}
             ORDER BY 2, 1""",
          "SELECT count(*) FROM {table} WHERE tenant_id = %(t)s AND time >= %(day)s "
          "AND time < %(end)s {account}",
          "mt5_agg_balance_hourly", "mt5_balance_hourly", "mt5_account_balance_history"),
    Query("weekly P&L",
          """SELECT account_id, symbol, count(*), count(*) FILTER (WHERE profit > 0),
                    sum(volume), sum(profit + commission + swap + fee)
             FROM {table} WHERE {tenant} status = 'closed' AND time >= %(week)s
               AND time < %(week_end)s {account}
             GROUP BY 1, 2 ORDER BY 1, 2""",
          """SELECT account_id, symbol, trades, wins, volume, net_profit
             FROM {agg} WHERE {tenant} bucket = %(week)s {account} ORDER BY 1, 2""",
          "SELECT count(*) FROM {table} WHERE tenant_id = %(t)s AND status = 'closed' "
          "AND time >= %(week)s AND time < %(week_end)s {account}",
          "mt5_agg_pnl_weekly", "mt5_pnl_weekly", "mt5_trade_orders"),
    *(Query(f"OHLC, {width} bars, {span}",
            f"""SELECT time_bucket('{bucket}', time) AS bucket, account_id, symbol,
                    first(bid, time), max(bid), min(bid), last(bid, time), count(*)
             FROM {{table}} WHERE {{tenant}} time >= %({start})s AND time < %(end)s {{account}}
             GROUP BY 1, 2, 3 ORDER BY 2, 3, 1""",
            f"""SELECT bucket, account_id, symbol, bid_open, bid_high, bid_low, bid_close, ticks
             FROM {{agg}} WHERE {{tenant}} bucket >= %({start})s AND bucket < %(end)s {{account}}
             ORDER BY 2, 3, 1""",
            f"SELECT count(*) FROM {{table}} WHERE tenant_id = %(t)s AND time >= %({start})s "
            "AND time < %(end)s {account}",
            f"mt5_agg_quotes_ohlc_{suffix}", f"mt5_quotes_ohlc_{suffix}", "mt5_broker_quotes")
      for width, span, bucket, start, suffix in (
          ("1-min", "last hour", "1 minute", "hour", "1m"),
          ("1-h", "last 24 h", "1 hour", "day", "1h"))),
)


def _sql(q: Query, kind: str, *, baseline: bool, account: bool) -> str:
    """``kind``: raw, agg or raw_rows; the tenant login's text, or the baseline's."""
    text: str = getattr(q, kind)
    # The baseline names its tenant literally: TimescaleDB then skips the other tenants'
    # chunks at plan time (the best a service login can do).
    tenant = f"tenant_id = '{TENANT}' AND" if baseline else ""
    return text.format(table=q.table, agg=q.aggregate if baseline else q.view, tenant=tenant,
                       account="AND account_id = %(acc)s" if account else "")


class Login:
    """A connection of one login; tenant logins set the tenant in every transaction."""

    def __init__(self, conninfo: str, tenant: str | None) -> None:
        self.conn = psycopg.connect(conninfo)
        self.tenant = tenant

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        with self.conn.transaction():
            if self.tenant is not None:
                self.conn.execute("SELECT set_config('app.current_tenant_id', %s, true)",
                                  (self.tenant,))
            yield self.conn

    def run(self, sql: str, params: dict[str, Any], *, local: str = "") -> tuple[float, list[Any]]:
        """Wall time of the query as the application sees it: sent, run, every row fetched."""
        with self.transaction() as conn:
            if local:
                conn.execute(local)
            start = time.perf_counter()
            rows = conn.execute(sql, params).fetchall()
            return time.perf_counter() - start, rows

    def explain(self, sql: str, params: dict[str, Any]) -> str:
        with self.transaction() as conn:
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS, SUMMARY) " + sql, params).fetchall()
        return "\n".join(str(r[0]) for r in plan)

    def close(self) -> None:
        self.conn.close()


# psycopg prepares a statement from its 6th execution on a connection: what an application
# that repeats its queries runs is the prepared statement, so the fast sides are warmed past it.
WARM = 6
# Executions per round of a side that takes a few milliseconds (the round takes their median).
REPEAT = 5


def _side(login: Login, sql: str, params: dict[str, Any], *, repeat: int = 1,
          rows: list[Any] | None = None, local: str = "") -> Callable[[], float]:
    """A side of an alternation: ``repeat`` executions, the median of their wall times."""
    def run() -> float:
        times = []
        for _ in range(repeat):
            elapsed, got = login.run(sql, params, local=local)
            times.append(elapsed)
        if rows is not None:
            rows[:] = got
        return statistics.median(times)
    return run


def _alternate(sides: Sequence[Callable[[], float]], rounds: int,
               warm: Sequence[int] | None = None) -> list[list[float]]:
    """Run the sides in turn, ``rounds`` times, after ``warm`` warm-up runs each (one by
    default): every side sees the same machine load."""
    for side, n in zip(sides, warm or [1] * len(sides), strict=True):
        for _ in range(n):
            side()
    times: list[list[float]] = [[] for _ in sides]
    for _ in range(rounds):
        for i, side in enumerate(sides):
            times[i].append(side())
    return times


def _ratio(a: list[float], b: list[float]) -> float:
    return statistics.median([x / y for x, y in zip(a, b, strict=True)])


def _same(a: list[Any], b: list[Any]) -> bool:
    return [tuple(r) for r in a] == [tuple(r) for r in b]


@dataclass
class QueryResult:
    query: str
    scope: str
    raw_ms: float
    agg_ms: float
    speedup: float
    rows: int
    raw_rows: int
    equal: bool
    floor_ms: float = 0.0
    floor_speedup: float = 0.0

    @property
    def rows_cap(self) -> float:
        return self.raw_rows / max(self.rows, 1)

    @property
    def cap(self) -> float:
        return min(self.rows_cap, self.floor_speedup) if self.floor_speedup else self.rows_cap


@dataclass
class SizeResult:
    accounts: int
    rows: dict[str, int]
    before: dict[str, tuple[int, int]]
    stats: dict[str, tuple[int, int, int]]
    queries: list[QueryResult] = field(default_factory=list)
    generate_s: float = 0.0
    compress_s: float = 0.0


def _measure_queries(app: Login, svc: Login, params: dict[str, Any], rounds: int,
                     scopes: Sequence[str]) -> list[QueryResult]:
    out = []
    for q in QUERIES:
        for scope in scopes:
            account = scope == "1 account"
            raw, agg = (_sql(q, k, baseline=False, account=account) for k in ("raw", "agg"))
            raw_rows: list[Any] = []
            agg_rows: list[Any] = []
            sides = [_side(app, raw, params, rows=raw_rows),
                     _side(app, agg, params, repeat=REPEAT, rows=agg_rows)]
            if scope == "whole tenant":
                # The floor of any aggregate: the answer's rows read from a plain table by
                # the same login (planning, one scan, the transfer and decoding of the rows).
                width = len(app.run(agg, params)[1][0])
                cols = ", ".join(f"c{i}" for i in range(width))
                with app.transaction() as conn:
                    conn.execute("DROP TABLE IF EXISTS pg_temp.answer")
                    conn.execute(f"CREATE TEMP TABLE answer ({cols}) ON COMMIT PRESERVE ROWS "
                                 f"AS {agg}", params)
                # (sorted as the aggregate query sorts its answer)
                order = agg[agg.rindex("ORDER BY"):]
                sides.append(_side(app, f"SELECT * FROM pg_temp.answer {order}", {},
                                   repeat=REPEAT))
            times = _alternate(sides, rounds, [1, WARM, WARM][:len(sides)])
            with svc.transaction() as conn:
                n_raw = _scalar(conn, _sql(q, "raw_rows", baseline=True, account=account),
                                params)
            result = QueryResult(q.name, scope, statistics.median(times[0]) * 1000,
                                 statistics.median(times[1]) * 1000,
                                 _ratio(times[0], times[1]), len(agg_rows), int(n_raw),
                                 _same(raw_rows, agg_rows))
            if len(times) == 3:
                result.floor_ms = statistics.median(times[2]) * 1000
                result.floor_speedup = _ratio(times[0], times[2])
            out.append(result)
    return out


# --------------------------------------------------------------------------- the section


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


@section(TITLE, order=50)
def data_section(settings: Settings) -> Section:
    from .ingest import _timescale

    scale = QUICK if settings.repeats < 5 else FULL
    started = time.perf_counter()
    end = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    week_end = end - dt.timedelta(days=end.weekday(), hours=end.hour)
    params = {"t": TENANT, "end": end, "day": end - dt.timedelta(hours=24),
              "hour": end - dt.timedelta(hours=1), "week_end": week_end,
              "week": week_end - dt.timedelta(days=7)}
    loads = [f"start {_load()}"]
    results: list[SizeResult] = []
    extra: dict[str, Any] = {}
    options = ("-c shared_buffers=1GB -c work_mem=32MB -c maintenance_work_mem=256MB "
               "-c max_wal_size=4GB -c max_worker_processes=16 "
               "-c timescaledb.max_background_workers=8")
    with _timescale(options) as server:
        for size in scale.sizes:
            results.append(_one_size(server, size, end, params, scale, extra,
                                     largest=size == scale.sizes[-1]))
            loads.append(f"after {size} accounts {_load()}")
        extra["ingest"] = _ingest_while_converting(server, scale.ingest_pairs)
        loads.append(f"after the ingest pairs {_load()}")
    extra["duration_s"] = time.perf_counter() - started
    extra["loads"] = loads
    return _render(results, extra, scale)


def _one_size(server: Any, size: int, end: dt.datetime, params: dict[str, Any], scale: Scale,
              extra: dict[str, Any], *, largest: bool) -> SizeResult:
    db = _database(server)
    admin = psycopg.connect(_conninfo(server, db), autocommit=True)
    tables = tuple(RATES)
    try:
        t0 = time.perf_counter()
        with admin.transaction():
            _generate(admin, TENANT, size, 1_000_000, end, scale)
        with admin.transaction():
            _generate(admin, CO_TENANT, CO_TENANT_ACCOUNTS, 2_000_000, end, scale)
        for n, small in enumerate(SMALL_TENANTS):
            with admin.transaction():
                _generate(admin, small, 2, 3_000_000 + 1000 * n, end, scale, quote_days=1)
        admin.execute("VACUUM ANALYZE")
        generate_s = time.perf_counter() - t0
        before = _table_sizes(admin, tables)
        rows = {t: n for t, (_, n) in before.items()}
        t0 = time.perf_counter()
        _run_columnstore_policies(admin)
        compress_s = time.perf_counter() - t0
        _refresh_all(admin)
        admin.execute("VACUUM ANALYZE")
        result = SizeResult(size, rows, before, {}, generate_s=generate_s, compress_s=compress_s)
        account = _scalar(admin, "SELECT account_id FROM mt5_user_accounts "
                          "WHERE tenant_id = %s AND mt5_login = 1000001", (TENANT,))
        p = {**params, "acc": account}
        dense = _chunk_ids(admin)  # the size's own rows (not the simulated history)
        if largest:
            extra["agg_bytes"] = _aggregate_bytes(admin)
        app = Login(_conninfo(server, db, APP), TENANT)
        svc = Login(_conninfo(server, db, SVC), None)
        try:
            result.queries = _measure_queries(app, svc, p, scale.rounds,
                                              ("whole tenant", "1 account"))
            if largest:
                _largest_size(admin, app, svc, server, db, p, scale, end, extra)
        finally:
            app.close()
            svc.close()
        # The ratios: every chunk of every columnstore table converted (the same rows before
        # and after, as TimescaleDB measured them).
        _compress_everything(admin)
        result.stats = _columnstore_stats(admin, dense)
        return result
    finally:
        admin.close()
        server.drop_database(db)


def _overheads(app: Login, svc: Login, p: dict[str, Any],
               rounds: int) -> list[tuple[str, float, float, float]]:
    """(query, tenant view ms, baseline ms, ratio) for each query, raw and aggregate."""
    out = []
    for q in QUERIES:
        for kind in ("raw", "agg"):
            mine, base = (_sql(q, kind, baseline=b, account=False) for b in (False, True))
            repeat, warm = (1, 1) if kind == "raw" else (REPEAT, WARM)
            t_app, t_svc = _alternate([_side(app, mine, p, repeat=repeat),
                                       _side(svc, base, p, repeat=repeat)], rounds,
                                      [warm, warm])
            label = f"{q.name}, {'raw' if kind == 'raw' else 'aggregate'}"
            out.append((label, statistics.median(t_app) * 1000, statistics.median(t_svc) * 1000,
                        _ratio(t_app, t_svc)))
    return out


def _largest_size(admin: psycopg.Connection[Any], app: Login, svc: Login, server: Any, db: str,
                  p: dict[str, Any], scale: Scale, end: dt.datetime,
                  extra: dict[str, Any]) -> None:
    rounds = scale.rounds
    # Plans of the whole-tenant queries, as the tenant login runs them.
    extra["plans"] = {q.name: (app.explain(_sql(q, "raw", baseline=False, account=False), p),
                               app.explain(_sql(q, "agg", baseline=False, account=False), p))
                      for q in QUERIES}
    extra["overhead_now"] = _overheads(app, svc, p, rounds)
    extra["chunks_now"] = _chunks(admin)
    # JIT on the raw queries of the tenant login (on by default in PostgreSQL 15).
    jit = []
    for q in QUERIES:
        raw = _sql(q, "raw", baseline=False, account=False)
        t_on, t_off = _alternate([_side(app, raw, p, local="SET LOCAL jit = on"),
                                  _side(app, raw, p, local="SET LOCAL jit = off")], rounds)
        with app.transaction() as conn:
            conn.execute("SET LOCAL jit = on")
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN (ANALYZE, SUMMARY) " + raw, p).fetchall())
        fired = "JIT:" in plan
        jit.append((q.name, statistics.median(t_on) * 1000, statistics.median(t_off) * 1000,
                    _ratio(t_on, t_off), fired))
    extra["jit"] = jit
    # Real time against materialized only, per aggregate the queries read.
    modes = []
    for q in QUERIES:
        agg = _sql(q, "agg", baseline=False, account=False)
        current = _scalar(
            admin, "SELECT materialized_only FROM timescaledb_information.continuous_aggregates "
            "WHERE view_name = %s", (q.aggregate,))

        def mode(only: bool, sql: str = agg, name: str = q.aggregate) -> Callable[[], float]:
            measure = _side(app, sql, p, repeat=REPEAT)

            def run() -> float:
                admin.execute(f"ALTER MATERIALIZED VIEW {name} "
                              f"SET (timescaledb.materialized_only = {str(only).lower()})")
                measure()  # the first execution after the change plans again
                return measure()
            return run

        t_only, t_real = _alternate([mode(True), mode(False)], rounds)
        admin.execute(f"ALTER MATERIALIZED VIEW {q.aggregate} "
                      f"SET (timescaledb.materialized_only = {str(current).lower()})")
        modes.append((q.aggregate, current, statistics.median(t_only) * 1000,
                      statistics.median(t_real) * 1000))
    extra["modes"] = modes
    extra["copy"] = _copy_rates(admin, server, db, end, max(3, rounds // 3))
    # Two years of chunks: sparse history before the dense rows, converted as the policies
    # would have, and the aggregates refreshed over it.
    start = end - dt.timedelta(days=scale.balance_days)
    t0 = time.perf_counter()
    with admin.transaction():
        _sparse_history(admin, end, start)
    _run_columnstore_policies(admin)
    _refresh_all(admin)
    admin.execute("VACUUM ANALYZE")
    extra["history_s"] = time.perf_counter() - t0
    extra["chunks_2y"] = _chunks(admin)
    extra["overhead_2y"] = _overheads(app, svc, p, rounds)


def _chunks(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, int]]:
    """hypertable -> (chunks, of which compressed)."""
    return {t: (int(n), int(c)) for t, n, c in conn.execute(
        "SELECT hypertable_name, count(*), count(*) FILTER (WHERE is_compressed) "
        "FROM timescaledb_information.chunks WHERE hypertable_schema = 'public' "
        "GROUP BY 1 ORDER BY 1").fetchall()}


def _aggregate_bytes(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, int]]:
    """aggregate -> (bytes, rows) of its materialization."""
    out = {}
    for name, schema, table in conn.execute(
            "SELECT view_name, materialization_hypertable_schema, "
            "materialization_hypertable_name FROM timescaledb_information.continuous_aggregates"
    ).fetchall():
        total = _scalar(conn, "SELECT hypertable_size(%s::regclass)",
                        (f"{schema}.{table}",)) or 0
        rows = _scalar(conn, f"SELECT count(*) FROM {schema}.{table}")
        out[name] = (int(total), int(rows))
    return out


def _copy_rates(admin: psycopg.Connection[Any], server: Any, db: str, end: dt.datetime,
                repeats: int) -> list[tuple[str, float]]:
    """Rows/s of the bridge's direct COPY of balance rows (a BYPASSRLS ingest login) into
    the rowstore chunk of the current week and into a converted (compressed) chunk."""
    rates: dict[str, list[float]] = {"rowstore": [], "columnstore": []}
    chunk_start = _scalar(
        admin, "SELECT range_start FROM timescaledb_information.chunks "
        "WHERE hypertable_name = 'mt5_account_balance_history' AND is_compressed "
        "ORDER BY range_end DESC LIMIT 1")
    n_accounts, per_account = 10, 1440
    with psycopg.connect(_conninfo(server, db, INGEST)) as conn:
        for r in range(repeats):
            for target, first in (("rowstore", end - dt.timedelta(hours=12)),
                                  ("columnstore", chunk_start + dt.timedelta(hours=12))):
                accounts = [uuid.uuid4() for _ in range(n_accounts)]
                with admin.transaction():
                    for i, a in enumerate(accounts):
                        admin.execute(
                            "INSERT INTO mt5_user_accounts (account_id, tenant_id, user_id, "
                            "broker_name, broker_server, mt5_login, mt5_account_number, "
                            "account_type) VALUES (%s, 'tenant_copy', 'u', 'B', 'B', %s, '1', "
                            "'real')", (a, 5_000_000 + 100 * r + 50 * (target == "rowstore") + i))
                rows = [(first + dt.timedelta(seconds=30 * j), "tenant_copy", a, 1000 + j,
                         1000 + j, 0, 1000 + j, "USD", j)
                        for a in accounts for j in range(per_account)]
                start = time.perf_counter()
                with conn.cursor().copy(
                        "COPY mt5_account_balance_history (time, tenant_id, account_id, "
                        "balance, equity, margin, free_margin, currency, sequence) "
                        "FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                conn.commit()
                rates[target].append(len(rows) / (time.perf_counter() - start))
    return [(k, statistics.median(v)) for k, v in rates.items()]


def _ingest_while_converting(server: Any, pairs: int) -> list[tuple[float, float, float]]:
    """The ingest section's end-to-end benchmark (JetStream -> committed rows, frames of 100
    packets, 2 workers, 50,000 packets of quotes, snapshots, heartbeats and orders) with the
    columnstore policies of quotes and balances converting older chunks meanwhile, and
    without: ``pairs`` of (idle packets/s, converting packets/s, seconds the policies ran),
    alternated so that both see the same machine. Before each converting round the chunks
    go back to the rowstore, so the policies have the same work every time."""
    import asyncio
    import threading

    from tests.integration.ingest._support import libpq, nats_server

    from .ingest import _accounts, _bridge_time, _feed_frames
    from .ingest import _database as migrated

    admin, ingest_url = migrated(server)
    n, kinds = 50_000, ("quote", "quote", "snapshot", "heartbeat", "order")
    out: list[tuple[float, float, float]] = []
    try:
        accounts = _accounts(admin, 30)
        with psycopg.connect(libpq(admin), autocommit=True) as conn:
            conn.execute("SELECT alter_job(job_id, scheduled => false) "
                         "FROM timescaledb_information.jobs WHERE job_id >= 1000")
            # Two days of history past the columnstore's window (2 days after a chunk ends;
            # balance chunks are 7 days long): a quote every second on 10 streams, balances
            # every 30 s for every account.
            conn.execute("SET session_replication_role = replica")
            conn.execute("""
                INSERT INTO mt5_broker_quotes (time, tenant_id, account_id, symbol, bid, ask,
                                               sequence)
                SELECT now() - interval '6 days' + i * interval '1 s', a.tenant_id,
                       a.account_id, 'EURUSD', round((1.1 + random() / 100)::numeric, 5),
                       round((1.1002 + random() / 100)::numeric, 5), i
                FROM (SELECT * FROM mt5_user_accounts ORDER BY mt5_login LIMIT 10) a,
                     generate_series(1, 2 * 86400) i""")
            conn.execute("""
                INSERT INTO mt5_account_balance_history (time, tenant_id, account_id, balance,
                                                         equity, margin, sequence)
                SELECT now() - interval '12 days' + i * interval '30 s', a.tenant_id,
                       a.account_id, 10000, round((10000 + random() * 100)::numeric, 2), 100, i
                FROM mt5_user_accounts a, generate_series(1, 2 * 2880) i""")
            conn.execute("RESET session_replication_role")
            conn.execute("VACUUM ANALYZE")
            jobs = [r[0] for r in conn.execute(
                "SELECT job_id FROM timescaledb_information.jobs "
                "WHERE proc_name = 'policy_compression' AND hypertable_name IN "
                "('mt5_broker_quotes', 'mt5_account_balance_history') ORDER BY job_id")]

        def convert(took: list[float]) -> None:
            with psycopg.connect(libpq(admin), autocommit=True) as conn:
                t0 = time.perf_counter()
                for job in jobs:
                    conn.execute("CALL run_job(%s)", (job,))
                # and the vacuum that autovacuum would run after it on the emptied chunks
                conn.execute("VACUUM ANALYZE mt5_broker_quotes, mt5_account_balance_history")
                took.append(time.perf_counter() - t0)

        with nats_server() as nats:
            for r in range(pairs + 1):  # the first pair warms up
                rates = []
                policy_s: list[float] = []
                for converting in (False, True):
                    if converting:
                        with psycopg.connect(libpq(admin), autocommit=True) as conn:
                            conn.execute(
                                "SELECT count(decompress_chunk(c, true)) FROM show_chunks("
                                "'mt5_broker_quotes') c")
                            conn.execute(
                                "SELECT count(decompress_chunk(c, true)) FROM show_chunks("
                                "'mt5_account_balance_history') c")
                            # (not timed: autovacuum would otherwise clean up after this
                            # set-up during the measured runs)
                            conn.execute("VACUUM ANALYZE mt5_broker_quotes, "
                                         "mt5_account_balance_history")
                    frames = _feed_frames(accounts, n, 100,
                                          1_000_000 * (2 * r + converting + 1), kinds)
                    worker = threading.Thread(target=convert, args=(policy_s,))
                    if converting:
                        worker.start()
                    took = asyncio.run(_bridge_time(ingest_url, admin, nats.url, frames, 50, [],
                                                    workers=2))
                    if converting:
                        worker.join()
                    rates.append(n / took)
                if r:
                    out.append((rates[0], rates[1], policy_s[0]))
    finally:
        server.drop_database(admin.rsplit("/", 1)[1].split("?")[0])
    return out


# --------------------------------------------------------------------------- report


def _projection(stats: dict[str, tuple[int, int, int]], before: dict[str, tuple[int, int]],
                agg_bytes: dict[str, tuple[int, int]],
                accounts: int) -> tuple[float, dict[str, float]]:
    """GB held after a year at the seed's rates for ``accounts`` accounts."""
    streams = accounts * STREAMS_PER_ACCOUNT
    per_table = {}
    for table, (per_account, retention, after, chunk_days) in RATES.items():
        if table == "mt5_broker_quotes":
            per_day = QUOTES_PER_STREAM * streams
        elif table == "mt5_risk_events":
            per_day = 5.0 * max(1.0, accounts / 100)
        else:
            assert per_account is not None, table
            per_day = float(per_account) * accounts
        kept = min(365, retention)
        rowstore_bytes = before[table][0] / max(before[table][1], 1)
        if after is None or table not in stats:
            per_table[table] = per_day * kept * rowstore_bytes
            continue
        _b, a, n = stats[table]
        columnstore_bytes = a / max(n, 1)
        # On average half a chunk plus the conversion delay is still in the rowstore.
        raw_days = min(kept, after + chunk_days / 2)
        per_table[table] = per_day * (raw_days * rowstore_bytes
                                      + (kept - raw_days) * columnstore_bytes)
    # Aggregates: rows a year at these rates, at the bytes per row measured.
    agg_rows: dict[str, float] = {
        "mt5_agg_balance_hourly": 24 * accounts * 365,
        "mt5_agg_pnl_daily": 5 * accounts * 365,
        "mt5_agg_pnl_weekly": 5 * accounts * 52,
        "mt5_agg_quotes_ohlc_1m": 1440 * streams * 90,
        "mt5_agg_quotes_ohlc_1h": 24 * streams * 365,
        "mt5_agg_quotes_ohlc_1d": streams * 365,
    }
    for name, count in agg_rows.items():
        total, rows = agg_bytes.get(name, (0, 0))
        per_table[name] = count * total / max(rows, 1)
    gb = {k: v / 1e9 for k, v in per_table.items()}
    return sum(gb.values()), gb


def _fmt_ms(x: float) -> str:
    return f"{x:,.1f}" if x >= 10 else f"{x:,.2f}"


def _plot(results: list[SizeResult]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r.accounts for r in results]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.6))
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for q, colour in zip(QUERIES, colours, strict=True):
        tenant = [next(x for x in r.queries if x.query == q.name and x.scope == "whole tenant")
                  for r in results]
        left.plot(sizes, [x.raw_ms for x in tenant], "-o", color=colour, label=f"{q.name}, raw")
        left.plot(sizes, [x.agg_ms for x in tenant], "--s", color=colour,
                  label=f"{q.name}, aggregate")
    left.set(xscale="log", yscale="log", xlabel="accounts of the tenant",
             ylabel="wall time, ms (tenant login, rows fetched)",
             title="The seed's queries for a whole tenant")
    left.set_xticks(sizes, [str(s) for s in sizes])
    left.legend(fontsize=7)
    for table, colour in (("mt5_account_balance_history", "tab:blue"),
                          ("mt5_broker_quotes", "tab:orange"),
                          ("mt5_ea_heartbeat", "tab:green")):
        before = [r.stats[table][0] / r.stats[table][2] for r in results if table in r.stats]
        after = [r.stats[table][1] / r.stats[table][2] for r in results if table in r.stats]
        short = table.removeprefix("mt5_")
        right.plot(sizes[:len(before)], before, "-o", color=colour, label=f"{short}, rowstore")
        right.plot(sizes[:len(after)], after, "--s", color=colour, label=f"{short}, columnstore")
    right.set(xscale="log", yscale="log", xlabel="accounts of the tenant",
              ylabel="bytes per row (with indexes)", title="Storage, the same rows")
    right.set_xticks(sizes, [str(s) for s in sizes])
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    plt.close(fig)


def _render(results: list[SizeResult], extra: dict[str, Any], scale: Scale) -> Section:
    largest = results[-1]
    rows: list[Row] = []
    # Acceptance: 10x smaller after compression.
    for table in ("mt5_account_balance_history", "mt5_broker_quotes"):
        b, a, n = largest.stats[table]
        rows.append(Row(f"{table}: bytes per row, rowstore / columnstore (same {n:,} rows)",
                        None, "x smaller", 10, ">= 10x",
                        f"{b / n:,.0f} -> {a / n:,.1f} B/row", measured=b / a))
    gb100, _ = _projection(largest.stats, largest.before, extra["agg_bytes"], 100)
    gb1000, _ = _projection(largest.stats, largest.before, extra["agg_bytes"], 1000)
    rows.append(Row("projected storage after a year, 100 accounts, seed's rates", None, "GB",
                    None, f"<= {SEED_GB:.0f} GB", "breakdown below", measured=gb100))
    rows.append(Row("seed's 50 GB / projection for 100 accounts", None, "x", 1, ">= 1x", "",
                    measured=SEED_GB / gb100))
    rows.append(Row("projected storage after a year, 1,000 accounts", None, "GB", None, "",
                    "stated, no target", measured=gb1000))
    for r in largest.queries:
        if r.scope != "whole tenant":
            continue
        cap = r.cap
        target = 50.0 if cap >= 50 else 0.8 * cap
        rows.append(Row(
            f"{r.query}, whole tenant ({largest.accounts} accounts): raw / aggregate, wall",
            None, "x", target, ">= 50x" if cap >= 50 else f">= 80% of cap {cap:.1f}x",
            f"raw {_fmt_ms(r.raw_ms)} ms, aggregate {_fmt_ms(r.agg_ms)} ms, {r.rows:,} rows; "
            f"answers {'equal' if r.equal else 'DIFFER'}", measured=r.speedup))
        rows.append(Row(f"{r.query}: answers of raw and aggregate equal", None, "", 1, "equal",
                        "", measured=1.0 if r.equal else 0.0))
    worst_now = max(x[3] for x in extra["overhead_now"] if x[0].endswith("aggregate"))
    worst_2y = max(x[3] for x in extra["overhead_2y"] if x[0].endswith("aggregate"))
    rows.append(Row("tenant views / BYPASSRLS literal tenant, aggregates, worst query",
                    None, "x", None, "<= 1.10",
                    f"{sum(n for n, _ in extra['chunks_now'].values()):,} chunks",
                    measured=worst_now))
    rows.append(Row("the same at two years of chunks (simulated)", None, "x", None, "<= 1.10",
                    f"{sum(n for n, _ in extra['chunks_2y'].values()):,} chunks",
                    measured=worst_2y))
    # Row.passed reads ">=": express "at most 10%" as 1.10 / ratio >= 1.
    rows.append(Row("1.10 / worst aggregate overhead at two years (>= 1 means <= 10%)", None,
                    "x", 1.0, ">= 1", "", measured=1.10 / worst_2y))
    copy = dict(extra["copy"])
    rows.append(Row("COPY of balance rows (bridge login, direct COPY) into the rowstore",
                    None, "rows/s", None, "", "", measured=copy["rowstore"]))
    rows.append(Row("the same into a compressed chunk (late history)", None, "rows/s", None,
                    "", f"{copy['columnstore'] / copy['rowstore']:.2f}x the rowstore",
                    measured=copy["columnstore"]))
    pairs = extra["ingest"]
    ratio = _ratio([c for _, c, _ in pairs], [i for i, _, _ in pairs])
    rows.append(Row("bridge end to end while the columnstore policies convert / idle", None,
                    "x", 0.9, ">= 0.90",
                    f"median {statistics.median(i for i, _, _ in pairs):,.0f} -> "
                    f"{statistics.median(c for _, c, _ in pairs):,.0f} packets/s; "
                    f"{len(pairs)} pairs", measured=ratio))
    _plot(results)
    return Section(TITLE, _intro(scale, extra), rows,
                   extra_markdown=_details(results, extra, gb100, gb1000))


def _intro(scale: Scale, extra: dict[str, Any]) -> str:
    return (
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC in {extra['duration_s'] / 60:.1f} "
        f"min; load average (1, 5, 15 min) {'; '.join(extra['loads'])}. One native TimescaleDB "
        "2.28 server, one database per size, migrated to head. Tenant A has the size's "
        f"accounts, tenant B {CO_TENANT_ACCOUNTS} more in the same tables, and "
        f"{len(SMALL_TENANTS)} tenants 2 each (quotes of the last day), at the seed's rates: "
        f"balance every 30 s ({scale.balance_days} days), quotes every second on one stream "
        f"(broker symbol) per 10 accounts ({scale.quote_days} days), heartbeats every 30 s "
        f"({scale.heartbeat_days} days), 50 order events, 20 signals and 20 executions a day "
        f"per account ({scale.trade_days} days), the audit events revision 0011's triggers "
        "write for them, 5 risk events a day; generated inside the server. Policies are run "
        "by hand (the scheduler is paused for these databases): the columnstore policies "
        "once, as they would run at the data's end, then every aggregate refreshed. Queries "
        "run as a login in `mt5_app` through the `mt5_tenant` views (wall time: sent, run, "
        "every row fetched by psycopg), raw and aggregate alternately, median of "
        f"{scale.rounds} rounds; every answer compared. The cap of a ratio is the lower of "
        "the raw rows per aggregate row and raw time / the time to fetch the same answer "
        "from a plain table (the floor of any aggregate); where the cap is under 50x, the "
        "target is 80% of it."
    )


def _details(results: list[SizeResult], extra: dict[str, Any], gb100: float,
             gb1000: float) -> str:
    out: list[str] = ["![query time and bytes per row against data size](benchmarks-data.png)",
                      ""]
    out += ["#### Queries, per size", "",
            "| accounts | query | scope | raw ms | aggregate ms | raw / aggregate | raw rows per "
            "answer row | floor ms | cap | answers |",
            "|---:|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        for q in r.queries:
            floor = _fmt_ms(q.floor_ms) if q.floor_ms else ""
            cap = f"{q.cap:.1f}x" if q.floor_ms else ""
            out.append(f"| {r.accounts} | {q.query} | {q.scope} | {_fmt_ms(q.raw_ms)} | "
                       f"{_fmt_ms(q.agg_ms)} | {q.speedup:.1f}x | {q.rows_cap:,.0f} | {floor} | "
                       f"{cap} | {'equal' if q.equal else 'DIFFER'} ({q.rows:,} rows) |")
    out += ["", "#### Storage per table, per size (bytes per row with indexes and TOAST)", "",
            "| accounts | table | rows | rowstore B/row (whole table, before) | compressed rows "
            "| before B/row | after B/row | ratio |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        for table in RATES:
            total, n = r.before[table]
            if table in r.stats:
                b, a, c = r.stats[table]
                tail = f"{c:,} | {b / c:,.0f} | {a / c:,.1f} | {b / a:.1f}x"
            else:
                tail = "rowstore | | | "
            out.append(f"| {r.accounts} | {table} | {n:,} | {total / max(n, 1):,.0f} | {tail} |")
    out += ["", "Generation and the columnstore policies' run: "
            + "; ".join(f"{r.accounts} accounts {r.generate_s:.0f} s and {r.compress_s:.0f} s"
                        for r in results) + "."]
    largest = results[-1]
    _, quote_after, quote_rows = largest.stats["mt5_broker_quotes"]
    quote_bytes = quote_after / quote_rows
    for label, accounts, gb in (("100 accounts", 100, gb100),
                                   ("1,000 accounts", 1000, gb1000)):
        _, parts = _projection(largest.stats, largest.before, extra["agg_bytes"], accounts)
        out += ["", f"#### Projected storage after one year, {label}: {gb:,.1f} GB "
                f"(the seed says ~{SEED_GB:.0f} GB for 100 accounts)", "",
                "| relation | GB |", "|---|---:|"]
        out += [f"| {k} | {v:,.2f} |" for k, v in sorted(parts.items(), key=lambda kv: -kv[1])]
    out += ["", "Each table keeps a year or its retention, whichever is shorter, at the seed's "
            "rates; on average half a chunk plus the columnstore delay is in the rowstore at "
            "the rowstore's bytes per row, the rest at the columnstore's (both measured at the "
            f"largest size). Quotes: {STREAMS_PER_ACCOUNT * 100:.0f} stream(s) of 86,400 a day "
            "per 100 accounts; every added stream adds "
            f"{QUOTES_PER_STREAM * 90 * quote_bytes / 1e9:.2f} GB (90 days in the columnstore). "
            "Audit log: one event per order, signal and execution (90 a day per account), "
            "what revision 0011's triggers write."]
    out += ["", "#### Tenant views against a BYPASSRLS login with a literal tenant "
            "(largest size)", "", "| query | chunks | tenant view ms | baseline ms | ratio |",
            "|---|---:|---:|---:|---:|"]
    for key, chunks in (("overhead_now", "chunks_now"), ("overhead_2y", "chunks_2y")):
        n = sum(c for c, _ in extra[chunks].values())
        for label, mine, base, ratio in extra[key]:
            out.append(f"| {label} | {n:,} | {_fmt_ms(mine)} | {_fmt_ms(base)} | {ratio:.2f}x |")
    out += ["", "Chunks (of which compressed) now and at two years: " + "; ".join(
        f"{t} {extra['chunks_now'].get(t, (0, 0))[0]} -> {n} ({c})"
        for t, (n, c) in extra["chunks_2y"].items()) + f" (history added in "
        f"{extra['history_s']:.0f} s)."]
    out += ["", "#### JIT on the raw queries of the tenant login (largest size)", "",
            "| query | jit = on ms | jit = off ms | on / off | JIT compiled |",
            "|---|---:|---:|---:|---|"]
    out += [f"| {n} | {_fmt_ms(a)} | {_fmt_ms(b)} | {r:.2f}x | {'yes' if f else 'no'} |"
            for n, a, b, r, f in extra["jit"]]
    out += ["", "#### Materialized only against real time (largest size, aggregates freshly "
            "refreshed: the real-time part has no rows to add)", "",
            "| aggregate | schema's choice | materialized only ms | real time ms |",
            "|---|---|---:|---:|"]
    out += [f"| {n} | {'materialized only' if m else 'real time'} | {_fmt_ms(a)} | {_fmt_ms(b)} |"
            for n, m, a, b in extra["modes"]]
    out += ["", "#### The bridge's end-to-end benchmark while the columnstore policies run", "",
            "The ingest section's end to end (JetStream -> committed rows, frames of 100 "
            "packets, 2 workers, 50,000 packets, 30 accounts) in a fresh database holding two "
            "days of quotes (10 streams) and balances past the columnstore window; in each "
            "pair one run with the scheduler's jobs paused and one while the quotes' and "
            "balances' columnstore policies (`CALL run_job`, the scheduler's own procedure) "
            "convert those chunks, which are taken back to the rowstore before each run.", "",
            "| pair | idle packets/s | converting packets/s | converting / idle | policies ran "
            "s | bridge s |", "|---:|---:|---:|---:|---:|---:|"]
    out += [f"| {k} | {i:,.0f} | {c:,.0f} | {c / i:.2f}x | {s:.1f} | {50_000 / c:.1f} |"
            for k, (i, c, s) in enumerate(extra["ingest"], 1)]
    out += ["", "#### Plans of the whole-tenant queries at the largest size (tenant login)", ""]
    for name, (raw, agg) in extra["plans"].items():
        out += [f"<details><summary>{name}: raw, then aggregate</summary>", "", "```",
                raw, "", agg, "```", "", "</details>", ""]
    return "\n".join(out)
