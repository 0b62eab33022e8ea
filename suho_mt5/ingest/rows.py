"""Packets -> rows of the ingest tables, and the checks a row must pass before it is written.

The mapping lives here, in the ingest layer, not in the protocol: the protocol knows bytes and
records, the ingest layer knows tables. A row is a tuple in the order of its table's
:data:`TABLE_COLUMNS` (the order the writer COPYs), built straight from the ``*Packet``
record's fields: fixed-point integers become ``Decimal`` at their scale, ``timestamp_us`` the
``time`` column, wire enums the text the column's CHECK allows (:data:`ORDER_TYPES` & co.),
and raw values the protocol documents as "none" (a stop loss of 0) become ``NULL``.

The protocol's ranges are looser than the tables' CHECK constraints (a bid of 0 decodes, the
table refuses it). :func:`row_problem` applies the CHECKs in Python, so one bad row is
dead-lettered with a reason and the rest of its batch is written.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

from suho_mt5._names import TENANT_ID_PATTERN
from suho_mt5.models.enums import (
    DealType,
    HeartbeatStatus,
    MarginMode,
    OrderStatus,
    OrderType,
    SignalAction,
)
from suho_mt5.protocol import (
    CONFIDENCE_SCALE,
    MONEY_SCALE,
    PRICE_SCALE,
    AccountSnapshotPacket,
    BrokerQuotePacket,
    ExecutionReportPacket,
    HeartbeatPacket,
    MessageType,
    OrderEventPacket,
    Packet,
    WireAction,
    WireDealType,
    WireMarginMode,
    WireOrderState,
    WireOrderType,
)

__all__ = [
    "ACTIONS",
    "DEAL_TYPES",
    "KIND_OF_TYPE",
    "MARGIN_MODES",
    "ORDER_STATES",
    "ORDER_TYPES",
    "TABLE_COLUMNS",
    "TABLE_OF_KIND",
    "WIRE_ACTIONS",
    "QuoteReference",
    "Row",
    "heartbeat_status",
    "packet_row",
    "row_problem",
    "row_problem_of_valid_tenant",
    "snapshot_margin_mode",
]

Row = tuple[object, ...]

#: Wire enum -> the text the column stores (a test checks both sides member by member).
ORDER_TYPES: Final[dict[WireOrderType, OrderType]] = {w: OrderType[w.name] for w in WireOrderType}
DEAL_TYPES: Final[dict[WireDealType, DealType | None]] = {
    w: None if w is WireDealType.NONE else DealType[w.name] for w in WireDealType
}
ORDER_STATES: Final[dict[WireOrderState, OrderStatus]] = {
    WireOrderState.PENDING: OrderStatus.PENDING,
    WireOrderState.OPEN: OrderStatus.OPEN,
    WireOrderState.CLOSED: OrderStatus.CLOSED,
    WireOrderState.CANCELLED: OrderStatus.CANCELLED,
    WireOrderState.REJECTED: OrderStatus.REJECTED,
}
ACTIONS: Final[dict[WireAction, SignalAction]] = {w: SignalAction[w.name] for w in WireAction}
#: ``WireMarginMode`` (MQL5 ``ACCOUNT_MARGIN_MODE`` + 1) -> column text; UNKNOWN -> None.
MARGIN_MODES: Final[dict[WireMarginMode, MarginMode | None]] = {
    w: None if w is WireMarginMode.UNKNOWN else MarginMode[w.name] for w in WireMarginMode
}
#: Column text -> wire enum, for the signal publisher.
WIRE_ACTIONS: Final[dict[SignalAction, WireAction]] = {v: k for k, v in ACTIONS.items()}

_BALANCE = "mt5_account_balance_history"
_QUOTES = "mt5_broker_quotes"
_HEARTBEAT = "mt5_ea_heartbeat"
_ORDERS = "mt5_trade_orders"
_EXECUTIONS = "mt5_signal_executions"

#: The columns the writer fills, per table, in row order.
TABLE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    _BALANCE: ("time", "tenant_id", "account_id", "balance", "equity", "margin", "free_margin",
               "margin_level", "leverage", "currency", "sequence"),
    _QUOTES: ("time", "tenant_id", "account_id", "symbol", "bid", "ask", "last", "volume",
              "spread_points", "polygon_bid", "polygon_ask", "price_deviation", "sequence"),
    _HEARTBEAT: ("time", "tenant_id", "account_id", "status", "ea_version", "terminal_build",
                 "terminal_connected", "trade_allowed", "ping_ms", "sequence"),
    _ORDERS: ("time", "tenant_id", "account_id", "ticket", "position_id", "symbol", "order_type",
              "deal_type", "volume", "price", "stop_loss", "take_profit", "profit",
              "commission", "swap", "magic_number", "status", "sequence"),
    _EXECUTIONS: ("time", "tenant_id", "account_id", "signal_id", "ticket",
                  "actual_entry_price", "slippage", "result_code", "sequence"),
}

#: Subject kind (``mt5.account.<t>.<a>.<kind>``) -> the one packet type it carries.
KIND_OF_TYPE: Final[dict[MessageType, str]] = {
    MessageType.ACCOUNT_SNAPSHOT: "snapshot",
    MessageType.BROKER_QUOTE: "quote",
    MessageType.HEARTBEAT: "heartbeat",
    MessageType.ORDER_EVENT: "order",
    MessageType.EXECUTION_REPORT: "execution",
}
TABLE_OF_KIND: Final[dict[str, str]] = {
    "snapshot": _BALANCE, "quote": _QUOTES, "heartbeat": _HEARTBEAT, "order": _ORDERS,
    "execution": _EXECUTIONS,
}

#: ``(polygon_bid, polygon_ask, price_deviation)`` of a broker quote, or None: see
#: :class:`suho_mt5.ingest.reconcile.Reconciler`.
QuoteReference = Callable[
    [str, datetime, Decimal, Decimal], tuple[Decimal, Decimal, Decimal] | None
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_P: Final = -PRICE_SCALE
_M: Final = -MONEY_SCALE
_C: Final = -CONFIDENCE_SCALE
_D = Decimal


def _time(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def heartbeat_status(hb: HeartbeatPacket) -> HeartbeatStatus:
    """``online``, ``degraded`` (connected, trading not allowed) or ``offline``."""
    if not hb.terminal_connected:
        return HeartbeatStatus.OFFLINE
    return HeartbeatStatus.ONLINE if hb.trade_allowed else HeartbeatStatus.DEGRADED


def snapshot_margin_mode(packet: AccountSnapshotPacket) -> MarginMode | None:
    """The margin mode an ACCOUNT_SNAPSHOT reports, or None when it says UNKNOWN (an EA
    older than the field): then the account row's ``margin_mode`` counts.

    >>> snap = AccountSnapshotPacket(1, 0, bytes(16), 0, 0, 0, 0, 0, 100, "USD",
    ...                              WireMarginMode.HEDGING)
    >>> snapshot_margin_mode(snap), snapshot_margin_mode(snap._replace(margin_mode=0))
    (<MarginMode.HEDGING: 'hedging'>, None)
    """
    return MARGIN_MODES[WireMarginMode(packet.margin_mode)]


def packet_row(
    packet: Packet,
    tenant_id: str,
    account_id: uuid.UUID,
    reference: QuoteReference | None = None,
) -> tuple[str, Row]:
    """``(table, row)`` of an EA -> backend packet; ``TypeError`` for any other packet.

    ``account_id`` is the subject's account (the caller checked the packet carries the same);
    ``reference`` fills a broker quote's Polygon columns.

    >>> from suho_mt5.protocol import BrokerQuotePacket
    >>> acc = uuid.UUID(int=1)
    >>> table, row = packet_row(BrokerQuotePacket(7, 0, acc.bytes, "EURUSD", 109_531_000,
    ...     109_533_000, 0, 0, 2), "t1", acc)
    >>> table, row[TABLE_COLUMNS[table].index("bid")], row[-1]
    ('mt5_broker_quotes', Decimal('1.09531000'), 7)
    """
    cls = packet.__class__
    if cls is BrokerQuotePacket:
        q: BrokerQuotePacket = packet  # type: ignore[assignment]
        bid = _D(q.bid).scaleb(_P)
        ask = _D(q.ask).scaleb(_P)
        time = _time(q.timestamp_us)
        ref = reference(q.symbol, time, bid, ask) if reference is not None else None
        pb, pa, dev = ref if ref is not None else (None, None, None)
        return _QUOTES, (
            time, tenant_id, account_id, q.symbol, bid, ask,
            _D(q.last).scaleb(_P), _D(q.volume).scaleb(_P), q.spread_points, pb, pa, dev,
            q.sequence,
        )
    if cls is AccountSnapshotPacket:
        s: AccountSnapshotPacket = packet  # type: ignore[assignment]
        return _BALANCE, (
            _time(s.timestamp_us), tenant_id, account_id, _D(s.balance).scaleb(_M),
            _D(s.equity).scaleb(_M), _D(s.margin).scaleb(_M), _D(s.free_margin).scaleb(_M),
            _D(s.margin_level).scaleb(_M), s.leverage, s.currency, s.sequence,
        )
    if cls is HeartbeatPacket:
        h: HeartbeatPacket = packet  # type: ignore[assignment]
        return _HEARTBEAT, (
            _time(h.timestamp_us), tenant_id, account_id, heartbeat_status(h), h.ea_version,
            h.terminal_build, bool(h.terminal_connected), bool(h.trade_allowed), h.ping_ms,
            h.sequence,
        )
    if cls is OrderEventPacket:
        o: OrderEventPacket = packet  # type: ignore[assignment]
        return _ORDERS, (
            _time(o.timestamp_us), tenant_id, account_id, o.ticket, o.position_id or None,
            o.symbol, ORDER_TYPES[o.order_type], DEAL_TYPES[o.deal_type],
            _D(o.volume).scaleb(_P), _D(o.price).scaleb(_P),
            _D(o.stop_loss).scaleb(_P) if o.stop_loss else None,
            _D(o.take_profit).scaleb(_P) if o.take_profit else None,
            _D(o.profit).scaleb(_M), _D(o.commission).scaleb(_M), _D(o.swap).scaleb(_M),
            o.magic_number, ORDER_STATES[o.status], o.sequence,
        )
    if cls is ExecutionReportPacket:
        e: ExecutionReportPacket = packet  # type: ignore[assignment]
        return _EXECUTIONS, (
            _time(e.timestamp_us), tenant_id, account_id, uuid.UUID(bytes=e.signal_id),
            e.ticket, _D(e.actual_entry_price).scaleb(_P), _D(e.slippage).scaleb(_P),
            e.result_code, e.sequence,
        )
    raise TypeError(f"{type(packet).__name__} is not a packet the EA sends to be stored")


# --------------------------------------------------------------------------- row checks
# Each mirrors a CHECK (or a column type's range) of the migrations; the message names the
# constraint so a dead letter says exactly which rule the row broke.

_BIGINT_MAX: Final = 2**63 - 1
_PRICE_LIMIT: Final = Decimal(10) ** 12  # numeric(20, 8)
_SYMBOL: Final = re.compile(r"[!-~]{1,32}")
_CURRENCY: Final = re.compile(r"[A-Z0-9]{3,8}")

_Check = Callable[[Row], str | None]


def _seq(row: Row) -> str | None:
    seq = row[-1]
    assert isinstance(seq, int)
    if seq > _BIGINT_MAX:
        return f"sequence {seq} exceeds bigint"
    return None


def _check_balance(row: Row) -> str | None:
    _, _, _, _balance, _equity, margin, _free, level, leverage, currency, _ = row
    assert isinstance(margin, Decimal) and isinstance(level, Decimal)
    if margin < 0:
        return f"mt5_account_balance_history_margin_check: margin {margin:f} < 0"
    if level >= Decimal(10) ** 8:
        return f"margin_level {level:f} exceeds numeric(12,4)"
    if not isinstance(leverage, int) or leverage <= 0:
        return f"mt5_account_balance_history_leverage_check: leverage {leverage} <= 0"
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        return f"mt5_account_balance_history_currency_check: currency {currency!r}"
    return _seq(row)


def _check_quote(row: Row) -> str | None:
    _, _, _, symbol, bid, ask, last, volume, spread, _pb, _pa, _dev, _ = row
    assert isinstance(bid, Decimal) and isinstance(ask, Decimal) and isinstance(last, Decimal)
    if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
        return f"mt5_broker_quotes_symbol_check: symbol {symbol!r}"
    if bid <= 0 or ask <= 0:
        return f"mt5_broker_quotes_price_check: bid {bid:f}, ask {ask:f} must be > 0"
    if last < 0:
        return f"mt5_broker_quotes_last_check: last {last:f} < 0"
    assert isinstance(volume, Decimal)
    if volume >= _PRICE_LIMIT:
        return f"volume {volume:f} exceeds numeric(20,8)"
    if not isinstance(spread, int) or spread < 0:
        return f"mt5_broker_quotes_spread_points_check: spread_points {spread} < 0"
    return _seq(row)


def _check_heartbeat(row: Row) -> str | None:
    _, _, _, _status, version, build, _c, _t, ping, _ = row
    if not isinstance(version, str) or len(version) > 32:
        return f"mt5_ea_heartbeat_ea_version_check: ea_version {version!r}"
    if not isinstance(build, int) or build <= 0:
        return f"mt5_ea_heartbeat_terminal_build_check: terminal_build {build} <= 0"
    if not isinstance(ping, int) or ping < 0:
        return f"mt5_ea_heartbeat_ping_ms_check: ping_ms {ping} < 0"
    return _seq(row)


def _check_order(row: Row) -> str | None:
    (_, _, _, ticket, position, symbol, _ot, _dt, volume, price, sl, tp, _pr, _co, _sw,
     _magic, _st, _) = row
    assert isinstance(ticket, int) and isinstance(volume, Decimal)
    assert isinstance(price, Decimal)
    if not 0 <= ticket <= _BIGINT_MAX:
        return f"mt5_trade_orders_ticket_check: ticket {ticket}"
    if position is not None and not 0 < position <= _BIGINT_MAX:  # type: ignore[operator]
        return f"mt5_trade_orders_position_id_check: position_id {position}"
    if not isinstance(symbol, str) or not _SYMBOL.fullmatch(symbol):
        return f"mt5_trade_orders_symbol_check: symbol {symbol!r}"
    if volume >= _PRICE_LIMIT:
        return f"volume {volume:f} exceeds numeric(20,8)"
    if price < 0:
        return f"mt5_trade_orders_price_check: price {price:f} < 0"
    if (sl is not None and sl <= 0) or (tp is not None and tp <= 0):  # type: ignore[operator]
        return f"mt5_trade_orders_sl_tp_check: stop_loss {sl}, take_profit {tp} must be > 0"
    return _seq(row)


def _check_execution(row: Row) -> str | None:
    _, _, _, _sid, ticket, entry, _slip, _code, _ = row
    assert isinstance(ticket, int) and isinstance(entry, Decimal)
    if not 0 <= ticket <= _BIGINT_MAX:
        return f"mt5_signal_executions_ticket_check: ticket {ticket}"
    if entry < 0:
        return f"mt5_signal_executions_price_check: actual_entry_price {entry:f} < 0"
    return _seq(row)


_CHECKS: Final[dict[str, _Check]] = {
    _BALANCE: _check_balance,
    _QUOTES: _check_quote,
    _HEARTBEAT: _check_heartbeat,
    _ORDERS: _check_order,
    _EXECUTIONS: _check_execution,
}


def row_problem(table: str, row: Row) -> str | None:
    """Why the table would refuse ``row`` (the CHECK it breaks, in words), or None.

    >>> acc = uuid.UUID(int=1)
    >>> table, row = packet_row(BrokerQuotePacket(1, 0, acc.bytes, "EURUSD", 0, 5, 0, 0, 2),
    ...     "t1", acc)
    >>> row_problem(table, row)
    'mt5_broker_quotes_price_check: bid 0.00000000, ask 0.00000005 must be > 0'
    """
    tenant_id = row[1]
    if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.fullmatch(tenant_id):
        return f"{table}_tenant_id_check: tenant_id {tenant_id!r}"
    return _CHECKS[table](row)


def row_problem_of_valid_tenant(table: str) -> Callable[[Row], str | None]:
    """:func:`row_problem` without the tenant check, for rows whose tenant id the caller
    has already validated (the bridge: it came from a parsed subject)."""
    return _CHECKS[table]
