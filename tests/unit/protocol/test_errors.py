"""Malformed input: the right ProtocolError subclass at the right offset, and nothing else."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from suho_mt5.errors import (
    BadMagicError,
    ChecksumMismatchError,
    FieldRangeError,
    InvalidSymbolError,
    ProtocolError,
    TrailingDataError,
    TruncatedPacketError,
    UnknownMessageTypeError,
    UnsupportedVersionError,
)
from suho_mt5.protocol import BrokerQuotePacket, Packet, decode, decode_frame, encode
from suho_mt5.protocol._codec import reference_decode
from suho_mt5.protocol._layout import LAYOUTS

from .strategies import packets, with_crc

pytestmark = pytest.mark.unit

ACC = uuid.UUID(int=7).bytes
QUOTE = BrokerQuotePacket(
    7, 1_732_492_800_123_456, ACC, "EURUSD", 109_531_000, 109_533_000, 0, 0, 2
)
PACKET = encode(QUOTE)
PREFIXES = [lay.prefix for lay in LAYOUTS]


def _patched(offset: int, data: bytes, *, fix_crc: bool = True) -> bytes:
    out = PACKET[:offset] + data + PACKET[offset + len(data) :]
    return with_crc(out) if fix_crc else out


@pytest.mark.parametrize(
    ("packet", "error", "offset"),
    [
        (PACKET[:100], TruncatedPacketError, 0),
        (PACKET + b"x", TrailingDataError, 144),
        (_patched(0, b"SUHA"), BadMagicError, 0),
        (_patched(4, b"\x00"), UnsupportedVersionError, 4),
        (_patched(5, b"\x06"), UnknownMessageTypeError, 5),
        (_patched(6, b"\x02\x00"), FieldRangeError, 6),
        (_patched(50, b"\x01", fix_crc=False), ChecksumMismatchError, 140),
        (_patched(16, b"\xff" * 8), FieldRangeError, 16),
        (_patched(44, b"\x7f"), InvalidSymbolError, 44),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_each_error_class_with_its_offset(
    packet: bytes, error: type[ProtocolError], offset: int
) -> None:
    for decoder in (decode, reference_decode):
        with pytest.raises(error) as info:
            decoder(packet)
        assert type(info.value) is error
        assert info.value.offset == offset
        assert info.value.reason
        assert f"offset {offset}" in str(info.value)


def test_header_checks_come_before_the_crc() -> None:
    with pytest.raises(BadMagicError):
        decode(_patched(0, b"XXXX", fix_crc=False))


def _outcome(decoder: object, packet: bytes) -> tuple[str, object]:
    try:
        return ("ok", decoder(packet))  # type: ignore[operator]
    except ProtocolError as exc:
        return (type(exc).__name__, exc.offset)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
@example(b"")
@example(PACKET[:8] + bytes(136))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes) -> None:
    assert _outcome(decode, data) == _outcome(reference_decode, data)
    frame_len = len(data) - len(data) % 144
    with contextlib.suppress(ProtocolError):
        decode_frame(data[:frame_len])


@settings(max_examples=1500, deadline=None)
@given(prefix=st.sampled_from(PREFIXES), body=st.binary(min_size=132, max_size=132))
def test_random_payloads_with_valid_header_and_crc(prefix: bytes, body: bytes) -> None:
    # The CRC is right, so the field checks are what decides: both paths must agree.
    packet = with_crc(prefix + body + bytes(4))
    outcome = _outcome(decode, packet)
    assert outcome == _outcome(reference_decode, packet)
    if outcome[0] == "ok":
        msg = outcome[1]
        assert isinstance(msg, tuple)
        assert decode(encode(msg)) == msg  # type: ignore[arg-type]


@settings(max_examples=1500, deadline=None)
@given(
    packet=packets,
    edits=st.lists(st.tuples(st.integers(0, 143), st.integers(0, 255)), min_size=1, max_size=6),
    fix_crc=st.booleans(),
)
def test_mutated_packets(packet: bytes, edits: list[tuple[int, int]], fix_crc: bool) -> None:
    mutated = bytearray(packet)
    for index, value in edits:
        mutated[index] = value
    data = with_crc(mutated) if fix_crc else bytes(mutated)
    assert _outcome(decode, data) == _outcome(reference_decode, data)


def test_field_errors_in_a_frame_carry_frame_offsets() -> None:
    frame = PACKET * 3 + _patched(44, b"\x7f") + PACKET
    with pytest.raises(InvalidSymbolError) as info:
        decode_frame(frame)
    assert info.value.offset == 3 * 144 + 44


def test_a_decoded_message_is_a_message() -> None:
    msg: Packet = decode(PACKET)
    assert msg == QUOTE
