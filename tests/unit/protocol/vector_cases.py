"""The cases behind the golden vectors in ``tests/vectors/``.

``python -m tests.unit.protocol.vector_cases`` (re)writes the JSON files from these cases
with the current encoder. The JSON files are the contract for other implementations (MQL5,
C, ...): the tests check the codec against the *files*, both ways, so a change of the wire
format shows up as a failing test and a diff of the files, never silently.
"""

from __future__ import annotations

import json
import uuid
import zlib
from decimal import Decimal
from enum import IntEnum
from pathlib import Path

import pytest

from suho_mt5.errors import ProtocolError
from suho_mt5.protocol import (
    MAX_TIMESTAMP_US,
    AccountSnapshotPacket,
    AckPacket,
    BrokerQuotePacket,
    CommandCode,
    CommandPacket,
    ConfigPacket,
    ErrorCode,
    ErrorPacket,
    ExecutionReportPacket,
    HeartbeatPacket,
    MessageType,
    OrderEventPacket,
    Packet,
    SignalPacket,
    StreamDecoder,
    WireAction,
    WireDealType,
    WireMarginMode,
    WireOrderState,
    WireOrderType,
    decode,
    decode_frame,
    encode,
    iter_frame,
)
from suho_mt5.protocol._layout import LAYOUT_BY_CLASS
from suho_mt5.protocol._rules import first_violation

from .rule_vectors import (
    boundary_records,
    encode_cases,
    order_cases,
    padding_cases,
    single_defect_cases,
    text_position_cases,
    two_byte_cases,
    type_bases,
)

VECTORS_DIR = Path(__file__).resolve().parents[2] / "vectors"
VALID_FILE = VECTORS_DIR / "valid.json"
INVALID_FILE = VECTORS_DIR / "invalid.json"
FRAMES_FILE = VECTORS_DIR / "frames.json"
STREAMS_FILE = VECTORS_DIR / "streams.json"
ENCODE_FILE = VECTORS_DIR / "encode.json"
TEXT_FILE = VECTORS_DIR / "text.json"

ACC = uuid.UUID("6f1c2a7e-9b1d-4c2e-8a53-2f7b9d0e4c11").bytes
ACC_MAX = b"\xff" * 16
SIG = uuid.UUID("0b7e5d3c-1a2f-4e6d-9c8b-7a6f5e4d3c2b").bytes
T0 = 1_732_492_800_123_456  # 2024-11-25T00:00:00.123456Z
I64_MIN, I64_MAX, U64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
I31_MAX, I32_MIN = 2**31 - 1, -(2**31)

