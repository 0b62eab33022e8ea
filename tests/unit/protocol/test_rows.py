"""Messages -> rows of the ingest tables, checked against docs/data-model.md."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings

from suho_mt5.errors import TenantError
from suho_mt5.protocol import (
    TABLES,
    Ack,
    BrokerQuote,
    Command,
    CommandCode,
    Config,
    ErrorCode,
    ErrorMessage,
    Heartbeat,
    Message,
    MessageType,
    heartbeat_status,
    message_to_row,
)

from .strategies import RECORDS, any_message

pytestmark = pytest.mark.unit

DATA_MODEL = Path(__file__).resolve().parents[3] / "docs" / "data-model.md"
ACC = uuid.UUID(int=3).bytes


def _columns() -> dict[str, set[str]]:
    columns: dict[str, set[str]] = {}
    for line in DATA_MODEL.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\| `(mt5_\w+)` \|[^|]*\|(.*)\|\s*$", line)
        if match:
            names = re.findall(r"`(\w+)(?: [^`]*)?`", match.group(2))
            columns[match.group(1)] = {"time", "tenant_id", *names}
    return columns


COLUMNS = _columns()


def test_the_data_model_was_parsed() -> None:
    assert set(TABLES.values()) <= set(COLUMNS)
    assert "spread_points" in COLUMNS["mt5_broker_quotes"]


@settings(max_examples=300, deadline=None)
@given(any_message)
def test_rows_use_only_columns_of_their_table(msg: Message) -> None:
    if msg.TABLE is None:
        with pytest.raises(TypeError, match="not stored"):
            msg.to_row("t1")
        return
    table, row = message_to_row(msg, "tenant_a")
    assert table == msg.TABLE == TABLES[msg.MESSAGE_TYPE]
    assert set(row) <= COLUMNS[table], set(row) - COLUMNS[table]
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
        assert ("sequence" in COLUMNS[cls.TABLE]) is expect


def test_fixed_point_is_exact() -> None:
    q = BrokerQuote(
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
    hb = Heartbeat(1, 0, ACC, "1.0.0", 4410, 20, connected, allowed)
    assert heartbeat_status(hb) == status
    assert hb.to_row("t")["status"] == status


@pytest.mark.parametrize(
    "msg",
    [
        Command(1, 0, ACC, 0, 0, "", CommandCode.CLOSE_ALL),
        Config(1, 0, ACC, "k", 1, 0),
        Ack(1, 0, ACC, 1, MessageType.SIGNAL),
        ErrorMessage(1, 0, ACC, 0, ErrorCode.INTERNAL, ""),
    ],
)
def test_messages_without_a_table_have_no_row(msg: Message) -> None:
    assert msg.TABLE is None
    with pytest.raises(TypeError, match="no table"):
        message_to_row(msg, "t")


def test_tenant_must_be_given() -> None:
    hb = Heartbeat(1, 0, ACC, "1.0.0", 4410, 20, True, True)
    for bad in ("", None):
        with pytest.raises(TenantError):
            hb.to_row(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        message_to_row((1, 2), "t")  # type: ignore[arg-type]
