"""Many packets at once: strict frames (one NATS message) and a resynchronising stream."""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import NamedTuple

from suho_mt5.errors import ProtocolError, TruncatedPacketError

from ._codec import Buffer, as_bytes
from ._constants import CRC_RESIDUE, MAGIC, PACKET_SIZE, PROTOCOL_VERSION
from ._enums import MessageType
from ._layout import (
    FAST_DECODERS,
    FAST_RUNS,
    FRAME_DECODERS,
    LAYOUT_BY_TYPE,
    PREFIX_SIZE,
    checksum_error,
    header_error,
    slow_decode,
)
from ._messages import Message

__all__ = ["Skip", "StreamDecoder", "decode_frame", "iter_frame"]


def _frame_bytes(buf: Buffer) -> bytes:
    data = buf if buf.__class__ is bytes else as_bytes(buf)
    assert isinstance(data, bytes)
    rest = len(data) % PACKET_SIZE
    if rest:
        raise TruncatedPacketError(
            f"a frame of {len(data)} bytes ends with {rest} bytes of an incomplete packet "
            f"(frames are whole multiples of {PACKET_SIZE} bytes)",
            len(data) - rest,
        )
    return data


def _diagnose(buf: bytes, offset: int) -> ProtocolError:
    """The error of the (full-length) packet at ``offset``, whatever made the fast path balk."""
    if buf[offset : offset + PREFIX_SIZE] not in FAST_DECODERS:
        return header_error(buf, offset)
    if zlib.crc32(memoryview(buf)[offset : offset + PACKET_SIZE]) != CRC_RESIDUE:
        return checksum_error(buf, offset)
    try:
        slow_decode(LAYOUT_BY_TYPE[MessageType(buf[offset + 5])], buf, offset)
    except ProtocolError as exc:
        return exc
    raise AssertionError(f"packet at {offset} is valid")  # pragma: no cover


# Packet bytes that are the same in every valid version 1 packet: magic, version, flags.
_UNIFORM = (*((i, MAGIC[i]) for i in range(4)), (4, PROTOCOL_VERSION), (6, 0), (7, 0))
_TYPE_BYTES = bytes(int(t) for t in MessageType)


def _first(column: bytes, good: Callable[[int], bool]) -> int:
    return next(i for i, value in enumerate(column) if not good(value))


def _decode_aligned(data: bytes, end: int, out: list[Message]) -> int:
    """Append the messages of ``data[:end]`` (whole packets) to ``out`` until the first packet
    that is not valid; return its offset, or ``end``.

    Checks run column-wise first, in C: one CRC call per packet, then the prefix bytes of all
    packets as strided slices (``data[0:end:144]`` is every packet's first byte). A frame of
    one message type is then unpacked in one ``iter_unpack``.
    """
    size = PACKET_SIZE
    crcs = [zlib.crc32(data[o : o + size]) for o in range(0, end, size)]
    count = len(crcs)
    if crcs.count(CRC_RESIDUE) != count:
        count = _first(bytes(c == CRC_RESIDUE for c in crcs), bool)
    for index, expected in _UNIFORM:
        column = data[index : count * size : size]
        if column.count(expected) != count:
            count = _first(column, expected.__eq__)
    types = data[5 : count * size : size]
    if types.translate(None, _TYPE_BYTES):
        count = _first(types, _TYPE_BYTES.__contains__)
        types = types[:count]
    if not count:
        return 0
    good_end = count * size
    first = types[0]
    if types.count(first) == count:
        stop = FRAME_DECODERS[first](data, good_end, out)
    else:
        stop = _decode_mixed(data, types, out)
    return stop if stop != good_end else good_end


def _decode_mixed(data: bytes, types: bytes, out: list[Message]) -> int:
    table = _DECODERS_BY_TYPE
    append = out.append
    off = 0
    try:
        offsets = range(0, len(types) * PACKET_SIZE, PACKET_SIZE)
        for off, mtype in zip(offsets, types, strict=True):
            append(table[mtype](data, off))
    except ProtocolError:
        return off
    return len(types) * PACKET_SIZE


_DECODERS_BY_TYPE: dict[int, Callable[[bytes, int], Message]] = {
    prefix[5]: dec for prefix, dec in FAST_DECODERS.items()
}


def _make_decode_frame() -> Callable[[Buffer], list[Message]]:
    def decode_frame(buf: Buffer) -> list[Message]:
        """Decode a frame of concatenated packets (e.g. one NATS message), strictly.

        The frame must be a whole number of valid packets; the first problem raises a
        ``ProtocolError`` whose offset is counted from the start of the frame. To skip bad
        packets instead, feed the frame to a :class:`StreamDecoder`.

        >>> from suho_mt5.protocol import Ack, MessageType, encode_frame
        >>> frame = encode_frame(Ack(i, 0, bytes(16), i, MessageType.SIGNAL) for i in range(3))
        >>> [m.acked_sequence for m in decode_frame(frame)]
        [0, 1, 2]
        >>> decode_frame(frame[:-1])
        Traceback (most recent call last):
        ...
        suho_mt5.errors.TruncatedPacketError: a frame of 431 bytes ends with 143 bytes of an \
incomplete packet (frames are whole multiples of 144 bytes) (at byte offset 288)
        """
        data = _frame_bytes(buf)
        out: list[Message] = []
        stop = _decode_aligned(data, len(data), out)
        if stop != len(data):
            raise _diagnose(data, stop)
        return out

    return decode_frame


decode_frame = _make_decode_frame()


