"""aggregates for the seed's benchmark queries, and their tenant views

One aggregate per benchmark query of the seed, each closed to every tenant role and read
through a ``security_barrier`` view that keeps the current tenant's rows (docs/schema.md, trap 2):

===========================  ===========================  ===================================
aggregate (owner only)       tenant view                  benchmark query
===========================  ===========================  ===================================
mt5_agg_balance_hourly       mt5_balance_hourly           last 24 h balance (24 rows/account)
mt5_agg_pnl_daily            mt5_pnl_daily                weekly P&L summary (closed trades)
mt5_agg_quotes_ohlc_1m       mt5_quotes_ohlc_1m           symbol quote OHLC, 1 minute
mt5_agg_quotes_ohlc_1h       mt5_quotes_ohlc_1h           symbol quote OHLC, 1 hour
===========================  ===========================  ===================================

timescale: continuous aggregates with real-time aggregation (``materialized_only = false``:
the newest, not yet materialized buckets are computed from the raw rows at query time),
owned by ``mt5_maintenance`` (``BYPASSRLS``) so that refreshes see every tenant (docs/schema.md,
trap 4), created while the source's row-level security is briefly off (trap 1), then
refreshed outside the transaction (trap 5). apache and postgresql: materialized views with a unique
index, refreshed by ``CALL mt5_maintain()``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 00:00:00
"""

from collections.abc import Sequence

from alembic import op

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.db import Edition
from suho_mt5.migrations.operations import bucket_expr, first_expr, last_expr, migration_edition

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READERS = ("mt5_app", "mt5_readonly")


def _ohlc(edition: Edition, column: str) -> str:
    return (
        f"{first_expr(edition, column)} AS {column}_open, max({column}) AS {column}_high, "
        f"min({column}) AS {column}_low, {last_expr(edition, column)} AS {column}_close"
    )


def balance_hourly(edition: Edition) -> str:
    bucket = bucket_expr(edition, "1 hour")
    return f"""SELECT {bucket} AS bucket, tenant_id, account_id,
    {_ohlc(edition, "balance")},
    {_ohlc(edition, "equity")},
    min(margin_level) FILTER (WHERE margin > 0) AS margin_level_min,
    count(*) AS samples
FROM mt5_account_balance_history
GROUP BY {bucket}, tenant_id, account_id"""


def pnl_daily(edition: Edition) -> str:
    bucket = bucket_expr(edition, "1 day")
    return f"""SELECT {bucket} AS bucket, tenant_id, account_id, symbol,
    count(*) AS trades,
    count(*) FILTER (WHERE profit > 0) AS wins,
    count(*) FILTER (WHERE profit < 0) AS losses,
    sum(volume) AS volume,
    sum(profit) AS profit,
    sum(commission) AS commission,
    sum(swap) AS swap,
    sum(fee) AS fee,
    sum(profit + commission + swap + fee) AS net_profit
FROM mt5_trade_orders
WHERE status = 'closed'
GROUP BY {bucket}, tenant_id, account_id, symbol"""


def quotes_ohlc(edition: Edition, width: str) -> str:
    bucket = bucket_expr(edition, width)
    return f"""SELECT {bucket} AS bucket, tenant_id, account_id, symbol,
    {_ohlc(edition, "bid")},
    {_ohlc(edition, "ask")},
    avg(ask - bid) AS spread_avg,
    max(ask - bid) AS spread_max,
    avg(price_deviation) AS deviation_avg,
    max(abs(price_deviation)) AS deviation_max_abs,
    sum(volume) AS volume,
    count(*) AS ticks
FROM mt5_broker_quotes
GROUP BY {bucket}, tenant_id, account_id, symbol"""


# name, tenant view, source, bucket width, unique key, definition
def aggregates(edition: Edition) -> list[tuple[str, str, str, str, tuple[str, ...], str]]:
    per_account = ("bucket", "tenant_id", "account_id")
    per_symbol = (*per_account, "symbol")
    return [
        ("mt5_agg_balance_hourly", "mt5_balance_hourly", "mt5_account_balance_history", "1 hour",
         per_account, balance_hourly(edition)),
        ("mt5_agg_pnl_daily", "mt5_pnl_daily", "mt5_trade_orders", "1 day",
         per_symbol, pnl_daily(edition)),
        ("mt5_agg_quotes_ohlc_1m", "mt5_quotes_ohlc_1m", "mt5_broker_quotes", "1 minute",
         per_symbol, quotes_ohlc(edition, "1 minute")),
        ("mt5_agg_quotes_ohlc_1h", "mt5_quotes_ohlc_1h", "mt5_broker_quotes", "1 hour",
         per_symbol, quotes_ohlc(edition, "1 hour")),
    ]


def upgrade() -> None:
    edition = migration_edition()
    specs = aggregates(edition)
    for name, view, source, width, key, definition in specs:
        op.create_continuous_aggregate(
            name,
            definition,
            source=source,
            bucket_width=width,
            unique_key=key,
            tenant_view=view,
            reader_roles=READERS,
        )
    # Materializes rows that existed before this revision (an upgrade of a live database).
    # On timescale this cannot run in a transaction block: it commits what came before.
    for name, *_ in specs:
        op.refresh_continuous_aggregate(name)


def downgrade() -> None:
    for name, view, *_ in reversed(aggregates(migration_edition())):
        op.drop_continuous_aggregate(name, tenant_view=view)
