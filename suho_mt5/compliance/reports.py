"""Compliance reports: the seed's monthly trading report, best-execution statistics and the
MiFID II transaction-report export.

Reports are stored in ``mt5_compliance_reports``, at most one live report per tenant, type
and period (``mt5_compliance_reports_period_key``): generating a report again replaces its
figures, it never adds a second one. Run them as ``mt5_compliance`` (reads every tenant,
writes reports).

>>> month_bounds("2026-10")
(datetime.datetime(2026, 10, 1, 0, 0, tzinfo=datetime.timezone.utc), \
datetime.datetime(2026, 11, 1, 0, 0, tzinfo=datetime.timezone.utc))
"""

from __future__ import annotations

import csv
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import IO, Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from suho_mt5.db.tenant import validate_tenant_id
from suho_mt5.errors import ReportError, TenantError

__all__ = [
    "REPORT_TYPES",
    "SUCCESS_RETCODES",
    "TRANSACTION_COLUMNS",
    "TRANSACTION_FIELDS_NOT_HELD",
    "StoredReport",
    "best_execution",
    "export_transactions",
    "generate_report",
    "month_bounds",
]

#: MQL5 TRADE_RETCODE_PLACED, _DONE, _DONE_PARTIAL: the order reached the market.
SUCCESS_RETCODES: Final = (10008, 10009, 10010)

_MONTH = re.compile(r"(\d{4})-(\d{2})")


def month_bounds(month: str | date) -> tuple[datetime, datetime]:
    """``[first instant, first instant of the next month)`` of a calendar month, in UTC."""
    if isinstance(month, str):
        found = _MONTH.fullmatch(month.strip())
        if not found or not 1 <= int(found[2]) <= 12:
            raise ReportError(f"month must look like 2026-10, got {month!r}")
        year, number = int(found[1]), int(found[2])
    else:
        year, number = month.year, month.month
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


@dataclass(frozen=True)
class StoredReport:
    """A report as stored in ``mt5_compliance_reports``."""

    report_id: uuid.UUID
    tenant_id: str
    report_type: str
    period_start: datetime
    period_end: datetime
    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"report_id": str(self.report_id), "tenant_id": self.tenant_id,
                "report_type": self.report_type, "period_start": self.period_start.isoformat(),
                "period_end": self.period_end.isoformat(), "data": self.data}


# The seed's report (docs: "Pre-built Compliance Reports"), bounded at the end of the
# period, with the costs and the per-symbol split a reviewer asks for next.
_MONTHLY_DATA = """
SELECT jsonb_build_object(
    'total_trades', count(*),
    'total_volume', coalesce(sum(o.volume), 0),
    'total_profit', coalesce(sum(o.profit), 0),
    'total_commission', coalesce(sum(o.commission), 0),
    'total_swap', coalesce(sum(o.swap), 0),
    'total_fee', coalesce(sum(o.fee), 0),
    'net_profit', coalesce(sum(o.profit + o.commission + o.swap + o.fee), 0),
    'accounts', count(DISTINCT o.account_id),
    'by_symbol', coalesce((
        SELECT jsonb_object_agg(s.symbol, jsonb_build_object(
            'trades', s.trades, 'volume', s.volume, 'profit', s.profit))
        FROM (SELECT symbol, count(*) AS trades, sum(volume) AS volume, sum(profit) AS profit
              FROM mt5_trade_orders
              WHERE tenant_id = :tenant AND time >= :start AND time < :end
                AND status = 'closed'
              GROUP BY symbol) s), '{}'::jsonb))
FROM mt5_trade_orders o
WHERE o.tenant_id = :tenant AND o.time >= :start AND o.time < :end AND o.status = 'closed'
"""

_BEST_EXECUTION = f"""
SELECT s.symbol AS symbol,
       count(*) AS executions,
       count(*) FILTER (WHERE e.result_code IS NULL
                        OR e.result_code IN ({', '.join(map(str, SUCCESS_RETCODES))})) AS filled,
       -- Against the price the signal asked for (its entry, or the Polygon quote on the
       -- side it trades at market); positive = worse for the client.
       avg(CASE s.action WHEN 'BUY' THEN e.actual_entry_price - ref.price
                         WHEN 'SELL' THEN ref.price - e.actual_entry_price END)
           AS avg_slippage_vs_signal,
       max(CASE s.action WHEN 'BUY' THEN e.actual_entry_price - ref.price
                         WHEN 'SELL' THEN ref.price - e.actual_entry_price END)
           AS worst_slippage_vs_signal,
       count(*) FILTER (WHERE ref.price IS NULL OR e.actual_entry_price IS NULL)
           AS without_reference,
       avg(e.slippage) AS avg_reported_slippage,
       avg(e.spread_at_execution) AS avg_spread_at_execution,
       max(e.spread_at_execution) AS max_spread_at_execution,
       avg(e.execution_latency_ms) AS avg_latency_ms
FROM mt5_signal_executions e
JOIN mt5_trading_signals s ON s.tenant_id = e.tenant_id AND s.signal_id = e.signal_id
CROSS JOIN LATERAL (SELECT coalesce(s.entry_price, CASE s.action WHEN 'BUY' THEN s.polygon_ask
                                                                WHEN 'SELL' THEN s.polygon_bid
                                                                END) AS price) ref
WHERE e.tenant_id = :tenant AND e.time >= :start AND e.time < :end
  AND e.actual_entry_price > 0
GROUP BY s.symbol
ORDER BY s.symbol
"""