VALID: list[tuple[str, str, Packet]] = [
    (
        "account_snapshot_typical",
        "a 10,000.00 USD hedging account with one position open",
        AccountSnapshotPacket(
            1,
            T0,
            ACC,
            10_000_0000,
            10_012_3400,
            217_5000,
            9_794_8400,
            4_603_3747,
            100,
            "USD",
            WireMarginMode.HEDGING,
        ),
    ),
    (
        "account_snapshot_extremes",
        "int64 extremes, margin level bounds, 8-char currency, exchange margin mode",
        AccountSnapshotPacket(
            U64_MAX,
            MAX_TIMESTAMP_US,
            ACC_MAX,
            I64_MAX,
            I64_MIN,
            0,
            -1,
            10**12 - 1,
            I31_MAX,
            "USDTUSDC",
            WireMarginMode.EXCHANGE,
        ),
    ),
    (
        "account_snapshot_negative_equity",
        "negative equity: the margin level is sent as 0; leverage 1:1; an older EA that "
        "does not send the margin mode (UNKNOWN)",
        AccountSnapshotPacket(2, 0, bytes(16), 1, -50_0000, 100_0000, -150_0000, 0, 1, "X"),
    ),
    (
        "account_snapshot_netting",
        "a netting account",
        AccountSnapshotPacket(
            3, T0, ACC, 500_0000, 500_0000, 0, 500_0000, 0, 500, "EUR", WireMarginMode.NETTING
        ),
    ),
    (
        "broker_quote_eurusd",
        "EURUSD tick, 5 digits, spread 2 points",
        BrokerQuotePacket(7, T0, ACC, "EURUSD", 109_531_000, 109_533_000, 0, 150_000_000, 2),
    ),
    (
        "broker_quote_extremes",
        "16-char symbol, negative prices (oil, April 2020), max volume",
        BrokerQuotePacket(
            U64_MAX,
            MAX_TIMESTAMP_US,
            ACC,
            "ABCDEFGHIJKLMNOP",
            -3_763_000_000,
            I64_MAX,
            I64_MIN,
            U64_MAX,
            I32_MIN,
        ),
    ),
    (
        "broker_quote_one_char",
        "1-char symbol with punctuation bytes 0x21 and 0x7E around",
        BrokerQuotePacket(0, 0, bytes(16), "!", 1, 2, 3, 0, -1),
    ),
    (
        "heartbeat_online",
        "connected, trading allowed: status online",
        HeartbeatPacket(3, T0, ACC, "1.0.0", 4410, 12, True, True),
    ),
    (
        "heartbeat_degraded",
        "connected, AutoTrading off: status degraded",
        HeartbeatPacket(4, T0, ACC, "1.0.0-rc.1+build", I31_MAX, I31_MAX, True, False),
    ),
    (
        "heartbeat_offline",
        "trade server lost: status offline",
        HeartbeatPacket(5, T0, ACC, "~", 1, 0, False, False),
    ),
    (
        "order_event_buy_open",
        "market buy filled, position open",
        OrderEventPacket(
            9,
            T0,
            ACC,
            5001,
            5001,
            "XAUUSD",
            10_000_000,
            265_012_000_000,
            264_000_000_000,
            267_000_000_000,
            0,
            -7_0000,
            0,
            42,
            WireOrderType.BUY,
            WireDealType.BUY,
            WireOrderState.OPEN,
        ),
    ),
    (
        "order_event_pending",
        "buy limit placed: no deal, no position yet",
        OrderEventPacket(
            10,
            T0,
            ACC,
            5002,
            0,
            "EURUSD",
            100_000_000,
            108_000_000,
            0,
            0,
            0,
            0,
            0,
            2**32 - 1,
            WireOrderType.BUY_LIMIT,
            WireDealType.NONE,
            WireOrderState.PENDING,
        ),
    ),
    (
        "order_event_extremes",
        "closed at a loss, extreme values",
        OrderEventPacket(
            U64_MAX,
            MAX_TIMESTAMP_US,
            ACC_MAX,
            I64_MAX,
            I64_MAX,
            "US30.cash",
            U64_MAX,
            I64_MIN,
            I64_MAX,
            I64_MIN,
            I64_MIN,
            I64_MAX,
            -1,
            0,
            WireOrderType.CLOSE_BY,
            WireDealType.TAX,
            WireOrderState.REJECTED,
        ),
    ),
    (
        "signal_buy",
        "BUY EURUSD with SL/TP, expiry and 85% confidence",
        SignalPacket(
            11,
            T0,
            ACC,
            SIG,
            "EURUSD",
            109_530_000,
            109_320_000,
            109_820_000,
            10_000_000,
            T0 + 60_000_000,
            8_500,
            WireAction.BUY,
        ),
    ),
    (
        "signal_close_at_market",
        "CLOSE at market, no SL/TP, never expires, full confidence",
        SignalPacket(12, T0, ACC, SIG, "GBPJPY", 0, 0, 0, 0, 0, 10_000, WireAction.CLOSE),
    ),
    (
        "signal_extremes",
        "MODIFY with extreme prices and zero confidence",
        SignalPacket(
            U64_MAX,
            MAX_TIMESTAMP_US,
            ACC_MAX,
            ACC_MAX,
            "ABCDEFGHIJKLMNOP",
            I64_MIN,
            I64_MAX,
            -1,
            U64_MAX,
            MAX_TIMESTAMP_US,
            0,
            WireAction.MODIFY,
        ),
    ),
    (
        "execution_report_done",
        "filled 1 point worse than asked (TRADE_RETCODE_DONE 10009)",
        ExecutionReportPacket(13, T0, ACC, SIG, 5001, 109_531_000, 1_000, 10009),
    ),
    (
        "execution_report_rejected",
        "rejected (TRADE_RETCODE_REJECT 10006): no ticket",
        ExecutionReportPacket(14, T0, ACC, SIG, 0, 0, 0, 10006),
    ),
    (
        "execution_report_extremes",
        "extreme values",
        ExecutionReportPacket(
            U64_MAX, MAX_TIMESTAMP_US, ACC_MAX, bytes(16), I64_MAX, I64_MIN, I64_MIN, I31_MAX
        ),
    ),
    (
        "command_send_snapshot",
        "ask for an ACCOUNT_SNAPSHOT now; empty symbol",
        CommandPacket(15, T0, ACC, 0, 0, "", CommandCode.SEND_SNAPSHOT),
    ),
    (
        "command_close_position",
        "close 0.5 lot of position 5001",
        CommandPacket(16, T0, ACC, 5001, 50_000_000, "XAUUSD", CommandCode.CLOSE_POSITION),
    ),
    (
        "command_extremes",
        "extreme values",
        CommandPacket(
            U64_MAX,
            MAX_TIMESTAMP_US,
            ACC_MAX,
            I64_MAX,
            U64_MAX,
            "ABCDEFGHIJKLMNOP",
            CommandCode.DISCONNECT,
        ),
    ),
    ("config_risk", "risk_pct = 1.50", ConfigPacket(17, T0, ACC, "risk_pct", 150, 2)),
    (
        "config_extremes",
        "most negative value at 18 decimals",
        ConfigPacket(U64_MAX, MAX_TIMESTAMP_US, ACC_MAX, "max_spread_point", I64_MIN, 18),
    ),
    (
        "ack_signal",
        "ACK of the SIGNAL with sequence 11",
        AckPacket(18, T0, ACC, 11, MessageType.SIGNAL),
    ),
    (
        "ack_extremes",
        "extreme values",
        AckPacket(U64_MAX, MAX_TIMESTAMP_US, ACC_MAX, U64_MAX, MessageType.ERROR),
    ),
    (
        "error_signal_expired",
        "the EA refuses an expired signal; detail with spaces",
        ErrorPacket(19, T0, ACC, 12, ErrorCode.SIGNAL_EXPIRED, "signal expired 3.2 s ago"),
    ),
    (
        "error_extremes",
        "64-char detail, no reference",
        ErrorPacket(
            U64_MAX, MAX_TIMESTAMP_US, ACC_MAX, 0, ErrorCode.INTERNAL, "x" * 31 + " " + "~" * 32
        ),
    ),
]


