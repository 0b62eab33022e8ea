"""Planted mistakes in the reference decoder, and whether the golden vectors notice them.

The reference decoder is the spec's rule list run in order (``_rules.RULES``) and a record
built with no further check. A mutant changes that list, or adds a check the spec does not
make, or changes how frames and streams are cut, the way a hand-written decoder (an MQL5 EA,
a C DLL) typically goes wrong; or plants a mistake in the reference encoder model
(``vector_files.encode_model``), checked against the valid and the encode vectors. The
mutants are generated from the rule list, so a rule added to the codec brings its own
mutants, and the mutation test fails until vectors pin it.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from suho_mt5.protocol import MessageType
from suho_mt5.protocol._constants import CRC_OFFSET, HEADER_SIZE, PACKET_SIZE
from suho_mt5.protocol._layout import LAYOUT_BY_TYPE
from suho_mt5.protocol._rules import RULES, Rule, build_unchecked, first_violation, intervals

from .rule_vectors import outside_values, rules_of
from .vector_files import (
    Outcome,
    Vector,
    Vectors,
    encode_model,
    expected_packet,
    fields_json,
    frame_model,
    record_outcome,
    stream_model,
)

Transform = Callable[[int | None, list[Rule]], list[Rule]]
Extra = Callable[[bytes], Outcome | None]
Decoder = Callable[[bytes], tuple[Outcome, str]]


def _same(_: int | None, seq: list[Rule]) -> list[Rule]:
    return seq


def rule_decoder(transform: Transform = _same, extra: Extra | None = None) -> Decoder:
    """The reference decoder with its rule sequence transformed and an extra check added."""

    def decode(data: bytes) -> tuple[Outcome, str]:
        mtype = data[5] if len(data) > 5 else None
        seq = [r for r in RULES if r.message_type is None or r.message_type == mtype]
        found = first_violation(data, tuple(transform(mtype, seq)))
        if found is not None:
            error = found[1]
            return ("error", type(error).__name__, error.offset), error.reason
        if extra is not None:
            rejected = extra(data)
            if rejected is not None:
                return rejected, "planted"
        try:
            msg = build_unchecked(data)
        except Exception:  # a mutant without the length or type rule
            return ("crash",), "crash"
        return ("ok", msg.MESSAGE_TYPE.name, fields_json(msg)), ""

    return decode


@dataclass(frozen=True)
class Mutant:
    name: str
    decode: Decoder = field(default_factory=rule_decoder)
    frame: dict[str, bool] = field(default_factory=dict)
    stream: dict[str, bool] = field(default_factory=dict)
    encode: dict[str, bool] = field(default_factory=dict)


def _drop(rule: Rule) -> Transform:
    return lambda _, seq: [r for r in seq if r is not rule]


def _swap(mtype: int | None, first: Rule, second: Rule) -> Transform:
    def transform(t: int | None, seq: list[Rule]) -> list[Rule]:
        if (mtype is not None and t != mtype) or first not in seq or second not in seq:
            return seq
        i, j = seq.index(first), seq.index(second)
        out = list(seq)
        out[i], out[j] = second, first
        return out

    return transform


def _replace(rule: Rule, new: Rule) -> Transform:
    return lambda _, seq: [new if r is rule else r for r in seq]


def _text_extra(rule: Rule, reject: Callable[[bytes], bool]) -> Extra:
    assert rule.field is not None and rule.message_type is not None
    start, size, mtype = rule.offset, rule.field.kind.size, rule.message_type

    def extra(data: bytes) -> Outcome | None:
        if data[5] == mtype and reject(data[start : start + size]):
            return ("error", "InvalidSymbolError", start)
        return None

    return extra


def _padding_extra(mtype: MessageType) -> Extra:
    start = HEADER_SIZE + LAYOUT_BY_TYPE[mtype].payload_used

    def extra(data: bytes) -> Outcome | None:
        if data[5] == mtype and any(data[start:CRC_OFFSET]):
            return ("error", "FieldRangeError", start)
        return None

    return extra


def _text_prefix(fid: str, size: int) -> Transform:
    """Check the text rules of ``fid`` on its first ``size`` bytes only (a loop written for a
    shorter field)."""

    def shorter(rule: Rule) -> Rule:
        assert rule.field is not None
        kind = replace(rule.field.kind, size=size)
        return replace(rule, field=replace(rule.field, spec=replace(rule.field.spec, kind=kind)))

    def transform(_: int | None, seq: list[Rule]) -> list[Rule]:
        return [shorter(r) if r.id in (f"{fid}.printable", f"{fid}.nul_padding") else r
                for r in seq]

    return transform


def _low_byte_only(rule: Rule) -> Transform:
    """Read a two-byte code as its low byte, and compare it with the low bytes of the
    allowed values."""
    lows = intervals(sorted({v & 0xFF for lo, hi in rule.allowed for v in range(lo, hi + 1)}))
    one = replace(rule, field=None, code="B", allowed=lows)
    return _replace(rule, one)


def _right_after_nul_only() -> Decoder:
    """Check only the byte right after a text field's first NUL: the decoder sees the
    packet with every byte after that one zeroed (and the CRC made to match, when it did)."""
    base = rule_decoder()

    def decode(data: bytes) -> tuple[Outcome, str]:
        if len(data) == PACKET_SIZE and data[5] in _LAYOUTS and zlib.crc32(data) == 0x2144DF1C:
            buf = bytearray(data)
            for f in _LAYOUTS[data[5]].fields:
                if f.kind.text is not None:
                    raw = buf[f.offset : f.offset + f.kind.size]
                    end = raw.find(0)
                    if 0 <= end < len(raw) - 2:
                        stop = f.offset + f.kind.size
                        buf[f.offset + end + 2 : stop] = bytes(len(raw) - end - 2)
            body = bytes(buf[:CRC_OFFSET])
            data = body + zlib.crc32(body).to_bytes(4, "little")
        return base(data)

    return decode


_LAYOUTS = {int(t): lay for t, lay in LAYOUT_BY_TYPE.items()}


def _crc_last(_: int | None, seq: list[Rule]) -> list[Rule]:
    return [r for r in seq if r.kind != "crc"] + [r for r in seq if r.kind == "crc"]


def _fields_reversed(_: int | None, seq: list[Rule]) -> list[Rule]:
    header = [r for r in seq if r.message_type is None]
    return header + [r for r in seq if r.message_type is not None][::-1]


def mutants() -> list[Mutant]:
    out = [Mutant(f"drop {r.id}", rule_decoder(_drop(r))) for r in RULES]
    seen: set[tuple[str, str]] = set()
    for mtype in MessageType:
        seq = rules_of(mtype)
        for first, second in itertools.pairwise(seq):
            if (first.id, second.id) in seen:
                continue
            seen.add((first.id, second.id))
            scope = None if second.message_type is None else int(mtype)
            out.append(
                Mutant(
                    f"swap {first.id} and {second.id}", rule_decoder(_swap(scope, first, second))
                )
            )
    for rule in RULES:
        if rule.kind not in ("value", "printable"):
            continue
        outside = {v for _, v in outside_values(rule)}
        for index, (lo, hi) in enumerate(rule.allowed):
            for low in (True, False):
                edge = lo if low else hi
                name = f"{'low' if low else 'high'} end {edge} of {rule.id}"
                if (lo - 1 if low else hi + 1) in outside:
                    wide = rule.widened(index, low)
                    out.append(Mutant(f"widen {name}", rule_decoder(_replace(rule, wide))))
                narrow = rule.narrowed(index, low)
                out.append(Mutant(f"narrow {name}", rule_decoder(_replace(rule, narrow))))
    for rule in RULES:
        if rule.kind != "printable":
            continue
        fid = rule.id.removesuffix(".printable")
        out.append(
            Mutant(
                f"{fid}: require a NUL (reject text that fills the field)",
                rule_decoder(extra=_text_extra(rule, lambda raw: 0 not in raw)),
            )
        )
        out.append(
            Mutant(
                f"{fid}: require two characters",
                rule_decoder(extra=_text_extra(rule, lambda raw: raw[1:2] in (b"", b"\0"))),
            )
        )
        if not any(r.id == f"{fid}.non_empty" for r in RULES):
            out.append(
                Mutant(
                    f"{fid}: reject empty text (it is optional)",
                    rule_decoder(extra=_text_extra(rule, lambda raw: raw[0] == 0)),
                )
            )
    for mtype in MessageType:
        out.append(
            Mutant(
                f"reject non-zero padding of {mtype.name}",
                rule_decoder(extra=_padding_extra(mtype)),
            )
        )
    # The vector classes for what outside implementations still got wrong: text checked at
    # every position (text.json), a stray byte not right after the NUL, two-byte codes.
    for rule in RULES:
        if rule.kind == "printable":
            assert rule.field is not None
            fid, size = rule.id.removesuffix(".printable"), rule.field.kind.size
            out.append(Mutant(f"{fid}: text rules on its first {size // 2} of {size} bytes "
                              "only", rule_decoder(_text_prefix(fid, size // 2))))
        if rule.kind == "value" and rule.code == "H":
            out.append(Mutant(f"{rule.id}: a two-byte code read as its low byte only",
                              rule_decoder(_low_byte_only(rule))))
    out.append(Mutant("text: only the byte right after the first NUL must be NUL",
                      _right_after_nul_only()))
    out += [
        Mutant("check the CRC after the fields", rule_decoder(_crc_last)),
        Mutant("check the fields from the last to the first", rule_decoder(_fields_reversed)),
        Mutant("frame: skip a bad packet instead of rejecting the frame", frame={"skip_bad": True}),
        Mutant(
            "frame: decode whole packets before checking the length", frame={"length_first": False}
        ),
        Mutant(
            "stream: after a bad packet, skip its 144 bytes instead of resynchronising",
            stream={"resync_next_magic": False},
        ),
        Mutant(
            "stream: report two bad packets in a row with the same reason as one skip",
            stream={"merge_packets": True},
        ),
        Mutant(
            "stream: treat a partial magic at the end of the bytes as garbage",
            stream={"keep_partial": False},
        ),
        Mutant(
            "stream: add garbage of a later feed to the skip of the bad packet before it",
            stream={"merge_garbage_into_packet": True},
        ),
        Mutant(
            "stream: skip a packet start held back at the end as soon as its version is wrong",
            stream={"reject_bad_partial": True},
        ),
        Mutant("encode: cut a text that is too long", encode={"truncate_long_text": True}),
        Mutant("encode: report a text that is too long at the field's offset",
               encode={"long_text_at_field": True}),
        Mutant("encode: write a character above 0xFF as its low byte",
               encode={"wide_chars_as_bytes": True}),
        Mutant("encode: wrap a value to the field's width", encode={"wrap_to_width": True}),
        Mutant("encode: do not check the packet with the decoder's rules",
               encode={"validate": False}),
    ]
    return out


def failures(mutant: Mutant, vectors: Vectors) -> list[str]:
    """The names of the vectors ``mutant`` fails (stops at the first, unless none)."""

    def packet_only(data: bytes) -> Outcome:
        return mutant.decode(data)[0]

    for vector in (*vectors.invalid, *vectors.valid):
        if packet_only(bytes.fromhex(vector["hex"])) != expected_packet(vector):
            return [vector["name"]]
    for vector in vectors.frames:
        if frame_model(bytes.fromhex(vector["hex"]), packet_only, **mutant.frame) != _frame(vector):
            return [vector["name"]]
    for vector in vectors.streams:
        chunks = [bytes.fromhex(c) for c in vector["chunks"]]
        got = stream_model(chunks, vector["close"], mutant.decode, **mutant.stream)
        if got != _stream(vector):
            return [vector["name"]]
    for vector in vectors.valid:
        if vector.get("decode_only"):
            continue
        outcome = encode_model(vector["type_code"], vector["fields"], **mutant.encode)
        if outcome != ("ok", vector["hex"]):
            return [vector["name"]]
    for vector in vectors.encode:
        outcome = encode_model(vector["type_code"], vector["fields"], **mutant.encode)
        if outcome != ("error", vector["error"], vector["offset"]):
            return [vector["name"]]
    return []


def _frame(vector: Vector) -> tuple[list[Outcome], Outcome | None]:
    error = ("error", vector["error"], vector["offset"]) if "error" in vector else None
    return [record_outcome(r) for r in vector["records"]], error


def _stream(vector: Vector) -> tuple[list[Outcome], list[tuple[int, int]], int]:
    skips: list[tuple[int, int]] = [(s["offset"], s["length"]) for s in vector["skips"]]
    return [record_outcome(r) for r in vector["records"]], skips, vector["pending"]


def describe(items: list[Any]) -> str:
    return "\n".join(f"  {x}" for x in items)


assert PACKET_SIZE == 144
