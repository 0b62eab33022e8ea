"""Encode/decode of single packets: layout, round trips, fixed point, both code paths."""

from __future__ import annotations

import uuid
import zlib
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suho_mt5.errors import FieldRangeError, InvalidSymbolError
from suho_mt5.protocol import (
    CRC_RESIDUE,
    MAX_TIMESTAMP_US,
    PACKET_SIZE,
    RECORD_TYPES,
    BrokerQuotePacket,
    ExecutionReportPacket,
    HeartbeatPacket,
    MessageType,
    Packet,
    SignalPacket,
    decode,
    encode,
)
from suho_mt5.protocol._codec import reference_decode
from suho_mt5.protocol._constants import SYMBOL_CACHE_SIZE
from suho_mt5.protocol._layout import _DECODE_CACHES, LAYOUTS, slow_encode

from .strategies import RECORDS, messages, with_crc

pytestmark = pytest.mark.unit

ACC = uuid.UUID("6f1c2a7e-9b1d-4c2e-8a53-2f7b9d0e4c11").bytes
QUOTE = BrokerQuotePacket(
    7, 1_732_492_800_123_456, ACC, "EURUSD", 109_531_000, 109_533_000, 0, 150_000_000, 2
)


def test_every_layout_fills_exactly_one_packet() -> None:
    assert {lay.message_type for lay in LAYOUTS} == set(MessageType)
    for lay in LAYOUTS:
        assert lay.decode_struct.size == PACKET_SIZE
        assert lay.encode_struct.size == PACKET_SIZE - 4
        assert 0 < lay.payload_used <= 100
        assert [f.name for f in lay.fields[:3]] == ["sequence", "timestamp_us", "account_id"]
        offsets = [f.offset for f in lay.fields]
        sizes = [f.kind.size for f in lay.fields]
        assert offsets[0] == 8
        assert all(a + s == b for a, s, b in zip(offsets, sizes, offsets[1:], strict=False))
        assert lay.fields[3].offset == 40


def test_a_packet_built_by_hand_from_the_spec_decodes() -> None:
    # Independent of the struct formats: the offsets as docs/protocol.md states them.
    body = bytearray(144)
    body[0:4] = b"SUHO"
    body[4] = 1
    body[5] = 0x02
    body[8:16] = (7).to_bytes(8, "little")
    body[16:24] = (1_732_492_800_123_456).to_bytes(8, "little", signed=True)
    body[24:40] = ACC
    body[40:46] = b"EURUSD"
    body[56:64] = (109_531_000).to_bytes(8, "little", signed=True)
    body[64:72] = (109_533_000).to_bytes(8, "little", signed=True)
    body[80:88] = (150_000_000).to_bytes(8, "little")
    body[88:92] = (2).to_bytes(4, "little", signed=True)
    body[140:144] = zlib.crc32(body[:140]).to_bytes(4, "little")
    assert decode(bytes(body)) == QUOTE
    assert encode(QUOTE) == bytes(body)


def test_crc_residue_holds_for_any_packet() -> None:
    for packet in (encode(QUOTE), bytes(144), b"\xff" * 144):
        assert zlib.crc32(with_crc(packet)) == CRC_RESIDUE


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_round_trip_over_full_ranges(cls: type[Packet], data: st.DataObject) -> None:
    msg = data.draw(messages(cls))
    packet = encode(msg)
    assert len(packet) == PACKET_SIZE
    decoded = decode(packet)
    assert decoded == msg
    assert type(decoded) is cls
    assert reference_decode(packet) == decoded
    assert encode(decoded) == packet
    layout = next(lay for lay in LAYOUTS if lay.record is cls)
    assert slow_encode(layout, msg) == packet
    for f in layout.fields:  # the declared Python types, whatever the input's were
        expected = {"text": str, "bytes": bytes, "bool": bool, "int": int}.get(
            f.kind.category, f.kind.enum
        )
        assert type(decoded[f.index]) is expected, f.name


def test_bytearray_and_memoryview_are_accepted() -> None:
    packet = encode(QUOTE)
    assert decode(bytearray(packet)) == QUOTE
    assert decode(memoryview(packet)) == QUOTE
    with pytest.raises(TypeError):
        decode("SUHO" * 36)  # type: ignore[arg-type]


