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

import time
from collections.abc import Callable, Iterable

from ._layout import FAST_ENCODERS, LAYOUT_BY_CLASS, LAYOUT_BY_TYPE, build_decode, slow_encode
from ._messages import Packet
from ._rules import build_unchecked, first_violation

Buffer = bytes | bytearray | memoryview
"""What the decoders accept. Anything else is a programming error (``TypeError``)."""


def now_us() -> int:
    """Now, in what a packet's ``timestamp_us`` holds: UTC microseconds since the epoch.

    >>> now_us() > 1_700_000_000_000_000
    True
    """
    return time.time_ns() // 1000


def as_bytes(buf: object) -> bytes:
    """``buf`` as ``bytes`` (one copy for a bytearray or memoryview), or ``TypeError``."""
    if isinstance(buf, bytes | bytearray | memoryview):
        return bytes(buf)
    raise TypeError(f"expected bytes, bytearray or memoryview, not {type(buf).__name__}")


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
    """``decode`` through the reference path: the spec's rules one by one, in order.

    That is :data:`suho_mt5.protocol._rules.RULES` (section 6 of ``docs/protocol.md``) and
    then a record built with no further check. The generated :func:`decode` falls back to
    it for anything unusual, and tests and the fuzzer check that both always agree, so the
    rule list is complete: a check missing from it would show as a disagreement.
    """
    data = as_bytes(buf)
    found = first_violation(data)
    if found is not None:
        raise found[1]
    return build_unchecked(data)


decode: Callable[[Buffer], Packet] = build_decode(LAYOUT_BY_TYPE, reference_decode)
decode.__doc__ = """Decode one 144-byte packet into its record, checking everything the spec says.

Raises a :class:`suho_mt5.errors.ProtocolError` subclass (with the byte offset) for any
input that is not a valid packet, and nothing else; ``TypeError`` if ``buf`` is not a
bytes-like object. (Generated from the layouts: see ``_layout.build_decode``.)
"""
decode.__module__ = __name__
decode.__qualname__ = "decode"
