"""Wire constants of the Suho Binary Protocol, version 1 (see ``docs/protocol.md``)."""

from __future__ import annotations

from typing import Final

MAGIC: Final = b"SUHO"
"""First four bytes of every packet; the stream decoder resynchronises on them."""

PROTOCOL_VERSION: Final = 1
PACKET_SIZE: Final = 144
HEADER_SIZE: Final = 40
PAYLOAD_OFFSET: Final = HEADER_SIZE
PAYLOAD_SIZE: Final = 100
CRC_OFFSET: Final = PAYLOAD_OFFSET + PAYLOAD_SIZE  # 140

CRC_RESIDUE: Final = 0x2144DF1C
"""``zlib.crc32`` of any packet whose trailer holds the CRC-32 of bytes 0..139, little-endian.

CRC-32 (reflected, final XOR) has a constant residue over data followed by its own
little-endian CRC, so a packet is checked with one ``crc32`` call over all 144 bytes, with no
slicing and no second comparison.
"""

MAX_TIMESTAMP_US: Final = 253_402_300_799_999_999
"""9999-12-31T23:59:59.999999Z: the last instant a Python ``datetime`` can hold."""

PRICE_SCALE: Final = 8
"""Prices, lots and price differences: int64 holding value x 10^8 (``numeric(20,8)``)."""

MONEY_SCALE: Final = 4
"""Money and percentages: int64 holding value x 10^4 (``numeric(20,4)``, ``numeric(12,4)``)."""

CONFIDENCE_SCALE: Final = 4
"""Confidence: uint16 basis points 0..10000, i.e. value x 10^4 (``numeric(5,4)``)."""

SYMBOL_CACHE_SIZE: Final = 4096
"""Entries per text-field cache (raw bytes -> str); a full cache drops one entry per new one."""
