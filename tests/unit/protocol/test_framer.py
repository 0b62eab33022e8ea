"""Frames of many packets and the resynchronising stream decoder."""

from __future__ import annotations

import os
import random
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suho_mt5.errors import ChecksumMismatchError, FieldRangeError, TruncatedPacketError
from suho_mt5.protocol import (
    MAGIC,
    PACKET_SIZE,
    AckPacket,
    BrokerQuotePacket,
    HeartbeatPacket,
    MessageType,
    Packet,
    StreamDecoder,
    decode,
    decode_frame,
    encode,
    encode_frame,
    iter_frame,
)
from suho_mt5.protocol._layout import _DECODE_CACHES

from .strategies import any_message, with_crc

pytestmark = pytest.mark.unit

ACC = uuid.UUID(int=42).bytes


def _quotes(n: int, symbols: int = 3) -> list[Packet]:
    return [
        BrokerQuotePacket(
            i, 1_700_000_000_000_000 + i, ACC, f"SYM{i % symbols}", 100 + i, 101 + i, 0, i, 1
        )
        for i in range(n)
    ]


@settings(max_examples=200, deadline=None)
@given(st.lists(any_message, max_size=40))
def test_frame_round_trip(msgs: list[Packet]) -> None:
    frame = encode_frame(msgs)
    assert decode_frame(frame) == msgs
    assert list(iter_frame(frame)) == msgs
    assert decode_frame(bytearray(frame)) == msgs


def test_homogeneous_and_mixed_frames_of_a_thousand() -> None:
    quotes = _quotes(1000)
    assert decode_frame(encode_frame(quotes)) == quotes
    mixed = [
        q if i % 7 else HeartbeatPacket(i, 0, ACC, "1.0", 1, 1, True, True)
        for i, q in enumerate(quotes)
    ]
    assert decode_frame(encode_frame(mixed)) == mixed


def test_new_symbols_inside_a_homogeneous_frame_go_through_the_reference_path() -> None:
    for cache in _DECODE_CACHES.values():
        cache.clear()
    quotes = _quotes(50, symbols=50)
    assert decode_frame(encode_frame(quotes)) == quotes


def test_frame_errors_point_into_the_frame() -> None:
    quotes = _quotes(10)
    frame = bytearray(encode_frame(quotes))
    with pytest.raises(TruncatedPacketError) as info:
        decode_frame(bytes(frame[:-10]))
    assert info.value.offset == 9 * 144
    frame[5 * 144 + 60] ^= 0xFF
    with pytest.raises(ChecksumMismatchError) as info2:
        decode_frame(bytes(frame))
    assert info2.value.offset == 5 * 144 + 140
    with pytest.raises(ChecksumMismatchError):
        list(iter_frame(bytes(frame)))
    frame = bytearray(encode_frame(quotes))
    frame[2 * 144 + 16 : 2 * 144 + 24] = b"\xff" * 8
    frame[2 * 144 : 3 * 144] = with_crc(frame[2 * 144 : 3 * 144])
    with pytest.raises(FieldRangeError) as info3:
        decode_frame(bytes(frame))
    assert info3.value.offset == 2 * 144 + 16
    assert decode_frame(b"") == []


def test_mixed_frame_field_error_offset() -> None:
    msgs: list[Packet] = [*_quotes(3), AckPacket(1, 0, ACC, 1, MessageType.SIGNAL), *_quotes(3)]
    frame = bytearray(encode_frame(msgs))
    frame[3 * 144 + 48] = 0x00  # acked_type 0
    frame[3 * 144 : 4 * 144] = with_crc(frame[3 * 144 : 4 * 144])
    with pytest.raises(FieldRangeError) as info:
        decode_frame(bytes(frame))
    assert info.value.offset == 3 * 144 + 48


def _chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    out, i = [], 0
    for size in sizes:
        out.append(data[i : i + size])
        i += size
    out.append(data[i:])
    return out


garbage = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=40).map(lambda b: MAGIC + b),  # a false packet start
    st.sampled_from([MAGIC, MAGIC[:3], b"SUHO\x01\x02", b"SU"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    msgs=st.lists(any_message, min_size=1, max_size=12),
    junk=st.lists(garbage, min_size=13, max_size=13),
    cuts=st.lists(st.integers(1, 400), max_size=20),
)
def test_stream_recovers_every_packet_between_garbage(
    msgs: list[Packet], junk: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(j + encode(m) for j, m in zip(junk, msgs, strict=False)) + junk[-1]
    dec = StreamDecoder()
    got: list[Packet] = []
    for chunk in _chunks(stream, cuts):
        got += dec.feed(chunk)
        assert dec.pending < PACKET_SIZE
    dec.close()
    assert got == msgs
    garbage_len = sum(len(j) for j in junk[: len(msgs)]) + len(junk[-1])
    assert dec.skipped_bytes == garbage_len
    assert dec.position == len(stream)
    assert dec.decoded == len(msgs)
    assert sum(s.length for s in dec.skips) == garbage_len
    for skip in dec.skips:
        assert stream[skip.offset : skip.offset + skip.length].find(encode(msgs[0])) < 0


def test_truncated_and_corrupted_packets_in_a_stream_are_reported() -> None:
    quotes = _quotes(6)
    packets = [encode(q) for q in quotes]
    broken = bytearray(packets[3])
    broken[70] ^= 1
    stream = packets[0] + packets[1][:100] + packets[2] + bytes(broken) + packets[4] + packets[5]
    dec = StreamDecoder()
    got = dec.feed(stream)
    assert got == [quotes[0], quotes[2], quotes[4], quotes[5]]
    reasons = [s.reason for s in dec.skips]
    assert len(reasons) == 2
    assert "CRC-32" in reasons[0]  # the cut packet runs into the next one: bad CRC
    assert dec.skips[0].offset == 144 and dec.skips[0].length == 100
    assert dec.skips[1].offset == 144 + 100 + 144 and dec.skips[1].length == 144


def test_stream_memory_stays_bounded_under_garbage() -> None:
    rng = random.Random(1)
    dec = StreamDecoder(max_skips=10)
    packet = encode(_quotes(1)[0])
    total = 0
    for i in range(80):
        chunk = os.urandom(64 * 1024) if i % 3 else (MAGIC + rng.randbytes(50)) * 500
        total += len(chunk)
        assert dec.feed(chunk) == []
        assert dec.pending < PACKET_SIZE
        assert len(dec.skips) <= 10
    assert dec.feed(packet) == [decode(packet)]
    assert dec.skipped_bytes == total
    assert dec.position == total + PACKET_SIZE


def test_stream_one_byte_at_a_time() -> None:
    msgs = _quotes(5)
    stream = b"xx" + encode_frame(msgs) + b"SUH"
    dec = StreamDecoder()
    got: list[Packet] = []
    for i in range(len(stream)):
        got += dec.feed(stream[i : i + 1])
    assert got == msgs
    assert dec.pending == 3
    dec.close()
    assert dec.pending == 0
    assert [(s.offset, s.length) for s in dec.skips] == [(0, 2), (2 + 5 * 144, 3)]
    assert dec.skips[-1].reason == "truncated packet at end of stream"


def test_stream_accepts_bytearray_and_memoryview() -> None:
    packet = encode(_quotes(1)[0])
    dec = StreamDecoder()
    assert dec.feed(bytearray(packet[:50])) == []
    assert len(dec.feed(memoryview(packet)[50:])) == 1


def test_stream_of_only_magics_is_skipped_in_linear_time() -> None:
    dec = StreamDecoder()
    assert dec.feed(MAGIC * 200_000) == []
    assert dec.skipped_bytes + dec.pending == 800_000