_STORE = """
INSERT INTO mt5_compliance_reports AS r
    (tenant_id, report_type, report_period_start, report_period_end, report_data)
VALUES (:tenant, :type, :start, :end, CAST(:data AS jsonb))
ON CONFLICT (tenant_id, report_type, report_period_start, report_period_end)
    WHERE status <> 'superseded'
DO UPDATE SET report_data = EXCLUDED.report_data, generated_at = now(),
              generated_by = current_user
RETURNING r.report_id, r.report_data::text AS data
"""

_STORE_MONTHLY = f"""
INSERT INTO mt5_compliance_reports AS r
    (tenant_id, report_type, report_period_start, report_period_end, report_data)
SELECT :tenant, 'monthly_trading', :start, :end, ({_MONTHLY_DATA})
ON CONFLICT (tenant_id, report_type, report_period_start, report_period_end)
    WHERE status <> 'superseded'
DO UPDATE SET report_data = EXCLUDED.report_data, generated_at = now(),
              generated_by = current_user
RETURNING r.report_id, r.report_data::text AS data
"""

REPORT_TYPES: Final = ("monthly_trading", "best_execution")


def _tenant(tenant_id: str) -> str:
    try:
        return validate_tenant_id(tenant_id)
    except TenantError as exc:
        raise ReportError(str(exc)) from exc


def _decode(text: str) -> dict[str, Any]:
    value = json.loads(text, parse_float=Decimal)
    assert isinstance(value, dict)
    return value


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return value.normalize() if value == value.to_integral() else value
    return value


