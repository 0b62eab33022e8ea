"""Vectors generated from the rule list, so that every rule and its order is pinned.

For every rule of ``suho_mt5.protocol._rules.RULES`` (section 6 of the spec):

* invalid vectors that break that rule alone: each value just outside every allowed interval
  (so a decoder that drops the rule, or widens a range by one, accepts one of them), a
  0x20/0x7F byte in text, text after the NUL, an empty text;
* invalid vectors with two defects for every pair of rules a decoder runs one after the other
  on a packet type: the expected error is the first rule's, so running them the other way
  round fails the vector;
* valid vectors at both ends of every interval, with text that fills its field or holds one
  character, and with non-zero padding (decode only): a decoder that narrows a range, or
  rejects what it must ignore, fails one of them.

``vector_cases.write()`` puts them into ``tests/vectors/`` next to the hand-written ones.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterable

from suho_mt5.protocol import MessageType, Packet, decode, encode
from suho_mt5.protocol._constants import CRC_OFFSET, HEADER_SIZE
from suho_mt5.protocol._kinds import _STRUCT_BOUNDS
from suho_mt5.protocol._layout import LAYOUTS
from suho_mt5.protocol._rules import RULES, Rule

Patch = Callable[[bytearray], None]


def with_crc(packet: bytes | bytearray) -> bytes:
    body = bytes(packet[:CRC_OFFSET])
    return body + zlib.crc32(body).to_bytes(4, "little")


def rules_of(mtype: MessageType) -> list[Rule]:
    """The rules a decoder runs on a packet of ``mtype``, in order."""
    return [r for r in RULES if r.message_type in (None, mtype)]


def outside_values(rule: Rule) -> list[tuple[str, int]]:
    """(label, value) just outside each end of each allowed interval, where representable."""
    bounds = (0, 255) if rule.kind == "printable" else _STRUCT_BOUNDS[rule.code]
    out = []
    for lo, hi in rule.allowed:
        if lo - 1 >= bounds[0] and not any(a <= lo - 1 <= b for a, b in rule.allowed):
            out.append((f"below_{lo}", lo - 1))
        if hi + 1 <= bounds[1] and not any(a <= hi + 1 <= b for a, b in rule.allowed):
            out.append((f"above_{hi}", hi + 1))
    return out


def _put_int(rule: Rule, value: int) -> Patch:
    signed = _STRUCT_BOUNDS[rule.code][0] < 0

    def patch(buf: bytearray) -> None:
        buf[rule.offset : rule.offset + rule.size] = value.to_bytes(
            rule.size, "little", signed=signed
        )

    return patch


def _put_text(rule: Rule, raw: bytes) -> Patch:
    size = rule.size

    def patch(buf: bytearray) -> None:
        buf[rule.offset : rule.offset + size] = raw.ljust(size, b"\0")

    return patch


def defects(rule: Rule) -> list[tuple[str, Patch]]:
    """Ways to break ``rule`` alone, each as (label, patch of a valid packet of its type)."""
    if rule.kind == "value":
        return [(label, _put_int(rule, v)) for label, v in outside_values(rule)]
    if rule.kind == "printable":
        return [
            (f"byte_0x{v:02X}", _put_text(rule, b"A" + bytes([v]) + b"B"))
            for _, v in outside_values(rule)
        ]
    if rule.kind == "nul_padding":
        return [("text_after_nul", _put_text(rule, b"AB\0C"))]
    if rule.kind == "non_empty":
        return [("empty", _put_text(rule, b""))]
    if rule.kind == "magic":
        return [("lower_case", lambda buf: buf.__setitem__(slice(0, 4), b"suho"))]
    if rule.kind == "crc":
        return [("flipped", lambda buf: buf.__setitem__(CRC_OFFSET, buf[CRC_OFFSET] ^ 0xFF))]
    assert rule.kind == "length"
    return []  # the hand-written vectors cover it; combined below with truncation


def _combined(first: Rule, second: Rule) -> Patch | None:
    """One patch breaking both rules, for two rules of the same text field."""
    if first.field is None or first.field is not second.field:
        return None
    pair = (first.kind, second.kind)
    if pair == ("printable", "nul_padding"):
        return _put_text(first, b"A\x7f\0C")
    if pair == ("nul_padding", "non_empty"):
        return _put_text(first, b"\0C")
    raise AssertionError(pair)  # pragma: no cover


def apply(base: bytes, patches: list[Patch], *, crc_defect: bool = False) -> bytes:
    buf = bytearray(base)
    for patch in patches:
        patch(buf)
    packet = with_crc(buf)
    if crc_defect:
        packet = packet[:CRC_OFFSET] + bytes([packet[CRC_OFFSET] ^ 0xFF]) + packet[CRC_OFFSET + 1 :]
    return packet


def single_defect_cases(bases: dict[MessageType, Packet]) -> list[tuple[str, str, bytes]]:
    """(name, description, packet): every per-type rule broken alone, every way we know."""
    cases = []
    for rule in RULES:
        if rule.message_type is None:
            if rule.kind != "value":
                continue  # length, magic, crc: hand-written vectors
            base = encode(bases[MessageType.BROKER_QUOTE])
        elif rule.message_type in bases:
            base = encode(bases[rule.message_type])
        else:
            continue
        for label, patch in defects(rule):
            cases.append(
                (
                    f"rule.{rule.id}.{label}",
                    f"breaks {rule.id} ({rule.wording}) alone",
                    apply(base, [patch]),
                )
            )
    return cases


def order_cases(bases: dict[MessageType, Packet]) -> list[tuple[str, str, bytes, str]]:
    """(name, description, packet, second rule): two defects, for every pair of rules a
    decoder runs one after the other; the expected error is the first rule's."""
    cases = []
    seen: set[tuple[str, str]] = set()
    for mtype in (MessageType.BROKER_QUOTE, *(t for t in bases if t != MessageType.BROKER_QUOTE)):
        base = encode(bases[mtype])
        seq = rules_of(mtype)
        for first, second in itertools.pairwise(seq):
            if (first.id, second.id) in seen:
                continue
            seen.add((first.id, second.id))
            packet = _two_defects(base, first, second)
            cases.append(
                (
                    f"order.{first.id}.before.{second.id}",
                    f"breaks {first.id} and {second.id}: {first.id} is checked first",
                    packet,
                    second.id,
                )
            )
    return cases


