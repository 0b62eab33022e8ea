"""Many packets at once: strict frames (one NATS message) and a resynchronising stream."""

from __future__ import annotations

import itertools
import struct
from collections import deque
from collections.abc import Callable, Iterator
from typing import NamedTuple

from suho_mt5.errors import ProtocolError, TruncatedPacketError

from ._codec import Buffer, as_bytes
from ._constants import CRC_RESIDUE, MAGIC, PACKET_SIZE, PROTOCOL_VERSION
from ._crc import crc32
from ._enums import MessageType
from ._layout import FAST_DECODERS, FAST_RUNS, FRAME_DECODERS, MIXED_FRAME_DECODERS, PREFIX_SIZE
from ._messages import Packet
from ._rules import first_violation

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
    """The error of the (full-length) packet at ``offset``, whatever made the fast path balk:
    the first rule of the spec it breaks, with the offset counted from the start of ``buf``."""
    found = first_violation(buf[offset : offset + PACKET_SIZE])
    if found is None:  # pragma: no cover
        raise AssertionError(f"packet at {offset} is valid")
    error = found[1]
    return type(error)(error.reason, error.offset + offset)


def _decode_runs(buf: bytes, start: int, end: int, out: list[Packet]) -> int:
    """Append the messages of the whole packets in ``buf[start:end]`` to ``out`` until the
    first one that is not valid; return its offset, or ``end``. Never raises.

    Consecutive packets of one type are decoded by that type's generated run loop, so a
    packet costs no Python call of its own.
    """
    runs = FAST_RUNS.get
    decoders = FAST_DECODERS
    append = out.append
    size = PACKET_SIZE
    off = start
    while off < end:
        key = buf[off : off + PREFIX_SIZE]
        run = runs(key)
        if run is None:
            return off
        stop = run(buf, off, end, append)
        if stop == off:
            # The run balked at its first packet: a new symbol, or not a valid packet.
            if crc32(buf[off : off + size]) != CRC_RESIDUE:
                return off
            try:
                append(decoders[key](buf, off))
            except ProtocolError:
                return off
            stop = off + size
        off = stop
    return end


# Prefix bytes that are the same in every valid version 1 packet: magic, version, flags.
_UNIFORM = tuple(
    (index, value)
    for index, value in enumerate(MAGIC + bytes((PROTOCOL_VERSION, 0, 0, 0)))
    if index != 5
)


def _prefix_limit(data: bytes, end: int, count: int) -> int:
    """How many leading packets of ``data[:end]`` have the right magic, version and flags.

    Checked column-wise: ``data[i:end:144]`` is byte ``i`` of every packet, sliced in C.
    """
    limit = count
    for index, expected in _UNIFORM:
        column = data[index:end:PACKET_SIZE]
        if column.count(expected) != count:
            limit = min(limit, next(i for i, b in enumerate(column) if b != expected))
    return limit


_TYPE_BYTES = bytes(int(t) for t in MessageType)
_WHOLE_PACKET = struct.Struct(f"{PACKET_SIZE}s")


def _crc_limit(data: bytes, end: int) -> int:
    """How many leading packets of ``data[:end]`` have a valid CRC (one C-level pass)."""
    crcs = list(itertools.starmap(crc32, _WHOLE_PACKET.iter_unpack(memoryview(data)[:end])))
    if crcs.count(CRC_RESIDUE) == len(crcs):
        return len(crcs)
    return next(i for i, c in enumerate(crcs) if c != CRC_RESIDUE)


