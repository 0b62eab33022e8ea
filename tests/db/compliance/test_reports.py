"""Compliance reports (issue #14, build 3): the seed's monthly trading report equals totals
computed here, is stored once per tenant, type and month; best-execution statistics; the
MiFID II transaction export."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from suho_mt5.compliance import reports
from suho_mt5.errors import ReportError
from tests.db.compliance._support import (
    Db,
    create_account,
    new_tenant,
    tenant_tx,
    trading_day,
)

pytestmark = pytest.mark.engines("postgresql", "timescale")

MONTH = "2026-10"
START = datetime(2026, 10, 1, tzinfo=UTC)
END = datetime(2026, 11, 1, tzinfo=UTC)


def _orders(n: int) -> list[dict[str, Any]]:
    """Orders in and around the month, every status, two symbols."""
    statuses = ("closed", "closed", "open", "cancelled", "closed", "rejected", "pending")
    times = [START, END - timedelta(microseconds=1), START - timedelta(microseconds=1), END]
    out = []
    for i in range(n):
        when = times[i] if i < len(times) else START + timedelta(hours=7 * i, minutes=i)
        out.append({
            "t": when, "ticket": 9000 + i, "sym": "EURUSD" if i % 3 else "XAUUSD",
            "v": Decimal("0.01") * (i % 9 + 1), "p": Decimal("1.0950") + Decimal(i) / 10**4,
            "pr": Decimal(i * 13 % 41 - 20) + Decimal("0.25"), "c": Decimal("-0.35"),
            "sw": Decimal(-i % 3) / 10, "fee": Decimal("0.05") * (i % 2),
            "st": statuses[i % len(statuses)],
        })
    return out


@pytest.fixture(scope="module")
def seeded(db: Db) -> dict[str, Any]:
    tenant, other = new_tenant("rep"), new_tenant("rep")
    rows = _orders(60)
    for t in (tenant, other):
        with tenant_tx(db.engine, t) as conn:
            account = create_account(conn, user_id=f"u-{t}", login=4242)
            conn.execute(sa.text(
                "INSERT INTO mt5_trade_orders (time, account_id, ticket, position_id, symbol,"
                " order_type, deal_type, volume, price, profit, commission, swap, fee, status)"
                " VALUES (:t, :a, :ticket, :ticket, :sym, 'buy', 'buy', :v, :p, :pr, :c, :sw,"
                " :fee, :st)"), [{**r, "a": account} for r in rows])
            if t == tenant:
                trading_day(conn, account_id=account, when=START + timedelta(days=3), ticket=1)
                trading_day(conn, account_id=account, when=START + timedelta(days=4), ticket=2,
                            action="SELL")
                trading_day(conn, account_id=account, when=START + timedelta(days=5), ticket=3,
                            symbol="GBPUSD")
    return {"tenant": tenant, "rows": rows}


def _expected(rows: list[dict[str, Any]]) -> dict[str, Any]:
    closed = [r for r in rows if r["st"] == "closed" and START <= r["t"] < END]
    return {
        "total_trades": len(closed),
        "total_volume": sum(r["v"] for r in closed),
        "total_profit": sum(r["pr"] for r in closed),
        "total_commission": sum(r["c"] for r in closed),
        "total_swap": sum(r["sw"] for r in closed),
        "total_fee": sum(r["fee"] for r in closed),
        "net_profit": sum(r["pr"] + r["c"] + r["sw"] + r["fee"] for r in closed),
    }


def test_the_monthly_report_equals_independent_totals_and_is_stored_once(
    db: Db, login: Callable[[str], Engine], seeded: dict[str, Any]
) -> None:
    tenant = seeded["tenant"]
    compliance = login("mt5_compliance")
    first = reports.generate_report(compliance, tenant, MONTH)
    again = reports.generate_report(compliance, tenant, MONTH)
    assert again.report_id == first.report_id
    expected = _expected(seeded["rows"])
    # The three trading days' closing orders (profit 12.5 each) are in the month too.
    expected["total_trades"] += 3
    expected["total_volume"] += Decimal("0.30")
    expected["total_profit"] += Decimal("37.5")
    expected["total_commission"] += Decimal("-2.10")
    expected["total_swap"] += Decimal("-0.30")
    expected["net_profit"] += Decimal("37.5") - Decimal("2.40")
    got = {k: again.data[k] for k in expected}
    assert got == expected
    with db.engine.connect() as conn:
        stored = conn.execute(sa.text(
            "SELECT report_id, report_data::text FROM mt5_compliance_reports WHERE tenant_id = :t"
            " AND report_type = 'monthly_trading'"), {"t": tenant}).all()
    assert len(stored) == 1
    assert json.loads(stored[0][1], parse_float=Decimal)["total_profit"] == expected["total_profit"]


def test_best_execution_statistics_per_symbol(
    login: Callable[[str], Engine], seeded: dict[str, Any]
) -> None:
    stats = {s["symbol"]: s for s in reports.best_execution(
        login("mt5_compliance"), seeded["tenant"], MONTH)}
    assert sorted(stats) == ["EURUSD", "GBPUSD"]
    eur = stats["EURUSD"]
    # BUY 1.0950 -> 1.09505 (0.00005 worse), SELL 1.0950 -> 1.09480 (0.0002 worse).
    assert (eur["executions"], eur["filled"]) == (2, 2)
    assert eur["avg_slippage_vs_signal"] == Decimal("0.000125")
    assert eur["worst_slippage_vs_signal"] == Decimal("0.0002")
    assert eur["avg_spread_at_execution"] == Decimal("0.00012")
    stored = reports.generate_report(login("mt5_compliance"), seeded["tenant"], MONTH,
                                     "best_execution")
    assert stored.data["executions"] == 3


def test_the_transaction_report_holds_the_month_s_executed_trades(
    login: Callable[[str], Engine], seeded: dict[str, Any]
) -> None:
    out = io.StringIO()
    count = reports.export_transactions(login("mt5_compliance"), seeded["tenant"], MONTH, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    executed = [r for r in seeded["rows"]
                if r["st"] in ("open", "closed") and START <= r["t"] < END]
    assert count == len(rows) == len(executed) + 3
    assert list(rows[0]) == [name for name, _ in reports.TRANSACTION_COLUMNS]
    first = rows[0]
    assert (first["report_status"], first["trading_date_time"], first["buy_sell"]) == (
        "NEWT", "2026-10-01T00:00:00.000000Z", "BUYI")
    assert any(r["decision_algorithm"] == "v1" for r in rows)


def test_a_malformed_month_is_one_clear_error() -> None:
    with pytest.raises(ReportError, match="2026-10"):
        reports.month_bounds("October")