def fields_json(msg: Packet) -> dict[str, object]:
    """A record's fields as JSON values: ids as UUID strings, enums by name."""
    out: dict[str, object] = {}
    for name, value in zip(msg._fields, msg, strict=True):
        if isinstance(value, bytes):
            out[name] = str(uuid.UUID(bytes=value))
        elif isinstance(value, IntEnum):
            out[name] = value.name
        else:
            out[name] = value
    return out


def scaled_json(msg: Packet) -> dict[str, str]:
    """The fixed-point fields as exact decimals, to show the scales."""
    layout = LAYOUT_BY_CLASS[type(msg)]
    return {
        f.name: str(Decimal(msg[f.index]).scaleb(-f.kind.scale))
        for f in layout.fields
        if f.kind.scale
    }


def fields_from_json(cls: type[Packet], fields: dict[str, object]) -> Packet:
    layout = LAYOUT_BY_CLASS[cls]
    values: list[object] = []
    for f in layout.fields:
        value = fields[f.name]
        if f.kind.is_uuid:
            assert isinstance(value, str)
            value = uuid.UUID(value).bytes
        elif f.kind.enum is not None and isinstance(value, str):
            value = f.kind.enum[value]  # an int: a value that is no member (encode.json)
        values.append(value)
    return cls(*values)  # type: ignore[arg-type]


