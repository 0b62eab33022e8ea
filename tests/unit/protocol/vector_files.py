"""Every golden vector file in ``tests/vectors/``, sorted by what it pins.

All ``*.json`` files are read (``valid``, ``invalid``, ``frames``, ``streams`` and any other,
such as the session's), and each vector is classified by its keys, so a new file in the same
format joins every test without a change here:

* ``chunks``: a stream vector; ``records`` (no ``chunks``): a frame vector;
* ``fields`` and ``error``: fields an encoder must refuse;
* ``fields``: a valid packet (both ways, or decode only if ``decode_only``);
* ``error``: an invalid packet.

The reference models of frames and streams below follow the spec's words with any packet
decoder plugged in: the mutation test runs them over mutated decoders.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

from suho_mt5.protocol import MAGIC, PACKET_SIZE

VECTORS_DIR = Path(__file__).resolve().parents[2] / "vectors"

Vector = dict[str, Any]


@dataclass
class Vectors:
    valid: list[Vector] = field(default_factory=list)
    invalid: list[Vector] = field(default_factory=list)
    frames: list[Vector] = field(default_factory=list)
    streams: list[Vector] = field(default_factory=list)
    encode: list[Vector] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def category(vector: Vector) -> str:
    if "chunks" in vector:
        return "streams"
    if "records" in vector:
        return "frames"
    if "fields" in vector and "error" in vector:
        return "encode"
    if "fields" in vector:
        return "valid"
    if "error" in vector:
        return "invalid"
    raise ValueError(f"vector {vector.get('name')!r}: not a packet, frame or stream vector")


def load(directory: Path = VECTORS_DIR) -> Vectors:
    out = Vectors()
    for path in sorted(directory.glob("*.json")):
        out.files.append(path)
        for vector in json.loads(path.read_text("utf-8"))["vectors"]:
            vector = {**vector, "file": path.name}
            getattr(out, category(vector)).append(vector)
    return out


VECTORS = load()


def fields_json(msg: tuple[Any, ...]) -> dict[str, object]:
    """A record's fields as the vector files give them: ids as UUID strings, enums by name."""
    out: dict[str, object] = {}
    for name, value in zip(msg._fields, msg, strict=True):  # type: ignore[attr-defined]
        if isinstance(value, bytes):
            out[name] = str(uuid.UUID(bytes=value))
        elif isinstance(value, IntEnum):
            out[name] = value.name
        else:
            out[name] = value
    return out


# --- outcomes, for the reference models and the mutation test ---------------------------------

Outcome = tuple[Any, ...]
"""``("ok", message_type, fields)`` or ``("error", error class name, offset)``."""
PacketDecoder = Callable[[bytes], Outcome]


def expected_packet(vector: Vector) -> Outcome:
    if "fields" in vector:
        return ("ok", vector["message_type"], vector["fields"])
    return ("error", vector["error"], vector["offset"])


def record_outcome(record: Vector) -> Outcome:
    return ("ok", record["message_type"], record["fields"])


def frame_model(
    data: bytes, decode: PacketDecoder, *, skip_bad: bool = False, length_first: bool = True
) -> tuple[list[Outcome], Outcome | None]:
    """(records before the first error, the error) of a strict frame decoder.

    ``skip_bad`` and ``length_first=False`` are planted mistakes (the mutation test).
    """
    rest = len(data) % PACKET_SIZE
    if rest and length_first:
        return [], ("error", "TruncatedPacketError", len(data) - rest)
    records: list[Outcome] = []
    for off in range(0, len(data) - rest, PACKET_SIZE):
        outcome = decode(data[off : off + PACKET_SIZE])
        if outcome[0] != "ok":
            if skip_bad:
                continue
            return records, ("error", outcome[1], off + outcome[2])
        records.append(outcome)
    if rest:
        return records, ("error", "TruncatedPacketError", len(data) - rest)
    return records, None


NO_MAGIC = "no packet start (magic) in these bytes"
TRUNCATED_AT_CLOSE = "truncated packet at end of stream"


def _next_candidate(buf: bytes, start: int, *, keep_partial: bool) -> int:
    found = buf.find(MAGIC, start)
    if found >= 0:
        return found
    if keep_partial:
        for pos in range(max(start, len(buf) - len(MAGIC) + 1), len(buf)):
            if MAGIC.startswith(buf[pos:]):
                return pos
    return len(buf)