def _two_defects(base: bytes, first: Rule, second: Rule) -> bytes:
    if first.kind == "length":  # a packet one byte short that also breaks the next rule
        ((_, patch),) = defects(second)[:1]
        return apply(base, [patch])[:-1]
    combined = _combined(first, second)
    if combined is not None:
        return apply(base, [combined])
    patches = [p for rule in (first, second) if rule.kind != "crc" for _, p in defects(rule)[:1]]
    return apply(base, patches, crc_defect="crc" in (first.kind, second.kind))


def boundary_records(bases: dict[MessageType, Packet]) -> list[tuple[str, str, Packet]]:
    """Valid records at both ends of every interval of every per-type rule, and with text
    that fills its field, holds one character or (where allowed) none."""
    cases: list[tuple[str, str, Packet]] = []
    seen: set[bytes] = set()

    def add(name: str, description: str, msg: Packet) -> None:
        packet = encode(msg)
        if packet not in seen:
            seen.add(packet)
            cases.append((name, description, msg))

    for rule in RULES:
        if rule.message_type not in bases or rule.field is None:
            continue
        base = bases[rule.message_type]
        field = rule.field
        kind = field.kind
        if rule.kind == "value":
            for lo, hi in rule.allowed:
                for end, value in (("min", lo), ("max", hi)):
                    v: object = value
                    if kind.enum is not None:
                        v = kind.members()[value]
                    elif kind.boolean:
                        v = value == 1
                    add(
                        f"edge.{rule.id}.{end}_{value}",
                        f"{field.name} = {value}: {end} of an allowed interval",
                        base._replace(**{field.name: v}),
                    )
        elif rule.kind == "printable":
            lo, hi = rule.allowed[0]
            chars = (chr(lo) + chr(hi) + "AZ09._-#") * kind.size
            add(
                f"edge.{rule.id}.full",
                f"{field.name} fills its {kind.size} bytes (no NUL), with 0x{lo:02X}, 0x{hi:02X}",
                base._replace(**{field.name: chars[: kind.size]}),
            )
            add(
                f"edge.{rule.id}.one_char",
                f"{field.name} of one character",
                base._replace(**{field.name: chr(hi)}),
            )
            assert kind.text is not None
            if kind.text.min_len == 0:
                add(
                    f"edge.{rule.id}.empty",
                    f"{field.name} empty (allowed here)",
                    base._replace(**{field.name: ""}),
                )
    return cases