def _with_crc(body: bytes) -> bytes:
    return body[:140] + zlib.crc32(body[:140]).to_bytes(4, "little")


def _patch(packet: bytes, offset: int, data: bytes, *, fix_crc: bool = True) -> bytes:
    out = packet[:offset] + data + packet[offset + len(data) :]
    return _with_crc(out) if fix_crc else out


def invalid_cases() -> list[tuple[str, str, bytes]]:
    by_name = {name: msg for name, _, msg in VALID}
    quote = encode(by_name["broker_quote_eurusd"])
    hb = encode(by_name["heartbeat_online"])
    sig = encode(by_name["signal_buy"])
    snap = encode(by_name["account_snapshot_typical"])
    order = encode(by_name["order_event_buy_open"])
    err = encode(by_name["error_signal_expired"])
    return [
        ("empty", "no bytes at all", b""),
        ("truncated", "one byte short", quote[:143]),
        ("trailing", "one byte too many for a single packet", quote + b"\0"),
        ("bad_magic", "lower-case magic", _patch(quote, 0, b"suho")),
        ("version_2", "a version this decoder does not read", _patch(quote, 4, b"\x02")),
        ("type_0", "message type 0 is never sent", _patch(quote, 5, b"\x00")),
        ("type_0x80", "message types 0x80..0xFF are reserved", _patch(quote, 5, b"\x80")),
        (
            "flag_mac",
            "MAC_TRAILER flag: reserved, v1 cannot verify it",
            _patch(quote, 6, b"\x01\x00"),
        ),
        ("flag_bit_15", "undefined flag bit", _patch(quote, 6, b"\x00\x80")),
        (
            "bad_crc",
            "one payload bit flipped, CRC not updated",
            _patch(quote, 60, bytes([quote[60] ^ 1]), fix_crc=False),
        ),
        ("bad_crc_trailer", "CRC trailer zeroed", _patch(quote, 140, bytes(4), fix_crc=False)),
        (
            "timestamp_negative",
            "timestamp before 1970",
            _patch(quote, 16, (-1).to_bytes(8, "little", signed=True)),
        ),
        (
            "timestamp_after_9999",
            "timestamp after 9999-12-31",
            _patch(quote, 16, (MAX_TIMESTAMP_US + 1).to_bytes(8, "little")),
        ),
        ("symbol_space", "a space inside a symbol", _patch(quote, 40, b"EUR USD")),
        ("symbol_empty", "an all-NUL symbol", _patch(quote, 40, bytes(16))),
        ("symbol_after_nul", "a byte after the terminating NUL", _patch(quote, 40, b"EURUSD\0X")),
        ("symbol_high_byte", "a byte above 0x7E", _patch(quote, 40, b"EUR\xc3\xa9")),
        ("symbol_control", "a control byte", _patch(quote, 41, b"\t")),
        ("currency_empty", "an all-NUL currency", _patch(snap, 84, bytes(8))),
        (
            "margin_level_too_big",
            "margin level of 10^8 % does not fit numeric(12,4)",
            _patch(snap, 72, (10**12).to_bytes(8, "little")),
        ),
        (
            "leverage_too_big",
            "leverage 2^31 does not fit an int4 column",
            _patch(snap, 80, (2**31).to_bytes(4, "little")),
        ),
        ("leverage_0", "leverage is at least 1", _patch(snap, 80, bytes(4))),
        (
            "margin_level_negative",
            "a negative margin level is sent as 0",
            _patch(snap, 72, (-1).to_bytes(8, "little", signed=True)),
        ),
        ("bool_2", "a boolean byte that is neither 0 nor 1", _patch(hb, 64, b"\x02")),
        (
            "confidence_10001",
            "confidence above 10000 basis points",
            _patch(sig, 112, (10_001).to_bytes(2, "little")),
        ),
        ("action_0", "action 0 is not defined", _patch(sig, 114, b"\x00")),
        ("expiry_negative", "expiry before 1970", _patch(sig, 104, b"\xff" * 8)),
        ("ticket_negative", "ticket with the sign bit set", _patch(order, 40, b"\xff" * 8)),
        ("order_type_9", "order type 9 is not defined", _patch(order, 132, b"\x09")),
        ("deal_type_18", "deal type 18 is not defined", _patch(order, 133, b"\x12")),
        ("status_0", "order state 0 is not defined", _patch(order, 134, b"\x00")),
        ("error_code_0", "error code 0 is not defined", _patch(err, 48, b"\x00\x00")),
        ("detail_tab", "a tab in an ERROR detail", _patch(err, 55, b"\t")),
    ]


