"""Messages -> rows of the ingest tables, checked against the ORM models (the schema)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings

from suho_mt5.errors import TenantError
from suho_mt5.models import metadata
from suho_mt5.protocol import (
    TABLES,
    AckPacket,
    BrokerQuotePacket,
    CommandCode,
    CommandPacket,
    ConfigPacket,
    ErrorCode,
    ErrorPacket,
    HeartbeatPacket,
    MessageType,
    Packet,
    heartbeat_status,
    message_to_row,
)

from .strategies import RECORDS, any_message

pytestmark = pytest.mark.unit

ACC = uuid.UUID(int=3).bytes

# The ORM models are the schema contract (a drift test holds them to the migrations).
TABLE_COLUMNS = {name: {c.name: c for c in t.columns} for name, t in metadata.tables.items()}


def _required(table: str) -> set[str]:
    """Columns a row must give: NOT NULL and without a server default."""
    return {
        name
        for name, c in TABLE_COLUMNS[table].items()
        if not c.nullable and c.server_default is None
    }


def test_every_table_exists_in_the_models() -> None:
    assert set(TABLES.values()) <= set(TABLE_COLUMNS)
    assert "spread_points" in TABLE_COLUMNS["mt5_broker_quotes"]


@settings(max_examples=300, deadline=None)
@given(any_message)
def test_rows_use_only_columns_of_their_table(msg: Packet) -> None:
    if msg.TABLE is None:
        with pytest.raises(TypeError, match="not stored"):
            msg.to_row("t1")
        return
    table, row = message_to_row(msg, "tenant_a")
    assert table == msg.TABLE == TABLES[msg.MESSAGE_TYPE]
    columns = TABLE_COLUMNS[table]
    assert set(row) <= set(columns), set(row) - set(columns)
    assert _required(table) <= set(row), _required(table) - set(row)
    for name, value in row.items():
        if value is not None:  # the Python type the column's SQL type takes
            assert isinstance(value, columns[name].type.python_type), (name, value)
    assert row["tenant_id"] == "tenant_a"
    assert row["account_id"] == uuid.UUID(bytes=msg.account_id)
    assert row["time"] == msg.time
    assert isinstance(row["time"], datetime) and row["time"].tzinfo is UTC
    assert msg.to_row("tenant_a") == row


def test_every_time_series_record_has_sequence_except_signals() -> None:
    for cls in RECORDS:
        if cls.TABLE is None:
            continue
        expect = cls.TABLE != "mt5_trading_signals"
        assert ("sequence" in TABLE_COLUMNS[cls.TABLE]) is expect


def test_fixed_point_is_exact() -> None:
    q = BrokerQuotePacket(
        1, 1_732_492_800_123_456, ACC, "EURUSD", 109_531_001, -1, 2**63 - 1, 2**64 - 1, -3
    )
    row = q.to_row("t")
    assert row["bid"] == Decimal("1.09531001")
    assert row["ask"] == Decimal("-0.00000001")
    assert row["last"] == Decimal("92233720368.54775807")
    assert row["volume"] == Decimal("184467440737.09551615")
    assert row["spread_points"] == -3
    assert row["time"] == datetime(2024, 11, 25, 0, 0, 0, 123456, tzinfo=UTC)
    assert row["sequence"] == 1


@pytest.mark.parametrize(
    ("connected", "allowed", "status"),
    [
        (True, True, "online"),
        (True, False, "degraded"),
        (False, True, "offline"),
        (False, False, "offline"),
    ],
)
def test_heartbeat_status(connected: bool, allowed: bool, status: str) -> None:
    hb = HeartbeatPacket(1, 0, ACC, "1.0.0", 4410, 20, connected, allowed)
    assert heartbeat_status(hb) == status
    assert hb.to_row("t")["status"] == status


@pytest.mark.parametrize(
    "msg",
    [
        CommandPacket(1, 0, ACC, 0, 0, "", CommandCode.CLOSE_ALL),
        ConfigPacket(1, 0, ACC, "k", 1, 0),
        AckPacket(1, 0, ACC, 1, MessageType.SIGNAL),
        ErrorPacket(1, 0, ACC, 0, ErrorCode.INTERNAL, ""),
    ],
)
def test_messages_without_a_table_have_no_row(msg: Packet) -> None:
    assert msg.TABLE is None
    with pytest.raises(TypeError, match="no table"):
        message_to_row(msg, "t")


def test_tenant_must_be_given() -> None:
    hb = HeartbeatPacket(1, 0, ACC, "1.0.0", 4410, 20, True, True)
    for bad in ("", None):
        with pytest.raises(TenantError):
            hb.to_row(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        message_to_row((1, 2), "t")  # type: ignore[arg-type]