def padding_cases(bases: dict[MessageType, Packet]) -> list[tuple[str, str, Packet, bytes]]:
    """Valid packets whose padding is not zero: decoders ignore padding (decode only)."""
    out = []
    for layout in LAYOUTS:
        if layout.message_type not in bases:
            continue
        msg = bases[layout.message_type]
        start = HEADER_SIZE + layout.payload_used
        buf = bytearray(encode(msg))
        buf[start:CRC_OFFSET] = bytes(range(0xFF, 0xFF - (CRC_OFFSET - start), -1))
        out.append(
            (
                f"padding.{layout.message_type.name}",
                f"padding bytes {start}..{CRC_OFFSET - 1} not zero: ignored when read (a later "
                "version's fields); decode only, an encoder writes zeros",
                msg,
                with_crc(buf),
            )
        )
    return out


def type_bases(
    valid: list[tuple[str, str, Packet]], others: Iterable[bytes] = ()
) -> dict[MessageType, Packet]:
    """The first hand-written record of each type: what generated vectors start from.

    ``others``: valid packets from the other vector files (e.g. the session's), so that a
    type whose hand-written vectors live there gets its rule vectors here too.
    """
    bases: dict[MessageType, Packet] = {}
    for _, _, msg in valid:
        bases.setdefault(msg.MESSAGE_TYPE, msg)
    for packet in others:
        msg = decode(packet)
        bases.setdefault(msg.MESSAGE_TYPE, msg)
    # A type with no valid vector anywhere gets no generated ones either: the rule list test
    # and the mutation test then name its rules as unpinned.
    return bases


def _text_rules() -> list[tuple[Rule, Rule]]:
    """(printable rule, nul_padding rule) of every text field."""
    printable = {r.id.removesuffix(".printable"): r for r in RULES if r.kind == "printable"}
    padding = {r.id.removesuffix(".nul_padding"): r for r in RULES if r.kind == "nul_padding"}
    return [(printable[fid], padding[fid]) for fid in printable]


def text_position_cases(bases: dict[MessageType, Packet]) -> list[tuple[str, str, bytes]]:
    """A text field broken at every one of its positions, not only the first bytes: a byte
    that is not printable after ``p`` good ones (0x7F at even ``p``, the byte just below the
    allowed range at odd ``p``), and a stray byte at ``p`` after a NUL at 1, so for ``p`` >= 3
    not right after it."""
    cases = []
    for printable, padding in _text_rules():
        assert printable.message_type is not None and printable.field is not None
        if printable.message_type not in bases:
            continue
        base = encode(bases[printable.message_type])
        size = printable.field.kind.size
        low = printable.allowed[0][0]
        for p in range(size):
            bad = 0x7F if p % 2 == 0 else low - 1
            cases.append((
                f"text.{printable.id}.at_{p}",
                f"byte 0x{bad:02X} at position {p} of the {size}-byte field, after {p} "
                "printable ones",
                apply(base, [_put_text(printable, b"A" * p + bytes([bad]))]),
            ))
        for p in range(2, size):
            where = "right after it" if p == 2 else f"{p - 1} bytes after it"
            cases.append((
                f"text.{padding.id}.at_{p}",
                f"a NUL at position 1, then a stray byte at position {p} ({where})",
                apply(base, [_put_text(padding, b"A" + bytes(p - 1) + b"X")]),
            ))
    return cases