def record_json(msg: Packet) -> dict[str, object]:
    return {"message_type": msg.MESSAGE_TYPE.name, "fields": fields_json(msg)}


def frame_cases() -> list[tuple[str, str, bytes]]:
    by_name = {name: msg for name, _, msg in VALID}
    quote = encode(by_name["broker_quote_eurusd"])
    hb = encode(by_name["heartbeat_online"])
    snap = encode(by_name["account_snapshot_typical"])
    bad_field = _patch(snap, 72, (10**12).to_bytes(8, "little"))
    bad_crc = _patch(hb, 60, b"\x63", fix_crc=False)
    every_type = b"".join(encode(msg) for _, _, msg in VALID)
    return [
        ("frame.empty", "no packets: an empty frame is valid and holds nothing", b""),
        ("frame.one", "a single packet", quote),
        ("frame.every_valid_vector", "the hand-written valid vectors in one frame", every_type),
        (
            "frame.bad_packet_in_middle",
            "the second of three packets breaks a field rule: the frame is rejected with the "
            "offset in the frame; iterating yields the first packet, then the error",
            quote + bad_field + hb,
        ),
        (
            "frame.bad_crc_last",
            "the last of three packets has a wrong CRC",
            quote + snap + bad_crc,
        ),
        (
            "frame.incomplete_tail",
            "two packets and 100 bytes of a third: the length is checked first, so nothing "
            "is decoded",
            quote + hb + quote[:100],
        ),
        ("frame.one_byte", "a single byte", quote[:1]),
        (
            "frame.unknown_version_first",
            "the first packet is of version 2",
            _patch(quote, 4, b"\x02") + hb,
        ),
    ]