def stream_model(
    chunks: list[bytes],
    close: bool,
    decode: Callable[[bytes], tuple[Outcome, str]],
    *,
    resync_next_magic: bool = True,
    keep_partial: bool = True,
    merge_packets: bool = False,
    merge_garbage_into_packet: bool = False,
    reject_bad_partial: bool = False,
) -> tuple[list[Outcome], list[tuple[int, int]], int]:
    """(records, skips as (offset, length), pending) of the spec's stream decoder.

    Adjacent skips of garbage (no magic) are one skip; each bad packet is a skip of its own.

    ``decode`` returns the outcome and, for an error, its reason. ``resync_next_magic=False``
    (skip the whole 144 bytes of a bad packet), ``keep_partial=False`` (treat the start of
    a magic at the end of a chunk as garbage), ``merge_packets=True`` (merge adjacent bad
    packets with the same reason into one skip), ``merge_garbage_into_packet=True`` (add a
    run of garbage to the bad packet's skip before it, when they came in different feeds)
    and ``reject_bad_partial=True`` (skip a held-back packet start as soon as its version
    byte is wrong, before 144 bytes are there) are planted mistakes.
    """
    buf = b""
    base = 0
    records: list[Outcome] = []
    skips: list[list[Any]] = []

    def skip(offset: int, length: int, reason: str) -> None:
        last = skips[-1] if skips else None
        mergeable = reason == NO_MAGIC or merge_packets
        same = last is not None and (last[2] == reason or (merge_garbage_into_packet
                                                            and reason == NO_MAGIC))
        if last and last[0] + last[1] == offset and same and mergeable:
            skips[-1][1] += length
        else:
            skips.append([offset, length, reason])

    for chunk in chunks:
        buf += chunk
        i = 0
        while i < len(buf):
            if len(buf) - i < PACKET_SIZE:
                tail = buf[i:]
                bad_start = reject_bad_partial and len(tail) > 4 and tail[4] != 1
                if bad_start and buf.startswith(MAGIC, i):
                    nxt = _next_candidate(buf, i + 1, keep_partial=keep_partial)
                    skip(base + i, nxt - i, "unsupported version")
                    i = nxt
                    continue
                if buf.startswith(MAGIC, i) or (keep_partial and MAGIC.startswith(tail)):
                    break
                nxt = _next_candidate(buf, i + 1, keep_partial=keep_partial)
                skip(base + i, nxt - i, NO_MAGIC)
                i = nxt
                continue
            if buf.startswith(MAGIC, i):
                outcome, reason = decode(buf[i : i + PACKET_SIZE])
                if outcome[0] == "ok":
                    records.append(outcome)
                    i += PACKET_SIZE
                    continue
            else:
                reason = NO_MAGIC
            if resync_next_magic or reason == NO_MAGIC:
                nxt = _next_candidate(buf, i + 1, keep_partial=keep_partial)
            else:
                nxt = i + PACKET_SIZE
            skip(base + i, nxt - i, reason)
            i = nxt
        base += i
        buf = buf[i:]
    if close and buf:
        skip(base, len(buf), TRUNCATED_AT_CLOSE)
        base += len(buf)
        buf = b""
    return records, [(o, n) for o, n, _ in skips], len(buf)


def encode_model(
    type_code: int,
    fields: dict[str, Any],
    *,
    truncate_long_text: bool = False,
    long_text_at_field: bool = False,
    wide_chars_as_bytes: bool = False,
    wrap_to_width: bool = False,
    validate: bool = True,
) -> Outcome:
    """``("ok", hex)`` or ``("error", error class name, offset)`` of the spec's encoder.

    A message type that is not a type: UnknownMessageTypeError at 5; then field by field:
    a text longer than its field, InvalidSymbolError at the field's offset + size; a
    character above 0x7E, InvalidSymbolError at its position; a value that does not fit the
    field's bytes, FieldRangeError at the field's offset; then the packet is checked with the
    decoder's rules. The keyword flags are planted mistakes: cut a text that is too long,
    report it at the field's offset, cast a wide character to its low byte, wrap a value to
    the field's width, and not validate.
    """
    import zlib

    from suho_mt5.protocol import MessageType
    from suho_mt5.protocol._kinds import _STRUCT_BOUNDS
    from suho_mt5.protocol._layout import LAYOUT_BY_TYPE
    from suho_mt5.protocol._rules import first_violation

    try:
        layout = LAYOUT_BY_TYPE[MessageType(type_code)]
    except ValueError:
        return ("error", "UnknownMessageTypeError", 5)
    buf = bytearray(PACKET_SIZE)
    buf[:6] = MAGIC + bytes((1, type_code))
    for f in layout.fields:
        value = fields[f.name]
        kind, at = f.kind, f.offset
        if kind.is_uuid:
            buf[at : at + 16] = uuid.UUID(value).bytes
            continue
        if kind.text is not None:
            if len(value) > kind.size:
                if not truncate_long_text:
                    return ("error", "InvalidSymbolError", at + (0 if long_text_at_field
                                                               else kind.size))
                value = value[: kind.size]
            for i, char in enumerate(value):
                if ord(char) > 0x7E and not wide_chars_as_bytes:
                    return ("error", "InvalidSymbolError", at + i)
                buf[at + i] = ord(char) & 0xFF
            continue
        if isinstance(value, str):
            assert kind.enum is not None
            value = int(kind.enum[value])
        value = int(value)
        lo, hi = _STRUCT_BOUNDS[kind.code]
        if not lo <= value <= hi:
            if not wrap_to_width:
                return ("error", "FieldRangeError", at)
            value &= (1 << 8 * kind.size) - 1
            if lo < 0 and value > hi:
                value -= 1 << 8 * kind.size
        buf[at : at + kind.size] = value.to_bytes(kind.size, "little", signed=lo < 0)
    buf[140:] = zlib.crc32(bytes(buf[:140])).to_bytes(4, "little")
    if validate:
        found = first_violation(bytes(buf))
        if found is not None:
            return ("error", type(found[1]).__name__, found[1].offset)
    return ("ok", bytes(buf).hex())