def _make_decode_frame() -> Callable[[Buffer], list[Packet]]:
    def decode_frame(buf: Buffer) -> list[Packet]:
        """Decode a frame of concatenated packets (e.g. one NATS message), strictly.

        The frame must be a whole number of valid packets; the first problem raises a
        ``ProtocolError`` whose offset is counted from the start of the frame. To skip bad
        packets instead, feed the frame to a :class:`StreamDecoder`.

        >>> from suho_mt5.protocol import AckPacket, MessageType, encode_frame
        >>> acks = (AckPacket(i, 0, bytes(16), i, MessageType.SIGNAL) for i in range(3))
        >>> frame = encode_frame(acks)
        >>> [m.acked_sequence for m in decode_frame(frame)]
        [0, 1, 2]
        >>> decode_frame(frame[:-1])
        Traceback (most recent call last):
        ...
        suho_mt5.errors.TruncatedPacketError: a frame of 431 bytes ends with 143 bytes of an \
incomplete packet (frames are whole multiples of 144 bytes) (at byte offset 288)
        """
        data = _frame_bytes(buf)
        end = len(data)
        out: list[Packet] = []
        types = data[5:end:PACKET_SIZE]  # every packet's type byte, sliced in C
        count = len(types)
        if not count:
            return out
        first = types[0]
        if types.count(first) == count and first in FRAME_DECODERS:
            good = _prefix_limit(data, end, count) * PACKET_SIZE
            stop = FRAME_DECODERS[first](data, good, out)
        elif not types.translate(None, _TYPE_BYTES):
            # Several (known) types: the most frequent one leads.
            good = min(_prefix_limit(data, end, count), _crc_limit(data, end)) * PACKET_SIZE
            lead = max(set(types), key=types.count)
            stop = MIXED_FRAME_DECODERS[lead](data, good, types, out)
        else:
            stop = _decode_runs(data, 0, end, out)
        if stop != end:
            raise _diagnose(data, stop)
        return out

    return decode_frame


decode_frame = _make_decode_frame()


def iter_frame(buf: Buffer) -> Iterator[Packet]:
    """Like :func:`decode_frame`, one message at a time; the length is checked at once.

    >>> from suho_mt5.protocol import AckPacket, MessageType, encode
    >>> next(iter_frame(encode(AckPacket(1, 0, bytes(16), 7, MessageType.SIGNAL)))).acked_sequence
    7
    """
    data = _frame_bytes(buf)
    return _iter_frame(data)


def _iter_frame(data: bytes) -> Iterator[Packet]:
    get = FAST_DECODERS.get
    for off in range(0, len(data), PACKET_SIZE):
        packet = data[off : off + PACKET_SIZE]
        dec = get(packet[:PREFIX_SIZE])
        if dec is None or crc32(packet) != CRC_RESIDUE:
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
    valid packet after garbage is recovered. Each bad packet is one skip (its reason the
    error), and so is each run of bytes without a magic, however many feeds it came in.
    Skips are counted in :attr:`skipped_bytes` and :attr:`skip_count`, and the latest (at
    most ``max_skips``) are kept in :attr:`skips`. Between calls it holds at most one
    incomplete packet (< 144 bytes).

    >>> from suho_mt5.protocol import AckPacket, MessageType, encode
    >>> packet = encode(AckPacket(1, 0, bytes(16), 7, MessageType.SIGNAL))
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
        if skips and reason == _NO_MAGIC:
            # A run of garbage is one skip however it was fed; each bad packet is its own.
            last = skips[-1]
            if last.offset + last.length == offset and last.reason == reason:
                skips[-1] = Skip(last.offset, last.length + length, reason)
                return
        self.skip_count += 1
        skips.append(Skip(offset, length, reason))

    def feed(self, data: Buffer) -> list[Packet]:
        """Add bytes; return the packets they complete, in order. Never raises ProtocolError."""
        chunk = data if data.__class__ is bytes else as_bytes(data)
        assert isinstance(chunk, bytes)
        buf = self._pending + chunk if self._pending else chunk
        base = self._base
        end = len(buf)
        size = PACKET_SIZE
        out: list[Packet] = []
        i = 0
        while True:
            # The common case, a run of valid packets, stays in here.
            i = _decode_runs(buf, i, end - (end - i) % size, out)
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