def stream_cases() -> list[tuple[str, str, list[bytes], bool]]:
    """(name, description, chunks fed one by one, whether close() follows)."""
    by_name = {name: msg for name, _, msg in VALID}
    p1 = encode(by_name["broker_quote_eurusd"])
    p2 = encode(by_name["heartbeat_online"])
    p3 = encode(by_name["order_event_buy_open"])
    v2 = _patch(p2, 4, b"\x02")
    bad_crc = _patch(p2, 60, b"\x63", fix_crc=False)
    joined = p1 + p2 + p3
    return [
        ("stream.clean", "three packets in one chunk", [joined], False),
        (
            "stream.split_across_chunks",
            "three packets fed in chunks of 50 bytes",
            [joined[i : i + 50] for i in range(0, len(joined), 50)],
            False,
        ),
        (
            "stream.garbage_between_packets",
            "8 bytes of garbage between two packets are skipped",
            [p1 + b"garbage!" + p2],
            False,
        ),
        (
            "stream.garbage_first",
            "garbage before the first packet, fed in two chunks",
            [b"\x00\xffnoise", p1],
            False,
        ),
        (
            "stream.partial_magic_at_end",
            "a packet and the first 3 bytes of a magic: those are kept (pending), not skipped",
            [p1 + b"SUH"],
            False,
        ),
        (
            "stream.partial_magic_at_end_then_rest",
            "the rest of the packet whose magic started the previous chunk",
            [p1 + b"SUH", p2[3:]],
            False,
        ),
        (
            "stream.partial_packet_at_close",
            "a packet cut short by the end of the stream: close() reports it as skipped",
            [p1 + p2[:100]],
            True,
        ),
        (
            "stream.unknown_version",
            "a version 2 packet between two version 1 packets: skipped up to the next magic",
            [p1 + v2 + p3],
            False,
        ),
        (
            "stream.bad_crc",
            "a packet with a wrong CRC between two good ones",
            [p1 + bad_crc + p3],
            False,
        ),
        (
            "stream.cut_packet_then_packet",
            "the first 100 bytes of a packet (a reconnect cut it) then a whole one: the decoder "
            "tries the 144 bytes at the first magic, fails, and resynchronises on the second",
            [p1[:100] + p2],
            False,
        ),
        (
            "stream.false_magic",
            "a magic followed by garbage, then a packet",
            [b"SUHO\x07\x07" + p1],
            False,
        ),
        ("stream.only_garbage", "bytes with no magic at all", [b"xyz"], True),
        (
            "stream.garbage_fed_in_pieces",
            "garbage fed in three chunks is one skip",
            [b"abc", b"def", b"ghi" + p1],
            False,
        ),
        (
            "stream.two_bad_packets_in_a_row",
            "two version 2 packets in a row: one skip each, though their reasons are the same",
            [p1 + v2 + v2 + p3],
            False,
        ),
        (
            "stream.bad_packet_then_garbage_in_one_feed",
            "a packet with a wrong CRC, 8 bytes of garbage and a packet, in one feed: the bad "
            "packet's skip runs to the next magic, over the garbage (one skip)",
            [p1 + bad_crc + b"garbage!" + p3],
            False,
        ),
        (
            "stream.bad_packet_tail_and_garbage_in_other_feeds",
            "the same bytes fed so that the bad packet ends a feed: its skip ends with the bytes "
            "held then, and the garbage of the next feed is a skip of its own (no magic)",
            [p1 + bad_crc[:100], bad_crc[100:], b"garbage!" + p3],
            False,
        ),
        (
            "stream.bad_version_start_at_end",
            "a packet, then a magic and version 2 in the last 50 bytes: held back (pending), "
            "not judged until 144 bytes are there",
            [p1 + v2[:50]],
            False,
        ),
        (
            "stream.bad_version_start_at_end_then_close",
            "the same, then close(): skipped as a truncated packet, not as a version 2 packet",
            [p1 + v2[:50]],
            True,
        ),
        (
            "stream.bad_version_start_completed_later",
            "the rest of the version 2 packet and a good one come later: the whole version 2 "
            "packet is one skip (unsupported version), the good one is decoded",
            [p1 + v2[:50], v2[50:] + p3],
            False,
        ),
    ]


def _invalid_entry(name: str, description: str, packet: bytes) -> dict[str, object]:
    try:
        decode(packet)
    except ProtocolError as exc:
        found = first_violation(packet)
        assert found is not None and type(found[1]) is type(exc), name
        return {
            "name": name,
            "description": description,
            "hex": packet.hex(),
            "error": type(exc).__name__,
            "offset": exc.offset,
            "reason": exc.reason,
            "rule": found[0].id,
        }
    raise AssertionError(f"{name} decodes")  # pragma: no cover


def _valid_entry(
    name: str, description: str, msg: Packet, packet: bytes | None = None
) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": name,
        "description": description,
        "message_type": msg.MESSAGE_TYPE.name,
        "type_code": int(msg.MESSAGE_TYPE),
        "fields": fields_json(msg),
        "scaled": scaled_json(msg),
        "hex": (packet or encode(msg)).hex(),
    }
    if packet is not None:
        assert decode(packet) == msg and encode(msg) != packet, name
        entry["decode_only"] = True
    return entry


