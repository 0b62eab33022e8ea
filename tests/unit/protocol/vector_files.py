"""Every golden vector file in ``tests/vectors/``, sorted by what it pins.

All ``*.json`` files are read (``valid``, ``invalid``, ``frames``, ``streams`` and any other,
such as the session's), and each vector is classified by its keys, so a new file in the same
format joins every test without a change here:

* ``chunks``: a stream vector; ``records`` (no ``chunks``): a frame vector;
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
    files: list[Path] = field(default_factory=list)


def category(vector: Vector) -> str:
    if "chunks" in vector:
        return "streams"
    if "records" in vector:
        return "frames"
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
) -> tuple[list[Outcome], list[tuple[int, int]], int]:
    """(records, skips as (offset, length), pending) of the spec's stream decoder.

    Adjacent skips of garbage (no magic) are one skip; each bad packet is a skip of its own.

    ``decode`` returns the outcome and, for an error, its reason. ``resync_next_magic=False``
    (skip the whole 144 bytes of a bad packet) and ``keep_partial=False`` (treat the start of
    a magic at the end of a chunk as garbage) and ``merge_packets=True`` (merge adjacent bad
    packets with the same reason into one skip) are planted mistakes.
    """
    buf = b""
    base = 0
    records: list[Outcome] = []
    skips: list[list[Any]] = []

    def skip(offset: int, length: int, reason: str) -> None:
        last = skips[-1] if skips else None
        mergeable = reason == NO_MAGIC or merge_packets
        if last and last[0] + last[1] == offset and last[2] == reason and mergeable:
            skips[-1][1] += length
        else:
            skips.append([offset, length, reason])

    for chunk in chunks:
        buf += chunk
        i = 0
        while i < len(buf):
            if len(buf) - i < PACKET_SIZE:
                tail = buf[i:]
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
