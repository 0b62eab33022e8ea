"""Risk checks of account snapshots: drawdown from peak equity, margin level, daily loss,
and open exposure per symbol, netting and hedging alike.

Run inside the batch's transaction for the balance rows that batch actually inserted, so a
redelivered snapshot raises no second event. Breaches are written to ``mt5_risk_events``
with the threshold, the observed value and details. Percentages are percent (20 = 20 %).

Netting (and exchange) accounts hold one position per symbol, so exposure is the net
volume; hedging accounts may hold a buy and a sell of one symbol at once, each with its own
margin and swap, so exposure is the gross volume. An account whose margin mode is unknown is
treated as hedging (the larger figure).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from suho_mt5.models.enums import MarginMode, RiskSeverity

__all__ = ["RiskEventRecord", "RiskLimits", "RiskState", "check_snapshots", "exposure"]

_Q = Decimal("0.0001")


@dataclass(frozen=True)
class RiskLimits:
    """Limits; None switches a check off."""

    max_drawdown_pct: Decimal | None = Decimal(20)
    drawdown_window: timedelta = timedelta(days=30)
    min_margin_level_pct: Decimal | None = Decimal(150)
    stop_out_level_pct: Decimal | None = Decimal(50)
    max_daily_loss_pct: Decimal | None = Decimal(5)
    max_symbol_exposure_lots: Decimal | None = None


@dataclass(frozen=True)
class RiskEventRecord:
    """One row of ``mt5_risk_events``."""

    time: datetime
    tenant_id: str
    account_id: uuid.UUID
    event_type: str
    severity: RiskSeverity
    threshold: Decimal
    observed_value: Decimal
    details: dict[str, Any] = field(default_factory=dict)


_PEAK = """SELECT max(equity) FROM public.mt5_account_balance_history
WHERE tenant_id = %s AND account_id = %s AND time > %s AND time < %s"""
_DAY_START = """SELECT equity FROM public.mt5_account_balance_history
WHERE tenant_id = %s AND account_id = %s AND time >= %s AND time < %s
ORDER BY time LIMIT 1"""
_POSITIONS = """SELECT symbol, order_type, volume FROM (
    SELECT DISTINCT ON (coalesce(position_id, ticket)) symbol, order_type, volume, status
    FROM public.mt5_trade_orders
    WHERE tenant_id = %s AND account_id = %s AND order_type IN ('buy', 'sell')
    ORDER BY coalesce(position_id, ticket), time DESC
) latest WHERE status = 'open'"""
_INSERT = """INSERT INTO public.mt5_risk_events
(time, tenant_id, account_id, event_type, severity, details, threshold, observed_value)
VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s)"""


def exposure(positions: Sequence[tuple[str, str, Decimal]],
             margin_mode: str | None) -> dict[str, Decimal]:
    """Open volume per symbol: net for netting/exchange accounts, gross for hedging.

    >>> pos = [("EURUSD", "buy", Decimal("1.0")), ("EURUSD", "sell", Decimal("0.4"))]
    >>> exposure(pos, "netting")["EURUSD"], exposure(pos, "hedging")["EURUSD"]
    (Decimal('0.6'), Decimal('1.4'))
    """
    net = margin_mode in (MarginMode.NETTING, MarginMode.EXCHANGE)
    out: dict[str, Decimal] = {}
    signed: dict[str, Decimal] = {}
    for symbol, side, volume in positions:
        sign = 1 if side == "buy" else -1
        signed[symbol] = signed.get(symbol, Decimal(0)) + sign * volume
        out[symbol] = out.get(symbol, Decimal(0)) + volume
    return {s: abs(signed[s]) for s in signed} if net else out


@dataclass
class RiskState:
    """What the checks remember between batches: each account's peak equity (read from the
    database once per ``refresh``, then kept up to date from the snapshots checked) and the
    equity at the start of each day. Several bridges each keep their own; a peak another
    bridge saw is picked up at the next refresh."""

    refresh: timedelta = timedelta(minutes=5)
    peaks: dict[uuid.UUID, tuple[datetime, Decimal | None]] = field(default_factory=dict)
    day_starts: dict[tuple[uuid.UUID, date], Decimal] = field(default_factory=dict)


async def check_snapshots(conn: Any, snapshots: Sequence[tuple[Any, ...]], limits: RiskLimits,
                          margin_modes: Mapping[uuid.UUID, str | None],
                          state: RiskState | None = None) -> list[RiskEventRecord]:
    """Check new balance rows (``writer.SNAPSHOT_COLUMNS`` tuples) and write the breaches
    in ``conn``'s open transaction (the caller commits)."""
    state = state if state is not None else RiskState()
    events: list[RiskEventRecord] = []
    if not snapshots:
        return events
    ordered = sorted(snapshots, key=lambda s: s[2])
    async with conn.cursor() as cur:
        positions: dict[uuid.UUID, list[tuple[str, str, Decimal]]] = {}
        for tenant_id, account, t, balance, equity, margin, level, sequence in ordered:
            mode = margin_modes.get(account)
            base = {"sequence": sequence, "balance": str(balance), "equity": str(equity),
                    "margin_mode": mode}

            def add(kind: str, sev: RiskSeverity, threshold: Decimal, observed: Decimal,
                    extra: dict[str, Any], t: datetime = t, tenant_id: str = tenant_id,
                    account: uuid.UUID = account, base: dict[str, Any] = base) -> None:
                events.append(RiskEventRecord(t, tenant_id, account, kind, sev, threshold,
                                              observed, {**base, **extra}))

            if limits.max_drawdown_pct is not None:
                cached = state.peaks.get(account)
                if cached is None or t - cached[0] > state.refresh:
                    await cur.execute(_PEAK, (tenant_id, account, t - limits.drawdown_window, t))
                    row = await cur.fetchone()
                    cached = (t, row[0] if row else None)
                prior = cached[1]
                peak = equity if prior is None or equity > prior else prior
                state.peaks[account] = (cached[0], peak)
                if peak > 0:
                    dd = ((peak - equity) / peak * 100).quantize(_Q)
                    if dd > limits.max_drawdown_pct:
                        add("drawdown_limit", RiskSeverity.HIGH, limits.max_drawdown_pct, dd,
                            {"peak_equity": str(peak)})
            if margin and margin > 0 and level is not None:
                if limits.stop_out_level_pct is not None and level < limits.stop_out_level_pct:
                    add("margin_level", RiskSeverity.CRITICAL, limits.stop_out_level_pct, level,
                        {"margin": str(margin), "limit": "stop_out"})
                elif (limits.min_margin_level_pct is not None
                      and level < limits.min_margin_level_pct):
                    add("margin_level", RiskSeverity.WARNING, limits.min_margin_level_pct,
                        level, {"margin": str(margin), "limit": "margin_call"})
            if limits.max_daily_loss_pct is not None:
                day = t.astimezone(UTC).date()
                start = state.day_starts.get((account, day))
                if start is None:
                    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
                    await cur.execute(_DAY_START, (tenant_id, account, midnight, t))
                    row = await cur.fetchone()
                    start = row[0] if row else equity  # the day's first snapshot is this one
                    state.day_starts[(account, day)] = start
                if start and start > 0:
                    loss = ((start - equity) / start * 100).quantize(_Q)
                    if loss > limits.max_daily_loss_pct:
                        add("daily_loss_limit", RiskSeverity.HIGH, limits.max_daily_loss_pct,
                            loss, {"day_start_equity": str(start)})
            if limits.max_symbol_exposure_lots is not None:
                if account not in positions:
                    await cur.execute(_POSITIONS, (tenant_id, account))
                    positions[account] = list(await cur.fetchall())
                for symbol, lots in sorted(exposure(positions[account], mode).items()):
                    if lots > limits.max_symbol_exposure_lots:
                        add("exposure_limit", RiskSeverity.WARNING,
                            limits.max_symbol_exposure_lots, lots,
                            {"symbol": symbol, "measure": "gross" if mode not in (
                                MarginMode.NETTING, MarginMode.EXCHANGE) else "net"})
        for e in events:
            await cur.execute(_INSERT, (e.time, e.tenant_id, e.account_id, e.event_type,
                                        e.severity.value, json.dumps(e.details), e.threshold,
                                        e.observed_value))
    return events
