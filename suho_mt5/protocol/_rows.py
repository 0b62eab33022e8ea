"""Records -> rows of the ingest tables (column names from ``docs/data-model.md``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from suho_mt5.errors import TenantError

from ._enums import MessageType
from ._kinds import Spec, to_sql
from ._layout import LAYOUT_BY_CLASS, Layout
from ._messages import HeartbeatPacket, Packet

__all__ = ["TABLES", "heartbeat_status", "message_to_row"]

# Columns the data model does not have for a table although the record carries the field.
_NOT_STORED: dict[MessageType, frozenset[str]] = {
    MessageType.SIGNAL: frozenset({"sequence"}),
}

_Plan = tuple[tuple[int, str, Callable[[object], object]], ...]


def _plan(layout: Layout) -> _Plan:
    skip = _NOT_STORED.get(layout.message_type, frozenset())
    converters: list[tuple[int, str, Callable[[object], object]]] = []
    for f in layout.fields:
        if f.column and f.column not in skip:
            spec: Spec = f.spec
            converters.append((f.index, f.column, partial(to_sql, spec)))
    return tuple(converters)


_PLANS: dict[type[Packet], tuple[str, _Plan]] = {
    lay.record: (lay.table, _plan(lay)) for lay in LAYOUT_BY_CLASS.values() if lay.table
}

TABLES: dict[MessageType, str] = {
    lay.message_type: lay.table for lay in LAYOUT_BY_CLASS.values() if lay.table
}
"""The table each stored message type goes to."""


def heartbeat_status(hb: HeartbeatPacket) -> str:
    """``'online'``, ``'degraded'`` (connected, trading not allowed) or ``'offline'``."""
    if not hb.terminal_connected:
        return "offline"
    return "online" if hb.trade_allowed else "degraded"


def message_to_row(msg: Packet, tenant_id: str) -> tuple[str, dict[str, object]]:
    """``(table, row)`` for ``msg``; the tenant comes from the authenticated connection.

    Prices, lots and money become ``Decimal`` at their scale, ``timestamp_us`` becomes the
    ``time`` column (aware UTC ``datetime``), ids become ``uuid.UUID``, enums their names,
    and raw values documented as "none" (e.g. a stop loss of 0) become ``None``.

    >>> from suho_mt5.protocol import BrokerQuotePacket
    >>> table, row = message_to_row(
    ...     BrokerQuotePacket(1, 0, bytes(16), "EURUSD", 109_531_000, 109_533_000, 0, 0, 2), "t1")
    >>> table, row["tenant_id"], row["ask"], row["sequence"]
    ('mt5_broker_quotes', 't1', Decimal('1.09533000'), 1)
    """
    plan = _PLANS.get(msg.__class__)
    if plan is None:
        if msg.__class__ in LAYOUT_BY_CLASS:
            raise TypeError(f"{msg.MESSAGE_TYPE.name} messages are not stored: they have no table")
        raise TypeError(f"not a Suho message record: {type(msg).__name__}")
    if not isinstance(tenant_id, str) or not tenant_id:
        raise TenantError(f"tenant_id must be a non-empty str, got {tenant_id!r}")
    table, converters = plan
    row: dict[str, object] = {"tenant_id": tenant_id}
    for index, column, convert in converters:
        row[column] = convert(msg[index])
    if isinstance(msg, HeartbeatPacket):
        row["status"] = heartbeat_status(msg)
    return table, row