def _frame_entry(name: str, description: str, frame: bytes) -> dict[str, object]:
    entry: dict[str, object] = {"name": name, "description": description, "hex": frame.hex()}
    records: list[dict[str, object]] = []
    try:
        for msg in iter_frame(frame):
            records.append(record_json(msg))
    except ProtocolError as exc:
        with pytest.raises(type(exc)):
            decode_frame(frame)
        entry.update(error=type(exc).__name__, offset=exc.offset, reason=exc.reason)
    else:
        assert [record_json(m) for m in decode_frame(frame)] == records
    entry["records"] = records
    return entry


def _stream_entry(
    name: str, description: str, chunks: list[bytes], close: bool
) -> dict[str, object]:
    dec = StreamDecoder()
    records = [record_json(m) for chunk in chunks for m in dec.feed(chunk)]
    if close:
        dec.close()
    return {
        "name": name,
        "description": description,
        "chunks": [c.hex() for c in chunks],
        "close": close,
        "records": records,
        "skips": [{"offset": k.offset, "length": k.length, "reason": k.reason} for k in dec.skips],
        "pending": dec.pending,
    }


ABOUT_VALID = (
    "Suho Binary Protocol version 1 golden vectors: every packet is 144 bytes. Encode "
    "`fields` and compare with `hex`; decode `hex` and compare with `fields`; where "
    "`decode_only` is true (non-zero padding) only decode. Integers are exact (64-bit values "
    "exceed 2^53: parse them as 64-bit integers); ids are UUIDs whose 16 bytes are sent in "
    "RFC 4122 order (not Microsoft GUID order); enums are given by name (numbers in "
    "docs/protocol.md). `scaled` shows fixed-point fields as decimals. Names starting with "
    "`edge.` and `padding.` are generated from the rule list (tests/unit/protocol/"
    "rule_vectors.py): every allowed interval's ends, full and one-character text."
)
ABOUT_INVALID = (
    "Inputs a decoder must reject. `error` is the suho_mt5.errors class, `offset` the byte "
    "offset it reports, `rule` the rule of docs/protocol.md section 6 that rejects it (checks "
    "run in the order of that table: length, magic, version, type, flags, CRC, then the "
    "packet type's fields in offset order). Packets with a bad field carry a correct CRC, so "
    "the field check is what rejects them. `rule.*` vectors break one rule alone; `order.*` "
    "vectors break two rules run one after the other (`rule`, then `also_violates`), and "
    "the expected error is the first one's."
)
ABOUT_FRAMES = (
    "Frames: concatenated packets (one NATS message). `hex` is the frame; `records` the "
    "packets an iterating decoder yields before the first error; `error`/`offset` (absent "
    "when the frame is valid) what a strict frame decoder raises, the offset counted from "
    "the start of the frame. The length (a multiple of 144) is checked before any packet."
)
ABOUT_STREAMS = (
    "Streams: bytes fed in `chunks`, then close() if `close`. `records` are the packets "
    "returned; `skips` the bytes skipped (stream offset, length, reason: one skip per bad "
    "packet, and one per run of bytes without a magic, however the run was fed); `pending` "
    "the bytes held back at the end (the start of a packet). At a position that is not a "
    "valid packet the decoder skips to the next magic after it, or to a partial magic at the "
    "end of what it has."
)


ABOUT_ENCODE = (
    "Fields an encoder must refuse (docs/protocol.md, section 1, \"Encoders validate\"): "
    "encode `fields` as a packet of `type_code` and expect `error` at `offset`, the error a "
    "decoder would give for the bytes: a text longer than its field at the field's offset + "
    "its size, a character that is not allowed at its position (text may hold characters "
    "that are not ASCII: an encoder must not cut them to a byte), an empty text where one is "
    "required at the field's offset, a value that does not fit the field's bytes or its "
    "allowed values at the field's offset, a message type that is not a version 1 type at "
    "5. Each entry has one defect; every value fits a 64-bit integer of the field's "
    "signedness. `message_type` is null when `type_code` is not a type (then `fields` is "
    "empty); an enum field given as a number holds a value that is no member."
)


