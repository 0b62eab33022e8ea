"""The validation rules of ``docs/protocol.md`` section 6, as data, in the order they run.

The reference decoder (``_codec.reference_decode``) is :func:`first_violation` over
:data:`RULES` followed by :func:`build_unchecked`, which checks nothing: every check a packet
gets is one of these rules. The generated fast paths must agree with it on every input
(tests compare the two), the spec's rule table is rendered from :data:`RULES`, every rule is
pinned by at least one golden vector, and the mutation test plants mistakes in this list
(drop a rule, swap two, widen or narrow a range by one) and requires a vector to notice each.

Rule ids: ``length``, ``magic``, ``version``, ``type``, ``flags``, ``crc`` for every packet,
then ``<TYPE>.<field>`` for a value range and ``<TYPE>.<field>.printable`` /
``.nul_padding`` / ``.non_empty`` for a text field.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

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

from ._constants import CRC_OFFSET, CRC_RESIDUE, MAGIC, PACKET_SIZE, PROTOCOL_VERSION
from ._crc import crc32
from ._enums import HeaderFlag, MessageType
from ._kinds import _STRUCT_BOUNDS
from ._layout import (
    LAYOUTS,
    FieldLayout,
    Layout,
    after_nul,
    checksum_error,
    not_printable,
    range_error,
)
from ._messages import Packet

__all__ = ["RULES", "Rule", "build_unchecked", "first_violation", "intervals"]

Intervals = tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """One check; ``wording`` is the spec's. ``kind`` says which test it is:

    * ``length``: exactly 144 bytes; ``magic``: bytes 0..3 are ``SUHO``; ``crc``: the trailer;
    * ``value``: the little-endian integer (struct ``code``) at ``offset`` lies in one of
      ``allowed`` (version, type, flags and every range-checked field);
    * ``printable``: every byte of the text field before its first NUL lies in ``allowed``;
    * ``nul_padding``: every byte after the first NUL is 0;
    * ``non_empty``: the first byte is not NUL.
    """

    id: str
    kind: str
    wording: str
    error: type[ProtocolError]
    offset: int
    message_type: MessageType | None = None
    """The type whose packets this rule checks; ``None``: every packet."""
    field: FieldLayout | None = None
    code: str = ""
    allowed: Intervals = ()

    @property
    def size(self) -> int:
        if self.field is not None:
            return self.field.kind.size
        return struct.calcsize("<" + self.code) if self.code else 0

    def widened(self, index: int, low: bool) -> Rule:
        """This rule with interval ``index`` one wider at its low (or high) end."""
        lo, hi = self.allowed[index]
        new = (lo - 1, hi) if low else (lo, hi + 1)
        return replace(self, allowed=(*self.allowed[:index], new, *self.allowed[index + 1 :]))

    def narrowed(self, index: int, low: bool) -> Rule:
        """This rule with interval ``index`` one narrower at its low (or high) end."""
        lo, hi = self.allowed[index]
        new = (lo + 1, hi) if low else (lo, hi - 1)
        return replace(self, allowed=(*self.allowed[:index], new, *self.allowed[index + 1 :]))


def intervals(values: list[int]) -> Intervals:
    """``values`` as sorted runs of consecutive integers: [0, 1, 2, 255] -> ((0, 2), (255, 255))."""
    out: list[tuple[int, int]] = []
    for v in sorted(values):
        if out and v == out[-1][1] + 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return tuple(out)


def _field_rules(layout: Layout, field: FieldLayout) -> list[Rule]:
    kind = field.kind
    mtype = layout.message_type
    rid = f"{mtype.name}.{field.name}"
    at = field.offset
    category = kind.category
    if category == "text":
        assert kind.text is not None
        low = 0x20 if kind.text.allow_space else 0x21
        chars = "0x20..0x7E" if low == 0x20 else "0x21..0x7E"
        rules = [
            Rule(
                f"{rid}.printable",
                "printable",
                f"bytes before the first NUL are {chars}",
                InvalidSymbolError,
                at,
                mtype,
                field,
                allowed=((low, 0x7E),),
            ),
            Rule(
                f"{rid}.nul_padding",
                "nul_padding",
                "bytes after the first NUL are NUL",
                InvalidSymbolError,
                at,
                mtype,
                field,
            ),
        ]
        if kind.text.min_len:
            rules.append(
                Rule(
                    f"{rid}.non_empty",
                    "non_empty",
                    "not empty (first byte not NUL)",
                    InvalidSymbolError,
                    at,
                    mtype,
                    field,
                )
            )
        return rules
    if category == "enum":
        allowed = intervals(list(kind.members()))
        what = f"a {kind.enum.__name__ if kind.enum else ''} value"
    elif category == "bool":
        allowed, what = ((0, 1),), "0 or 1"
    elif kind.range_checked:
        allowed, what = ((kind.lo, kind.hi),), f"in {kind.lo}..{kind.hi}"
    else:
        return []
    return [Rule(rid, "value", what, FieldRangeError, at, mtype, field, kind.code, allowed)]


def _rules() -> tuple[Rule, ...]:
    types = intervals([int(t) for t in MessageType])
    flags_bits = 0  # no flag is defined for version 1 (MAC_TRAILER is reserved)
    rules = [
        Rule(
            "length",
            "length",
            f"exactly {PACKET_SIZE} bytes (single packet)",
            TruncatedPacketError,
            0,
        ),
        Rule("magic", "magic", f"bytes 0..3 are {MAGIC.decode()}", BadMagicError, 0),
        Rule(
            "version",
            "value",
            f"version = {PROTOCOL_VERSION}",
            UnsupportedVersionError,
            4,
            code="B",
            allowed=((PROTOCOL_VERSION, PROTOCOL_VERSION),),
        ),
        Rule(
            "type",
            "value",
            "a message type defined in version 1",
            UnknownMessageTypeError,
            5,
            code="B",
            allowed=types,
        ),
        Rule(
            "flags",
            "value",
            "flags = 0",
            FieldRangeError,
            6,
            code="H",
            allowed=((flags_bits, flags_bits),),
        ),
        Rule(
            "crc",
            "crc",
            f"CRC-32 of bytes 0..{CRC_OFFSET - 1} = bytes {CRC_OFFSET}..143",
            ChecksumMismatchError,
            CRC_OFFSET,
        ),
    ]
    for layout in LAYOUTS:
        for field in layout.fields:
            rules += _field_rules(layout, field)
    return tuple(rules)


RULES: tuple[Rule, ...] = _rules()
"""Every check of the spec, in the order a decoder runs them: the header rules for every
packet, then the rules of the packet's type in field order."""