def best_execution(bind: Connection | Engine, tenant_id: str,
                   month: str | date) -> list[dict[str, Any]]:
    """Best-execution statistics of ``tenant_id`` for one month, one dict per symbol, from
    ``mt5_signal_executions`` joined with their signals (``avg_slippage_vs_signal``,
    ``worst_slippage_vs_signal``: execution price against the signal's price, positive =
    worse for the client; ``avg_spread_at_execution``, ``max_spread_at_execution``,
    ``filled`` / ``executions``, ``avg_latency_ms``). Executions whose signal is gone
    (signals are kept 90 days) are not in it."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return best_execution(conn, tenant_id, month)
    start, end = month_bounds(month)
    rows = bind.execute(sa.text(_BEST_EXECUTION),
                        {"tenant": _tenant(tenant_id), "start": start, "end": end})
    return [{k: _plain(v) for k, v in row._mapping.items()} for row in rows]


def generate_report(bind: Connection | Engine, tenant_id: str, month: str | date,
                    report_type: str = "monthly_trading") -> StoredReport:
    """Compute and store one report of ``tenant_id`` for a calendar month (UTC); running it
    again for the same tenant, type and month replaces the figures of the one report."""
    if report_type not in REPORT_TYPES:
        raise ReportError(f"report type must be one of {', '.join(REPORT_TYPES)}, "
                          f"not {report_type!r}")
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return generate_report(conn, tenant_id, month, report_type)
    tenant_id = _tenant(tenant_id)
    start, end = month_bounds(month)
    params: dict[str, Any] = {"tenant": tenant_id, "start": start, "end": end}
    try:
        if report_type == "monthly_trading":
            row = bind.execute(sa.text(_STORE_MONTHLY), params).one()
        else:
            symbols = best_execution(bind, tenant_id, month)
            data = {"symbols": symbols, "executions": sum(int(s["executions"]) for s in symbols)}
            row = bind.execute(sa.text(_STORE), {
                **params, "type": report_type,
                "data": json.dumps(data, default=str)}).one()
    except sa.exc.DBAPIError as exc:
        raise ReportError(f"cannot store the {report_type} report of {tenant_id}: "
                          f"{str(exc.orig).splitlines()[0]}") from exc
    return StoredReport(row.report_id, tenant_id, report_type, start, end, _decode(row.data))


#: The CSV columns of :func:`export_transactions`: the MiFID II RTS 22 (Commission
#: Delegated Regulation (EU) 2017/590, Annex I table 2) fields this schema can fill, by
#: field number, and the schema's own identifiers a report builder maps to the rest.
TRANSACTION_COLUMNS: Final = (
    ("report_status", "1 Report status (always NEWT)"),
    ("transaction_reference_number", "2 Transaction reference number (account id - ticket)"),
    ("trading_date_time", "28 Trading date time (UTC, microseconds)"),
    ("buy_sell", "buyer/seller side of the account (7/16 need LEIs: not held)"),
    ("quantity", "30 Quantity, in lots (contract size not held)"),
    ("price", "33 Price"),
    ("instrument_symbol", "41 Instrument: the broker's symbol (no ISIN)"),
    ("account_currency", "currency of the account (34 Price currency not held)"),
    ("broker_server", "the executing broker's server (36 Venue MIC not held)"),
    ("account_id", "the client's account (pseudonymous; no national id or LEI)"),
    ("ticket", "MT5 deal/order ticket"),
    ("position_id", "MT5 position"),
    ("deal_entry", "in / out / inout / out_by"),
    ("commission", "commission"),
    ("swap", "swap"),
    ("fee", "fee"),
    ("profit", "realised profit"),
    ("execution_algorithm", "59 Execution within firm: the EA's magic number"),
    ("decision_algorithm", "57 Investment decision within firm: model version of the signal"),
    ("signal_id", "the signal the order executed"),
)

#: RTS 22 fields the schema does not hold; an operator's reporting system adds them.
TRANSACTION_FIELDS_NOT_HELD: Final = (
    "3 Trading venue transaction identification code",
    "4 Executing entity identification code (LEI)",
    "5 Investment firm covered by Directive 2014/65/EU",
    "6 Submitting entity identification code",
    "7-15 Buyer identification code, country of branch, names, birth date, decision maker",
    "16-24 Seller identification code, country of branch, names, birth date, decision maker",
    "25 Transmission of order indicator",
    "26-27 Transmitting firm identification codes",
    "29 Trading capacity",
    "31 Quantity currency",
    "32 Derivative notional increase/decrease",
    "34 Price currency",
    "35 Net amount",
    "36 Venue (MIC or XOFF)",
    "37 Country of the branch membership",
    "38-40 Up-front payment and its currency, complex trade component id",
    "41 Instrument identification code (ISIN)",
    "42-56 Instrument full name, classification (CFI), notional currency, price multiplier,"
    " underlying, option and expiry details",
    "57-58 Investment decision within firm as a person, its country of branch",
    "60 Country of the branch supervising the execution",
    "61 Waiver indicator",
    "62 Short selling indicator",
    "63 OTC post-trade indicator",
    "64 Commodity derivative indicator",
    "65 Securities financing transaction indicator",
)

_TRANSACTIONS = """
SELECT 'NEWT' AS report_status,
       o.account_id::text || '-' || o.ticket::text AS transaction_reference_number,
       to_char(o.time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS trading_date_time,
       CASE WHEN coalesce(o.deal_type, o.order_type) IN ('buy', 'buy_limit', 'buy_stop',
                 'buy_stop_limit') THEN 'BUYI' ELSE 'SELL' END AS buy_sell,
       o.volume AS quantity, o.price AS price, o.symbol AS instrument_symbol,
       a.currency AS account_currency, a.broker_server AS broker_server,
       o.account_id AS account_id, o.ticket AS ticket, o.position_id AS position_id,
       o.deal_entry AS deal_entry, o.commission AS commission, o.swap AS swap, o.fee AS fee,
       o.profit AS profit, o.magic_number AS execution_algorithm,
       s.model_version AS decision_algorithm, o.signal_id AS signal_id
FROM mt5_trade_orders o
JOIN mt5_user_accounts a ON a.tenant_id = o.tenant_id AND a.account_id = o.account_id
LEFT JOIN LATERAL (SELECT g.model_version FROM mt5_trading_signals g
                   WHERE g.tenant_id = o.tenant_id AND g.signal_id = o.signal_id
                   LIMIT 1) s ON true
WHERE o.tenant_id = :tenant AND o.time >= :start AND o.time < :end
  AND o.status IN ('open', 'closed')
  AND coalesce(o.deal_type, o.order_type) IN ('buy', 'sell', 'buy_limit', 'sell_limit',
                                               'buy_stop', 'sell_stop', 'buy_stop_limit',
                                               'sell_stop_limit')
ORDER BY o.time, o.ticket
"""


def export_transactions(bind: Connection | Engine, tenant_id: str, month: str | date,
                        out: IO[str]) -> int:
    """Write ``tenant_id``'s executed trades of one month as CSV (columns:
    :data:`TRANSACTION_COLUMNS`) to ``out``; returns the number of rows. The RTS 22 fields
    the schema does not hold are :data:`TRANSACTION_FIELDS_NOT_HELD`."""
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return export_transactions(conn, tenant_id, month, out)
    start, end = month_bounds(month)
    writer = csv.writer(out, lineterminator="\n")
    names: Sequence[str] = [name for name, _ in TRANSACTION_COLUMNS]
    writer.writerow(names)
    count = 0
    rows = bind.execution_options(stream_results=True, yield_per=5000).execute(
        sa.text(_TRANSACTIONS), {"tenant": _tenant(tenant_id), "start": start, "end": end})
    for row in rows:
        writer.writerow(["" if row._mapping[n] is None else row._mapping[n] for n in names])
        count += 1
    return count