ABOUT_TEXT = (
    "Text rules at every position of every text field (docs/protocol.md, section 6), in the "
    "format of invalid.json: `text.<TYPE>.<field>.printable.at_<p>` has a byte outside the "
    "allowed range at position p after p printable ones; `...nul_padding.at_<p>` has a NUL "
    "at position 1 and a stray byte at p (from p = 3 on, not right after the NUL). A decoder "
    "that checks only the first bytes of a field, or only the byte right after the NUL, "
    "accepts some of them."
)


def _encode_entry(name: str, description: str, type_code: int, fields: dict[str, object],
                  error: str, offset: int) -> dict[str, object]:
    try:
        mtype: str | None = MessageType(type_code).name
    except ValueError:
        mtype = None
    return {"name": name, "description": description, "message_type": mtype,
            "type_code": type_code, "fields": fields, "error": error, "offset": offset}


def contents() -> dict[Path, dict[str, object]]:
    """What ``write`` puts in each file."""
    ours = {VALID_FILE, INVALID_FILE, FRAMES_FILE, STREAMS_FILE, ENCODE_FILE, TEXT_FILE}
    others = [
        bytes.fromhex(v["hex"])
        for path in sorted(VECTORS_DIR.glob("*.json"))
        if path not in ours
        for v in json.loads(path.read_text("utf-8"))["vectors"]
        if "fields" in v and "error" not in v and not v.get("decode_only")
    ]
    bases = type_bases(VALID, others)
    valid = [_valid_entry(n, d, m) for n, d, m in VALID]
    valid += [_valid_entry(n, d, m) for n, d, m in boundary_records(bases)]
    valid += [_valid_entry(n, d, m, p) for n, d, m, p in padding_cases(bases)]
    invalid = [_invalid_entry(n, d, p) for n, d, p in invalid_cases()]
    invalid += [_invalid_entry(n, d, p) for n, d, p in single_defect_cases(bases)]
    invalid += [_invalid_entry(n, d, p) for n, d, p in two_byte_cases(bases)]
    text = [_invalid_entry(n, d, p) for n, d, p in text_position_cases(bases)]
    for name, description, packet, second in order_cases(bases):
        entry = _invalid_entry(name, description, packet)
        assert entry["rule"] == name.split(".before.")[0].removeprefix("order."), name
        entry["also_violates"] = second
        invalid.append(entry)
    return {
        VALID_FILE: {"about": ABOUT_VALID, "protocol_version": 1, "packet_size": 144,
                     "vectors": valid},
        INVALID_FILE: {"about": ABOUT_INVALID, "protocol_version": 1, "vectors": invalid},
        FRAMES_FILE: {"about": ABOUT_FRAMES, "protocol_version": 1,
                      "vectors": [_frame_entry(*c) for c in frame_cases()]},
        STREAMS_FILE: {"about": ABOUT_STREAMS, "protocol_version": 1,
                       "vectors": [_stream_entry(*c) for c in stream_cases()]},
        ENCODE_FILE: {"about": ABOUT_ENCODE, "protocol_version": 1,
                      "vectors": [_encode_entry(*c) for c in encode_cases(bases)]},
        TEXT_FILE: {"about": ABOUT_TEXT, "protocol_version": 1, "vectors": text},
    }


def write() -> None:
    VECTORS_DIR.mkdir(exist_ok=True)
    for path, content in contents().items():
        path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":  # pragma: no cover
    write()
    print(f"wrote {VALID_FILE.name}, {INVALID_FILE.name}, {FRAMES_FILE.name}, "
          f"{STREAMS_FILE.name}, {ENCODE_FILE.name}, {TEXT_FILE.name} in {VECTORS_DIR}")
