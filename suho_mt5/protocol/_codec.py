"""``encode`` and ``decode`` of single packets.

>>> from suho_mt5.protocol import BrokerQuotePacket
>>> q = BrokerQuotePacket(1, 0, bytes(16), "EURUSD", 109_531_000, 109_533_000, 0, 0, 2)
>>> decode(encode(q)) == q
True
>>> decode(b"SUHO")
Traceback (most recent call last):
...
suho_mt5.errors.TruncatedPacketError: 4 bytes; a packet is 144 (at byte offset 0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from suho_mt5.errors import ProtocolError, TrailingDataError, TruncatedPacketError

from ._constants import CRC_RESIDUE, PACKET_SIZE
from ._crc import crc32
from ._enums import MessageType
from ._layout import (
    FAST_DECODERS,
    FAST_ENCODERS,
    LAYOUT_BY_CLASS,
    LAYOUT_BY_TYPE,
    PREFIX_SIZE,
    build_decode,
    checksum_error,
    header_error,
    slow_decode,
    slow_encode,
)
from ._messages import Packet

Buffer = bytes | bytearray | memoryview
"""What the decoders accept. Anything else is a programming error (``TypeError``)."""


def as_bytes(buf: object) -> bytes:
    """``buf`` as ``bytes`` (one copy for a bytearray or memoryview), or ``TypeError``."""
    if isinstance(buf, bytes | bytearray | memoryview):
        return bytes(buf)
    raise TypeError(f"expected bytes, bytearray or memoryview, not {type(buf).__name__}")


def length_error(size: int) -> ProtocolError:
    if size < PACKET_SIZE:
        return TruncatedPacketError(f"{size} bytes; a packet is {PACKET_SIZE}", 0)
    return TrailingDataError(
        f"{size} bytes; a packet is {PACKET_SIZE} (decode a frame of several packets with "
        "decode_frame)",
        PACKET_SIZE,
    )


def _make_encode() -> Callable[[Packet], bytes]:
    get = FAST_ENCODERS.get

    def encode(msg: Packet) -> bytes:
        """The 144-byte packet of ``msg``, CRC trailer included.

        A field that cannot be sent (out of its range, a symbol that is not printable ASCII,
        an ``account_id`` that is not 16 bytes) raises ``FieldRangeError`` or
        ``InvalidSymbolError`` with the field's offset in the packet.

        >>> from suho_mt5.protocol import HeartbeatPacket
        >>> packet = encode(HeartbeatPacket(1, 0, bytes(16), "1.0.0", 4410, 12, True, True))
        >>> len(packet), packet[:6]
        (144, b'SUHO\\x01\\x03')
        """
        enc = get(msg.__class__)
        if enc is None:
            return _encode_other(msg)
        return enc(msg)

    return encode


def _encode_other(msg: object) -> bytes:
    for cls, layout in LAYOUT_BY_CLASS.items():  # a subclass of a record class
        if isinstance(msg, cls):
            return slow_encode(layout, msg)
    raise TypeError(f"not a Suho message record: {type(msg).__name__}")


encode = _make_encode()


def encode_frame(messages: Iterable[Packet]) -> bytes:
    """Concatenate the packets of ``messages``: one frame, e.g. one NATS message.

    >>> from suho_mt5.protocol import AckPacket, MessageType
    >>> len(encode_frame(AckPacket(i, 0, bytes(16), i, MessageType.HEARTBEAT) for i in range(3)))
    432
    """
    return b"".join(map(encode, messages))


def reference_decode(buf: Buffer) -> Packet:
    """``decode`` through the field-by-field reference path only.

    The generated :func:`decode` falls back to it for anything unusual, so it alone decides
    which error is raised; tests and the fuzzer check that both always agree.
    """
    data = as_bytes(buf)
    if len(data) != PACKET_SIZE:
        raise length_error(len(data))
    if data[:PREFIX_SIZE] not in FAST_DECODERS:
        raise header_error(data, 0)
    if crc32(data) != CRC_RESIDUE:
        raise checksum_error(data, 0)
    return slow_decode(LAYOUT_BY_TYPE[MessageType(data[5])], data, 0)


decode: Callable[[Buffer], Packet] = build_decode(LAYOUT_BY_TYPE, reference_decode)
decode.__doc__ = """Decode one 144-byte packet into its record, checking everything the spec says.

Raises a :class:`suho_mt5.errors.ProtocolError` subclass (with the byte offset) for any
input that is not a valid packet, and nothing else; ``TypeError`` if ``buf`` is not a
bytes-like object. (Generated from the layouts: see ``_layout.build_decode``.)
"""
decode.__module__ = __name__
decode.__qualname__ = "decode"