def iter_frame(buf: Buffer) -> Iterator[Message]:
    """Like :func:`decode_frame`, one message at a time; the length is checked at once.

    >>> from suho_mt5.protocol import Ack, MessageType, encode
    >>> next(iter_frame(encode(Ack(1, 0, bytes(16), 7, MessageType.SIGNAL)))).acked_sequence
    7
    """
    data = _frame_bytes(buf)
    return _iter_frame(data)


def _iter_frame(data: bytes) -> Iterator[Message]:
    get = FAST_DECODERS.get
    for off in range(0, len(data), PACKET_SIZE):
        packet = data[off : off + PACKET_SIZE]
        dec = get(packet[:PREFIX_SIZE])
        if dec is None or zlib.crc32(packet) != CRC_RESIDUE:
            raise _diagnose(data, off)
        yield dec(data, off)


class Skip(NamedTuple):
    """Bytes of a stream that were not a valid packet."""

    offset: int
    """Stream offset (bytes fed before it) of the first skipped byte."""
    length: int
    reason: str


_NO_MAGIC = "no packet start (magic) in these bytes"


def _next_candidate(buf: bytes, start: int) -> int:
    """Index of the next possible packet start at or after ``start``.

    That is the next magic, else the last bytes if they begin a magic (its rest may come with
    the next feed), else ``len(buf)``.
    """
    found = buf.find(MAGIC, start)
    if found >= 0:
        return found
    end = len(buf)
    for pos in range(max(start, end - len(MAGIC) + 1), end):
        if MAGIC.startswith(buf[pos:]):
            return pos
    return end


class StreamDecoder:
    """Decode a byte stream of packets that may hold garbage, e.g. a WebSocket or a file.

    :meth:`feed` returns the packets completed by the bytes given. Bytes that are not a valid
    packet are skipped: the decoder scans for the next magic and tries again there, so every
    valid packet after garbage is recovered. Skips are counted in :attr:`skipped_bytes` and
    :attr:`skip_count`, and the latest (at most ``max_skips``) are kept in :attr:`skips`.
    Between calls it holds at most one incomplete packet (< 144 bytes).

    >>> from suho_mt5.protocol import Ack, MessageType, encode
    >>> packet = encode(Ack(1, 0, bytes(16), 7, MessageType.SIGNAL))
    >>> dec = StreamDecoder()
    >>> dec.feed(b"noise" + packet[:100])
    []
    >>> [m.acked_sequence for m in dec.feed(packet[100:] + packet)]
    [7, 7]
    >>> dec.skips
    deque([Skip(offset=0, length=5, reason='no packet start (magic) in these bytes')], maxlen=1000)
    """

    def __init__(self, *, max_skips: int = 1000) -> None:
        self._pending = b""
        self._base = 0  # stream offset of _pending[0]
        self.skipped_bytes = 0
        self.skip_count = 0
        self.decoded = 0
        self.skips: deque[Skip] = deque(maxlen=max_skips)

    @property
    def pending(self) -> int:
        """Bytes held back as the start of a packet not yet complete (always < 144)."""
        return len(self._pending)

    @property
    def position(self) -> int:
        """Bytes fed so far."""
        return self._base + len(self._pending)

    def _skip(self, offset: int, length: int, reason: str) -> None:
        self.skipped_bytes += length
        skips = self.skips
        if skips:
            last = skips[-1]
            if last.offset + last.length == offset and last.reason == reason:
                skips[-1] = Skip(last.offset, last.length + length, reason)
                return
        self.skip_count += 1
        skips.append(Skip(offset, length, reason))

    def feed(self, data: Buffer) -> list[Message]:
        """Add bytes; return the packets they complete, in order. Never raises ProtocolError."""
        chunk = data if data.__class__ is bytes else as_bytes(data)
        assert isinstance(chunk, bytes)
        buf = self._pending + chunk if self._pending else chunk
        base = self._base
        end = len(buf)
        size = PACKET_SIZE
        crc32 = zlib.crc32
        residue = CRC_RESIDUE
        out: list[Message] = []
        append = out.append
        i = 0
        runs = FAST_RUNS.get
        decoders = FAST_DECODERS
        while True:
            # The common case, a run of valid packets, stays in this loop.
            while end - i >= size:
                key = buf[i : i + PREFIX_SIZE]
                run = runs(key)
                if run is None:
                    break
                stop = run(buf, i, end - (end - i) % size, append)
                if stop == i:
                    # The run balked at its first packet: a new symbol, or not a packet.
                    if crc32(buf[i : i + size]) != residue:
                        break
                    try:
                        append(decoders[key](buf, i))
                    except ProtocolError:
                        break
                    stop = i + size
                i = stop
            if end - i < size:
                if buf.startswith(MAGIC, i) or MAGIC.startswith(buf[i:]):
                    break  # the start of a packet: wait for the rest
                nxt = _next_candidate(buf, i + 1)
                self._skip(base + i, nxt - i, _NO_MAGIC)
                i = nxt
                continue
            reason = _diagnose(buf, i).reason if buf.startswith(MAGIC, i) else _NO_MAGIC
            nxt = _next_candidate(buf, i + 1)
            self._skip(base + i, nxt - i, reason)
            i = nxt
        self.decoded += len(out)
        self._pending = buf[i:]
        self._base = base + i
        return out

    def close(self) -> None:
        """End of stream: count what is still pending as skipped (a truncated packet)."""
        if self._pending:
            self._skip(self._base, len(self._pending), "truncated packet at end of stream")
            self._base += len(self._pending)
            self._pending = b""
