"""Render the layout tables of ``docs/protocol.md`` from the declarations.

The spec's tables are generated, so they cannot drift from the code: a unit test checks
that ``docs/protocol.md`` holds exactly this output between its ``BEGIN/END GENERATED``
markers. Regenerate with ``python -m suho_mt5.protocol._spec``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ._constants import CRC_OFFSET, HEADER_SIZE, MAX_TIMESTAMP_US, PACKET_SIZE
from ._kinds import Kind
from ._layout import LAYOUTS, PREFIX_SIZE, FieldLayout, Layout
from ._rules import RULES, Rule

BEGIN = "<!-- BEGIN GENERATED LAYOUTS (python -m suho_mt5.protocol._spec) -->"
END = "<!-- END GENERATED LAYOUTS -->"
RULES_BEGIN = "<!-- BEGIN GENERATED RULES (python -m suho_mt5.protocol._spec) -->"
RULES_END = "<!-- END GENERATED RULES -->"


def _number(value: int) -> str:
    if value == MAX_TIMESTAMP_US:
        return "9999-12-31T23:59:59.999999Z"
    for bits in (8, 16, 31, 32, 63, 64):
        if value == 2**bits - 1:
            return f"2^{bits}-1"
        if value == -(2**bits):
            return f"-2^{bits}"
    if value == 10**12 - 1:
        return "10^12-1"
    if value == -(10**12 - 1):
        return "-(10^12-1)"
    return str(value)


def _range(kind: Kind) -> str:
    category = kind.category
    if category == "text":
        assert kind.text is not None
        chars = "0x20..0x7E" if kind.text.allow_space else "0x21..0x7E"
        length = f"{kind.text.min_len}..{kind.size}"
        return f"{chars}, NUL-padded, {length} chars"
    if category == "bytes":
        return "any 16 bytes"
    if category == "enum":
        assert kind.enum is not None
        return ", ".join(f"{int(m)} {m.name}" for m in kind.enum)
    if category == "bool":
        return "0 false, 1 true"
    if not kind.range_checked:
        return "any"
    return f"{_number(kind.lo)} .. {_number(kind.hi)}"


def _row(field: FieldLayout) -> str:
    kind = field.kind
    return (
        f"| {field.offset} | {kind.size} | `{field.name}` | {kind.wire} | {kind.unit} | "
        f"{_range(kind)} | {field.spec.doc} |"
    )


_HEAD = (
    "| offset | size | field | type | unit / scale | range | meaning |\n"
    "|---:|---:|---|---|---|---|---|"
)


def header_table() -> str:
    first = LAYOUTS[0]
    lines = [
        _HEAD,
        "| 0 | 4 | magic | byte[4] |  | `SUHO` (53 55 48 4F) | resynchronisation mark |",
        "| 4 | 1 | version | uint8 |  | 1 | protocol version |",
        "| 5 | 1 | message type | uint8 |  | see the message tables | |",
        "| 6 | 2 | flags | uint16 |  | 0 (no flag is defined in version 1) | "
        "must-understand feature bits |",
    ]
    lines += [_row(f) for f in first.fields[:3]]
    lines.append(
        f"| {HEADER_SIZE} | {CRC_OFFSET - HEADER_SIZE} | payload | byte[100] |  | "
        "per message type, zero-padded | |"
    )
    lines.append(
        f"| {CRC_OFFSET} | 4 | crc32 | uint32 |  | CRC-32 of bytes 0..{CRC_OFFSET - 1} | "
        "integrity trailer |"
    )
    assert first.fields[0].offset == PREFIX_SIZE and PACKET_SIZE == CRC_OFFSET + 4
    return "\n".join(lines)


def message_table(layout: Layout) -> str:
    lines = [_HEAD]
    lines += [_row(f) for f in layout.fields[3:]]
    used_end = HEADER_SIZE + layout.payload_used
    lines.append(
        f"| {used_end} | {CRC_OFFSET - used_end} | padding | byte[] |  | "
        "written as 0, ignored when read | room for later fields |"
    )
    return "\n".join(lines)


def render() -> str:
    """The generated part of ``docs/protocol.md``."""
    parts = [BEGIN, "", "### Header (every packet)", "", header_table(), ""]
    for layout in LAYOUTS:
        mtype = layout.message_type
        parts += [
            f"### {mtype.name} (type 0x{int(mtype):02X}, {layout.record.__name__})",
            "",
            f"Payload bytes used: {layout.payload_used} of 100.",
            "",
            message_table(layout),
            "",
        ]
    parts.append(END)
    return "\n".join(parts)


def _allowed(rule: Rule) -> str:
    if rule.field is not None and rule.kind == "value":
        kind = rule.field.kind
        if kind.enum is not None:
            runs = ", ".join(str(lo) if lo == hi else f"{lo}..{hi}" for lo, hi in rule.allowed)
            return f"a `{kind.enum.__name__}` value: {runs}"
        return _range(kind)
    if rule.kind == "printable":
        return ", ".join(f"0x{lo:02X}..0x{hi:02X}" for lo, hi in rule.allowed)
    return ", ".join(
        f"0x{lo:02X}" if lo == hi else f"0x{lo:02X}..0x{hi:02X}" for lo, hi in rule.allowed
    )


def _rule_row(number: int, rule: Rule) -> str:
    packets = rule.message_type.name if rule.message_type is not None else "every packet"
    check = rule.wording
    if rule.kind == "value":
        where = rule.field.name if rule.field is not None else rule.id
        check = f"`{where}` (offset {rule.offset}) is {_allowed(rule)}"
    elif rule.field is not None:
        check = f"`{rule.field.name}` (offset {rule.offset}): {rule.wording}"
    if rule.kind in ("printable", "nul_padding"):
        offset = "the offending byte"
    elif rule.id == "length":
        offset = "0 (too short) / 144 (too long)"
    else:
        offset = str(rule.offset)
    error = f"`{rule.error.__name__}`"
    if rule.id == "length":
        error += " / `TrailingDataError`"
    return f"| {number} | `{rule.id}` | {packets} | {check} | {error} | {offset} |"


def rules_table() -> str:
    """Every rule of :data:`RULES`, numbered in the order a decoder runs them."""
    lines = [
        RULES_BEGIN,
        "",
        "| # | rule | packets | check | error | offset |",
        "|---:|---|---|---|---|---|",
    ]
    lines += [_rule_row(n, rule) for n, rule in enumerate(RULES, 1)]
    lines += ["", RULES_END]
    return "\n".join(lines)


def _replace(text: str, begin: str, end: str, content: str) -> str:
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    return pattern.sub(lambda _: content, text)


def update(path: Path) -> bool:
    """Rewrite the generated sections of ``path``; return whether it changed."""
    text = path.read_text(encoding="utf-8")
    new = _replace(text, BEGIN, END, render())
    new = _replace(new, RULES_BEGIN, RULES_END, rules_table())
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":  # pragma: no cover
    import sys

    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/protocol.md")
    print(f"{target}: {'updated' if update(target) else 'up to date'}")
