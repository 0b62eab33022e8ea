"""Each tenant's aggregate view equals a raw GROUP BY over the base table for that tenant.

The expected rows are computed here from the base tables with plain SQL, independently of
the aggregates' definitions. Run after the refresh (``CALL mt5_maintain()`` as the
maintenance role, which on timescale runs the refresh jobs, up to the newest row and in
hierarchy order): empty aggregates would mean a refresh that could not see the tenants' rows
(docs/schema.md, trap 4). The aggregates are materialized only (revision 0013): what the
views show is what the refresh stored. Runs on every engine.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from tests.db.schema._support import TENANT_A, TENANT_B, Schema, TenantData, session


def _bucket(width: str) -> str:
    return f"date_bin(INTERVAL '{width}', time, TIMESTAMPTZ '2000-01-03 00:00:00+00')"


def _ohlc(column: str) -> str:
    return (f"(array_agg({column} ORDER BY time))[1], max({column}), min({column}),"
            f" (array_agg({column} ORDER BY time DESC))[1]")


_PNL = (" count(*), count(*) FILTER (WHERE profit > 0), count(*) FILTER (WHERE profit < 0),"
        " sum(volume), sum(profit), sum(commission), sum(swap), sum(fee),"
        " sum(profit) + sum(commission) + sum(swap) + sum(fee)"
        " FROM mt5_trade_orders WHERE tenant_id = :t AND status = 'closed' GROUP BY 1, 2, 3, 4")

EXPECTED = {
    "mt5_balance_hourly": (
        f"SELECT {_bucket('1 hour')} AS bucket, tenant_id, account_id, {_ohlc('balance')},"
        f" {_ohlc('equity')}, min(margin_level) FILTER (WHERE margin > 0), count(*)"
        " FROM mt5_account_balance_history WHERE tenant_id = :t GROUP BY 1, 2, 3"
    ),
    "mt5_pnl_daily": f"SELECT {_bucket('1 day')} AS bucket, tenant_id, account_id, symbol,{_PNL}",
    # built on the daily P&L (revision 0013), still equal to the raw orders
    "mt5_pnl_weekly": f"SELECT {_bucket('7 days')} AS bucket, tenant_id, account_id, symbol,{_PNL}",
    # the hourly and daily bars are built on the finer bars (revision 0013): their averages
    # come from the sums, so they equal the raw quotes' to the last digit
    **{
        f"mt5_quotes_ohlc_{suffix}": (
            f"SELECT {_bucket(width)} AS bucket, tenant_id, account_id, symbol, {_ohlc('bid')},"
            f" {_ohlc('ask')}, avg(ask - bid), max(ask - bid), avg(price_deviation),"
            " max(abs(price_deviation)), sum(volume), count(*), sum(ask - bid),"
            " sum(price_deviation), count(price_deviation)"
            " FROM mt5_broker_quotes WHERE tenant_id = :t GROUP BY 1, 2, 3, 4"
        )
        for suffix, width in (("1m", "1 minute"), ("1h", "1 hour"), ("1d", "1 day"))
    },
}


def _rows(conn: sa.Connection, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(r) for r in conn.execute(sa.text(sql), params).all())


@pytest.mark.parametrize("view", sorted(EXPECTED))
@pytest.mark.parametrize("tenant", [TENANT_A, TENANT_B])
def test_tenant_view_equals_group_by_over_the_base_table(
    schema: Schema, seeded: dict[str, TenantData], view: str, tenant: str
) -> None:
    with session(schema.engine) as conn:
        expected = _rows(conn, EXPECTED[view], t=tenant)
    with session(schema.engine, "mt5_readonly", tenant) as conn:
        got = _rows(conn, f"SELECT * FROM {view}")
    assert expected, "the seeded data must give every aggregate some rows"
    assert got == expected


@pytest.mark.parametrize("view", sorted(EXPECTED))
def test_materialized_rows_cover_both_tenants(
    schema: Schema, seeded: dict[str, TenantData], view: str
) -> None:
    """What the refresh stored, not only what real-time aggregation computes on the fly."""
    with session(schema.engine) as conn:
        if schema.edition.has_continuous_aggregates:
            table = conn.execute(sa.text(
                "SELECT format('%I.%I', materialization_hypertable_schema,"
                " materialization_hypertable_name)"
                " FROM timescaledb_information.continuous_aggregates WHERE view_name = :v"),
                {"v": view.replace("mt5_", "mt5_agg_")}).scalar_one()
        else:
            table = view.replace("mt5_", "mt5_agg_")
        counts = dict(conn.execute(sa.text(
            f"SELECT tenant_id, count(*) FROM {table} GROUP BY 1")).all())
    assert set(counts) == {TENANT_A, TENANT_B}