def test_padding_is_ignored_when_read() -> None:
    packet = bytearray(encode(QUOTE))
    packet[92:140] = b"\xaa" * 48  # a later minor version's fields
    assert decode(with_crc(packet)) == QUOTE


def test_records_are_immutable_and_give_uuid_and_datetime() -> None:
    with pytest.raises(AttributeError):
        QUOTE.bid = 1  # type: ignore[misc]
    assert QUOTE.account_uuid == uuid.UUID(bytes=ACC)
    assert QUOTE.time == datetime(2024, 11, 25, 0, 0, 0, 123456, tzinfo=UTC)
    last = BrokerQuotePacket(*QUOTE[:1], MAX_TIMESTAMP_US, *QUOTE[2:])
    assert last.time == datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    sig = SignalPacket(1, 0, ACC, ACC, "EURUSD", 0, 0, 0, 0, 0, 0, 1)  # type: ignore[arg-type]
    assert sig.signal_uuid == uuid.UUID(bytes=ACC)
    assert ExecutionReportPacket(1, 0, ACC, ACC, 0, 0, 0, 0).signal_uuid == sig.signal_uuid


def test_int_values_for_enums_and_bools_encode_like_members() -> None:
    hb = HeartbeatPacket(1, 0, ACC, "1.0.0", 1, 2, 1, 0)  # type: ignore[arg-type]
    assert decode(encode(hb)) == hb
    assert decode(encode(hb)).terminal_connected is True


def test_symbol_cache_stays_bounded() -> None:
    for i in range(SYMBOL_CACHE_SIZE + 100):
        decode(encode(QUOTE._replace(symbol=f"S{i}")))
    assert all(len(cache) <= SYMBOL_CACHE_SIZE for cache in _DECODE_CACHES.values())
    assert decode(encode(QUOTE)) == QUOTE


@pytest.mark.parametrize(
    ("field", "value", "offset", "error"),
    [
        ("sequence", -1, 8, FieldRangeError),
        ("sequence", 2**64, 8, FieldRangeError),
        ("timestamp_us", -1, 16, FieldRangeError),
        ("timestamp_us", MAX_TIMESTAMP_US + 1, 16, FieldRangeError),
        ("account_id", bytes(15), 24, FieldRangeError),
        ("account_id", str(uuid.UUID(bytes=ACC)), 24, FieldRangeError),
        ("symbol", "", 40, InvalidSymbolError),
        ("symbol", "EUR USD", 43, InvalidSymbolError),
        ("symbol", "EURUSDÉ", 46, InvalidSymbolError),
        ("symbol", "A" * 17, 56, InvalidSymbolError),
        ("symbol", b"EURUSD", 40, InvalidSymbolError),
        ("bid", 2**63, 56, FieldRangeError),
        ("bid", 1.0953, 56, FieldRangeError),
        ("volume", -1, 80, FieldRangeError),
        ("spread_points", 2**31, 88, FieldRangeError),
    ],
)
def test_encode_rejects_what_cannot_be_sent(
    field: str, value: object, offset: int, error: type[Exception]
) -> None:
    bad = QUOTE._replace(**{field: value})
    with pytest.raises(error) as info:
        encode(bad)
    assert info.value.offset == offset  # type: ignore[attr-defined]


def test_encode_rejects_enum_and_bool_values_out_of_range() -> None:
    sig = SignalPacket(1, 0, ACC, ACC, "EURUSD", 0, 0, 0, 0, 0, 0, 1)  # type: ignore[arg-type]
    with pytest.raises(FieldRangeError) as info:
        encode(sig._replace(action=9))
    assert info.value.offset == 114
    with pytest.raises(FieldRangeError) as info:
        encode(sig._replace(confidence_bp=10_001))
    assert info.value.offset == 112
    hb = HeartbeatPacket(1, 0, ACC, "1.0.0", 1, 2, True, True)
    with pytest.raises(FieldRangeError) as info:
        encode(hb._replace(trade_allowed=2))
    assert info.value.offset == 65


def test_encode_of_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        encode((1, 2, 3))  # type: ignore[arg-type]

    class MyQuote(BrokerQuotePacket):
        __slots__ = ()

    assert encode(MyQuote(*QUOTE)) == encode(QUOTE)


def test_every_message_type_has_a_record() -> None:
    assert set(RECORD_TYPES) == set(MessageType)
    for mtype, cls in RECORD_TYPES.items():
        assert cls.MESSAGE_TYPE is mtype