def two_byte_cases(bases: dict[MessageType, Packet]) -> list[tuple[str, str, bytes]]:
    """Two-byte codes whose low byte alone would be valid (or equal to a valid code's low
    byte) but whose high byte is not: a decoder reading one byte accepts them."""
    cases = []
    for rule in RULES:
        if rule.kind != "value" or rule.code != "H" or rule.field is None:
            continue
        assert rule.message_type is not None
        if rule.message_type not in bases or rule.field.kind.enum is None:
            continue
        base = encode(bases[rule.message_type])
        values = sorted(v for lo, hi in rule.allowed for v in range(lo, hi + 1))
        lows = {v & 0xFF for v in values}
        found = []
        for high in (0x01, 0x13, 0xFF):
            for low in sorted(lows):
                value = high << 8 | low
                if value not in values and value not in found:
                    found.append(value)
                    break
        for value in found:
            cases.append((
                f"two_byte.{rule.id}.0x{value:04X}",
                f"{rule.field.name} = 0x{value:04X}: its low byte 0x{value & 0xFF:02X} is "
                f"the low byte of a valid value, its high byte 0x{value >> 8:02X} makes it "
                "invalid",
                apply(base, [_put_int(rule, value)]),
            ))
    return cases


Fields = dict[str, object]


def _fields_of(msg: Packet) -> Fields:
    from .vector_files import fields_json

    return fields_json(msg)


def encode_cases(bases: dict[MessageType, Packet]) -> list[tuple[str, str, int, Fields, str, int]]:
    """Fields an encoder must refuse, each with one defect: (name, description, type code,
    fields, error, offset). Every value fits a 64-bit integer of the field's signedness, so
    that a C or MQL5 record can carry it; text may hold characters that are not ASCII."""
    cases: list[tuple[str, str, int, Fields, str, int]] = []
    for layout in LAYOUTS:
        mtype = layout.message_type
        if mtype not in bases:
            continue
        good = _fields_of(bases[mtype])

        def add(label: str, description: str, field: str, value: object, error: str,
                offset: int, mtype: MessageType = mtype, good: Fields = good) -> None:
            cases.append((f"encode.{mtype.name}.{field}.{label}", description, int(mtype),
                          {**good, field: value}, error, offset))

        for field in layout.fields:
            kind = field.kind
            at = field.offset
            if kind.text is not None:
                low = 0x20 if kind.text.allow_space else 0x21
                add("too_long", f"{kind.size + 1} characters: one more than the field holds",
                    field.name, "A" * (kind.size + 1), "InvalidSymbolError", at + kind.size)
                add("not_ascii", "U+0141 (its low byte 0x41 would be a valid 'A')",
                    field.name, "A\u0141", "InvalidSymbolError", at + 1)
                add("byte_0x7F", "DEL is not printable", field.name, "A\x7f",
                    "InvalidSymbolError", at + 1)
                add(f"byte_0x{low - 1:02X}", f"0x{low - 1:02X} is below the allowed range",
                    field.name, "A" + chr(low - 1), "InvalidSymbolError", at + 1)
                if kind.text.min_len:
                    add("empty", "empty, where text is required", field.name, "",
                        "InvalidSymbolError", at)
                continue
            if kind.is_uuid or (kind.code == "q" and not kind.range_checked):
                continue
            lo, hi = _STRUCT_BOUNDS[kind.code]
            if kind.size < 8:
                if lo < 0:
                    add("does_not_fit_high", f"{hi + 1} does not fit {kind.size} bytes",
                        field.name, hi + 1, "FieldRangeError", at)
                    add("does_not_fit_low", f"{lo - 1} does not fit {kind.size} bytes",
                        field.name, lo - 1, "FieldRangeError", at)
                else:
                    add("does_not_fit", f"{hi + 1} does not fit {kind.size} bytes",
                        field.name, hi + 1, "FieldRangeError", at)
            rule = next((r for r in RULES if r.field is field and r.kind == "value"), None)
            if rule is None:
                continue
            for label, value in outside_values(rule):
                add(label, f"{value}: outside the allowed values", field.name, value,
                    "FieldRangeError", at)
    for code in (0x00, 0x80):
        cases.append((f"encode.type_0x{code:02X}", f"message type 0x{code:02X} is not a version "
                      "1 type", code, {}, "UnknownMessageTypeError", 5))
    return cases