def _in(value: int, allowed: Intervals) -> bool:
    return any(lo <= value <= hi for lo, hi in allowed)


def _value_error(rule: Rule, value: int) -> ProtocolError:
    if rule.field is not None:
        return range_error(rule.field, value, 0)
    if rule.id == "version":
        return UnsupportedVersionError(
            f"protocol version {value}; this decoder reads version {PROTOCOL_VERSION}", 4
        )
    if rule.id == "type":
        return UnknownMessageTypeError(
            f"message type 0x{value:02X} is not defined in version {PROTOCOL_VERSION}", 5
        )
    why = "undefined flag bits set"
    if value & HeaderFlag.MAC_TRAILER:
        why = "MAC_TRAILER is reserved; version 1 cannot verify a per-packet MAC"
    return rule.error(f"flags = 0x{value:04X}: {why}", rule.offset)


def violation(rule: Rule, data: bytes) -> ProtocolError | None:
    """The error ``rule`` raises for ``data``, or ``None`` if it holds (or does not apply)."""
    if rule.message_type is not None and (len(data) < 6 or data[5] != rule.message_type):
        return None
    check = rule.kind
    if check == "length":
        if len(data) < PACKET_SIZE:
            return TruncatedPacketError(f"{len(data)} bytes; a packet is {PACKET_SIZE}", 0)
        if len(data) > PACKET_SIZE:
            return TrailingDataError(
                f"{len(data)} bytes; a packet is {PACKET_SIZE} (decode a frame of several "
                "packets with decode_frame)",
                PACKET_SIZE,
            )
        return None
    # Past the length rule the packet is 144 bytes; a decoder missing that rule (a mutant)
    # checks what bytes there are.
    if check == "magic":
        magic = data[:4]
        if magic != MAGIC:
            return BadMagicError(f"expected magic {MAGIC!r}, got {magic!r}", 0)
        return None
    if len(data) < PACKET_SIZE:
        return None
    if check == "crc":
        return checksum_error(data, 0) if crc32(data[:PACKET_SIZE]) != CRC_RESIDUE else None
    if check == "value":
        bounds = _STRUCT_BOUNDS[rule.code]
        value = int.from_bytes(
            data[rule.offset : rule.offset + rule.size], "little", signed=bounds[0] < 0
        )
        return None if _in(value, rule.allowed) else _value_error(rule, value)
    field = rule.field
    assert field is not None
    raw = data[rule.offset : rule.offset + field.kind.size]
    end = raw.find(0)
    end = len(raw) if end < 0 else end
    if check == "printable":
        for i in range(end):
            if not _in(raw[i], rule.allowed):
                return InvalidSymbolError(f"{field.name}: {not_printable(raw[i])}", rule.offset + i)
        return None
    if check == "nul_padding":
        for i in range(end, len(raw)):
            if raw[i]:
                return InvalidSymbolError(f"{field.name}: {after_nul(raw[i])}", rule.offset + i)
        return None
    assert check == "non_empty", check
    return InvalidSymbolError(f"{field.name}: empty", rule.offset) if end == 0 else None


_HEADER_RULES = tuple(r for r in RULES if r.message_type is None)
_RULES_BY_TYPE = {
    int(t): tuple(r for r in RULES if r.message_type in (None, t)) for t in MessageType
}


def first_violation(
    data: bytes, rules: tuple[Rule, ...] | None = None
) -> tuple[Rule, ProtocolError] | None:
    """The first rule ``data`` breaks, in order, with its error; ``None`` for a valid packet.

    ``rules``: another rule list (the mutation test's); by default :data:`RULES`.
    """
    if rules is None:  # only the header rules and the packet type's apply
        rules = _RULES_BY_TYPE.get(data[5], _HEADER_RULES) if len(data) > 5 else _HEADER_RULES
    for rule in rules:
        error = violation(rule, data)
        if error is not None:
            return rule, error
    return None


_BY_TYPE = {lay.message_type: lay for lay in LAYOUTS}


def build_unchecked(data: bytes) -> Packet:
    """The record of a 144-byte packet of a known type, **checking nothing**.

    Values no rule vouched for pass through raw: an enum value that is not a member stays
    an ``int``, a boolean byte other than 0/1 stays an ``int``, text is cut at its first NUL
    and read as Latin-1. Only for use after :func:`first_violation` (or to see what a
    decoder missing a rule would return).
    """
    layout = _BY_TYPE[MessageType(data[5])]
    raw = layout.reference_struct.unpack_from(data, 0)
    values: list[object] = []
    for field, value in zip(layout.fields, raw, strict=True):
        category = field.kind.category
        if category == "text":
            values.append(value.split(b"\0", 1)[0].decode("latin-1"))
        elif category == "enum":
            values.append(field.kind.members().get(value, value))
        elif category == "bool":
            values.append(value == 1 if value in (0, 1) else value)
        else:
            values.append(value)
    return tuple.__new__(layout.record, values)
