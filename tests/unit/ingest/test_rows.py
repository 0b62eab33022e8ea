"""Packets -> rows, checked against the ORM models' columns (the schema contract), and the
wire enums <-> column enums mapping, member by member."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings

from suho_mt5.ingest.rows import (
    ACTIONS,
    DEAL_TYPES,
    KIND_OF_TYPE,
    ORDER_STATES,
    ORDER_TYPES,
    TABLE_COLUMNS,
    TABLE_OF_KIND,
    WIRE_ACTIONS,
    heartbeat_status,
    packet_row,
    row_problem,
)
from suho_mt5.models import DealType, OrderStatus, OrderType, SignalAction, metadata
from suho_mt5.protocol import (
    AckPacket,
    BrokerQuotePacket,
    HeartbeatPacket,
    MessageType,
    OrderEventPacket,
    Packet,
    SignalPacket,
    WireAction,
    WireDealType,
    WireOrderState,
    WireOrderType,
)
from tests.unit.protocol.strategies import any_message

ACC = uuid.UUID(int=3)
COLUMNS = {name: {c.name: c for c in t.columns} for name, t in metadata.tables.items()}


def _required(table: str) -> set[str]:
    return {n for n, c in COLUMNS[table].items() if not c.nullable and c.server_default is None}


def test_the_writer_columns_exist_and_cover_every_required_column() -> None:
    for table, cols in TABLE_COLUMNS.items():
        assert set(cols) <= set(COLUMNS[table]), set(cols) - set(COLUMNS[table])
        assert _required(table) <= set(cols), _required(table) - set(cols)
    assert set(TABLE_OF_KIND.values()) == set(TABLE_COLUMNS)
    assert set(KIND_OF_TYPE.values()) == set(TABLE_OF_KIND)


@settings(max_examples=300, deadline=None)
@given(any_message)
def test_rows_match_their_table(msg: Packet) -> None:
    if msg.MESSAGE_TYPE not in KIND_OF_TYPE:
        with pytest.raises(TypeError):
            packet_row(msg, "t1", uuid.UUID(bytes=msg.account_id))
        return
    account = uuid.UUID(bytes=msg.account_id)
    table, row = packet_row(msg, "tenant_a", account)
    assert table == TABLE_OF_KIND[KIND_OF_TYPE[msg.MESSAGE_TYPE]]
    cols = TABLE_COLUMNS[table]
    assert len(row) == len(cols)
    values = dict(zip(cols, row, strict=True))
    for name, value in values.items():
        if value is not None:  # the Python type the column's SQL type takes
            assert isinstance(value, COLUMNS[table][name].type.python_type), (name, value)
    assert values["tenant_id"] == "tenant_a" and values["account_id"] == account
    assert values["time"] == msg.time and values["time"].tzinfo is UTC
    assert values["sequence"] == msg.sequence


def test_fixed_point_and_none_values_are_exact() -> None:
    q = BrokerQuotePacket(1, 1_732_492_800_123_456, ACC.bytes, "EURUSD", 109_531_001, -1,
                          2**63 - 1, 2**64 - 1, -3)
    _, row = packet_row(q, "t", ACC)
    v = dict(zip(TABLE_COLUMNS["mt5_broker_quotes"], row, strict=True))
    assert v["bid"] == Decimal("1.09531001") and v["ask"] == Decimal("-0.00000001")
    assert v["last"] == Decimal("92233720368.54775807")
    assert v["time"] == datetime(2024, 11, 25, 0, 0, 0, 123456, tzinfo=UTC)
    assert v["polygon_bid"] is None and v["price_deviation"] is None
    o = OrderEventPacket(9, 0, ACC.bytes, 5001, 0, "XAUUSD", 10_000_000, 265_012_000_000, 0,
                         0, 0, -7_0000, 0, 42, WireOrderType.BUY_STOP, WireDealType.NONE,
                         WireOrderState.PENDING)
    _, row = packet_row(o, "t", ACC)
    v = dict(zip(TABLE_COLUMNS["mt5_trade_orders"], row, strict=True))
    assert (v["position_id"], v["stop_loss"], v["take_profit"], v["deal_type"]) == (
        None, None, None, None)
    assert v["order_type"] == "buy_stop" and v["status"] == "pending"
    assert v["commission"] == Decimal("-7.0000")


def test_wire_enums_map_to_every_column_value_and_back() -> None:
    assert {ORDER_TYPES[w] for w in WireOrderType} == set(OrderType)
    assert all(ORDER_TYPES[w].name == w.name for w in WireOrderType)
    assert {DEAL_TYPES[w] for w in WireDealType} == {*DealType, None}
    assert DEAL_TYPES[WireDealType.NONE] is None
    assert {ORDER_STATES[w] for w in WireOrderState} == set(OrderStatus)
    assert all(ORDER_STATES[w].name == w.name for w in WireOrderState)
    assert {ACTIONS[w] for w in WireAction} == set(SignalAction)
    assert all(WIRE_ACTIONS[ACTIONS[w]] is w for w in WireAction)


@pytest.mark.parametrize(
    ("connected", "allowed", "status"),
    [(True, True, "online"), (True, False, "degraded"), (False, True, "offline"),
     (False, False, "offline")],
)
def test_heartbeat_status(connected: bool, allowed: bool, status: str) -> None:
    hb = HeartbeatPacket(1, 0, ACC.bytes, "1.0.0", 4410, 20, connected, allowed)
    assert heartbeat_status(hb) == status
    assert packet_row(hb, "t", ACC)[1][3] == status


@pytest.mark.parametrize(
    ("packet", "rule"),
    [
        (BrokerQuotePacket(1, 0, ACC.bytes, "EURUSD", 0, 1, 0, 0, 2), "price_check"),
        (BrokerQuotePacket(1, 0, ACC.bytes, "EURUSD", 1, 1, -1, 0, 2), "last_check"),
        (BrokerQuotePacket(1, 0, ACC.bytes, "EURUSD", 1, 1, 0, 0, -2), "spread_points_check"),
        (BrokerQuotePacket(2**63, 0, ACC.bytes, "EURUSD", 1, 1, 0, 0, 2), "exceeds bigint"),
        (OrderEventPacket(1, 0, ACC.bytes, 1, 0, "EURUSD", 1, -5, 0, 0, 0, 0, 0, 0,
                          WireOrderType.BUY, WireDealType.BUY, WireOrderState.OPEN),
         "mt5_trade_orders_price_check"),
        (OrderEventPacket(1, 0, ACC.bytes, 1, 0, "EURUSD", 1, 5, -1, 0, 0, 0, 0, 0,
                          WireOrderType.BUY, WireDealType.BUY, WireOrderState.OPEN),
         "sl_tp_check"),
    ],
)
def test_rows_the_table_would_refuse_are_named(packet: Packet, rule: str) -> None:
    table, row = packet_row(packet, "t", ACC)
    problem = row_problem(table, row)
    assert problem is not None and rule in problem


def test_good_rows_pass_and_packets_without_a_table_are_refused() -> None:
    table, row = packet_row(BrokerQuotePacket(1, 0, ACC.bytes, "EURUSD", 1, 1, 0, 0, 0), "t",
                            ACC)
    assert row_problem(table, row) is None
    assert row_problem(table, (row[0], "bad tenant!", *row[2:])) is not None
    for p in (AckPacket(1, 0, ACC.bytes, 1, MessageType.SIGNAL),
              SignalPacket(1, 0, ACC.bytes, bytes(16), "EURUSD", 0, 0, 0, 0, 0, 0,
                           WireAction.BUY)):
        with pytest.raises(TypeError):
            packet_row(p, "t", ACC)


def test_margin_mode_of_a_snapshot() -> None:
    from suho_mt5.ingest.rows import MARGIN_MODES, snapshot_margin_mode
    from suho_mt5.models import MarginMode
    from suho_mt5.protocol import AccountSnapshotPacket, WireMarginMode

    assert {MARGIN_MODES[w] for w in WireMarginMode} == {None, *MarginMode}
    assert all(MARGIN_MODES[w] is None or MARGIN_MODES[w].name == w.name  # type: ignore[union-attr]
               for w in WireMarginMode)
    snap = AccountSnapshotPacket(1, 0, ACC.bytes, 0, 0, 0, 0, 0, 100, "USD")
    assert snapshot_margin_mode(snap) is None  # UNKNOWN: the account row counts
    assert snapshot_margin_mode(snap._replace(margin_mode=WireMarginMode.NETTING)) is (
        MarginMode.NETTING)
