"""Hypothesis strategies built from the layout declarations: every field over its full range."""

from __future__ import annotations

import zlib

from hypothesis import strategies as st

from suho_mt5.protocol import RECORD_TYPES, Packet, encode
from suho_mt5.protocol._layout import LAYOUT_BY_CLASS, FieldLayout

RECORDS: list[type[Packet]] = list(RECORD_TYPES.values())


def field_values(field: FieldLayout) -> st.SearchStrategy[object]:
    kind = field.kind
    category = kind.category
    if category == "text":
        assert kind.text is not None
        low = 0x20 if kind.text.allow_space else 0x21
        alphabet = st.characters(min_codepoint=low, max_codepoint=0x7E)
        return st.text(alphabet, min_size=kind.text.min_len, max_size=kind.size)
    if category == "bytes":
        return st.binary(min_size=kind.size, max_size=kind.size)
    if category == "enum":
        assert kind.enum is not None
        return st.sampled_from(list(kind.enum))
    if category == "bool":
        return st.booleans()
    return st.integers(kind.lo, kind.hi)


def messages(cls: type[Packet]) -> st.SearchStrategy[Packet]:
    layout = LAYOUT_BY_CLASS[cls]
    return st.tuples(*(field_values(f) for f in layout.fields)).map(lambda v: cls(*v))


any_message: st.SearchStrategy[Packet] = st.one_of(*(messages(c) for c in RECORDS))


def with_crc(packet: bytes | bytearray) -> bytes:
    """``packet`` (144 bytes) with its CRC trailer recomputed."""
    body = bytes(packet[:140])
    return body + zlib.crc32(body).to_bytes(4, "little")


packets: st.SearchStrategy[bytes] = any_message.map(encode)
