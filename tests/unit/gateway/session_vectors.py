"""The cases behind ``tests/vectors/session.json``: the session packets (HELLO, WELCOME,
GOODBYE) and the ERROR codes the session adds, valid and invalid.

``python -m tests.unit.gateway.session_vectors`` (re)writes the file with the current
encoder. Entries with ``hex`` and ``fields`` are valid packets (encode the fields, compare with
``hex``; decode ``hex``, compare with the fields); entries with ``error`` are inputs a decoder
must reject with that error at ``offset``, in the format of ``valid.json`` and
``invalid.json``.
"""

from __future__ import annotations

import json
import uuid
import zlib
from enum import IntEnum
from pathlib import Path

from suho_mt5.errors import ProtocolError
from suho_mt5.protocol import (
    MAX_TIMESTAMP_US,
    CloseCode,
    ErrorCode,
    ErrorPacket,
    GoodbyePacket,
    HelloPacket,
    Packet,
    SessionResult,
    WelcomePacket,
    decode,
    encode,
)

SESSION_FILE = Path(__file__).resolve().parents[2] / "vectors" / "session.json"

ACC = uuid.UUID("6f1c2a7e-9b1d-4c2e-8a53-2f7b9d0e4c11").bytes
T0 = 1_732_492_800_123_456  # 2024-11-25T00:00:00.123456Z
U64_MAX = 2**64 - 1
KEY = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"  # 64 hex digits

VALID: list[tuple[str, str, Packet]] = [
    ("hello_first_connection", "an EA's first HELLO: nothing handled yet, 64-hex-digit key",
     HelloPacket(0, T0, ACC, 0, 0, 0, KEY)),
    ("hello_resuming", "a HELLO after a reconnect: the last sequence handled per channel",
     HelloPacket(0, T0, ACC, 4_812, 77, 12, KEY)),
    ("hello_extremes", "one-character key of punctuation, maximal sequences",
     HelloPacket(U64_MAX, MAX_TIMESTAMP_US, b"\xff" * 16, U64_MAX, U64_MAX, U64_MAX, "~")),
    ("welcome_accepted", "accepted: resend after sequence 1041; heartbeat every 30 s",
     WelcomePacket(0, T0, ACC, 1_041, 30_000, 0, SessionResult.ACCEPTED)),
    ("welcome_accepted_new_account", "accepted, nothing stored yet for this account",
     WelcomePacket(0, T0, ACC, 0, 30_000, 0, SessionResult.ACCEPTED)),
    ("welcome_refused", "wrong key or unknown account: the same answer",
     WelcomePacket(0, T0, ACC, 0, 0, 1_000, SessionResult.REFUSED)),
    ("welcome_rate_limited", "too many failed logins from this address: wait 42 s",
     WelcomePacket(0, T0, ACC, 0, 0, 42_000, SessionResult.RATE_LIMITED)),
    ("welcome_unavailable", "the backend cannot check keys now",
     WelcomePacket(0, T0, ACC, 0, 0, 5_000, SessionResult.UNAVAILABLE)),
    ("goodbye_slow_consumer", "closed: the EA did not ACK in time",
     GoodbyePacket(0, T0, ACC, 0, CloseCode.SLOW_CONSUMER, "no ACK for 30 s")),
    ("goodbye_superseded", "closed: the account connected again elsewhere",
     GoodbyePacket(0, T0, ACC, 0, CloseCode.SUPERSEDED,
                   "another connection opened for the account")),
    ("goodbye_protocol_violation", "closed after too many bad packets, empty detail",
     GoodbyePacket(0, T0, ACC, 1_777, CloseCode.PROTOCOL_VIOLATION, "")),
    ("error_wrong_direction", "the EA sent a SIGNAL, which travels backend -> EA only",
     ErrorPacket(0, T0, ACC, 58, ErrorCode.WRONG_DIRECTION,
                 "SIGNAL travels backend -> EA only")),
    ("error_sequence_replayed", "a sequence at or below one already accepted",
     ErrorPacket(0, T0, ACC, 57, ErrorCode.SEQUENCE_REPLAYED,
                 "sequence 57 <= 60 already accepted")),
]


def fields_json(msg: Packet) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, value in zip(msg._fields, msg, strict=True):
        if isinstance(value, bytes):
            out[name] = str(uuid.UUID(bytes=value))
        elif isinstance(value, IntEnum):
            out[name] = value.name
        else:
            out[name] = value
    return out


def _patch(packet: bytes, offset: int, data: bytes) -> bytes:
    out = packet[:offset] + data + packet[offset + len(data):]
    return out[:140] + zlib.crc32(out[:140]).to_bytes(4, "little")


def invalid_cases() -> list[tuple[str, str, bytes]]:
    hello = encode(VALID[0][2])
    welcome = encode(VALID[3][2])
    goodbye = encode(VALID[8][2])
    error = encode(VALID[11][2])
    return [
        ("hello_key_empty", "an all-NUL API key", _patch(hello, 64, bytes(64))),
        ("hello_key_space", "a space inside the API key", _patch(hello, 70, b" ")),
        ("hello_key_after_nul", "a byte after the key's terminating NUL",
         _patch(hello, 64, b"abc\0d")),
        ("welcome_result_0", "result 0 is not defined", _patch(welcome, 56, b"\x00")),
        ("welcome_result_5", "result 5 is not defined", _patch(welcome, 56, b"\x05")),
        ("welcome_heartbeat_too_big", "a heartbeat interval above 2^31-1 ms",
         _patch(welcome, 48, (2**31).to_bytes(4, "little"))),
        ("goodbye_code_4000", "close code 4000 is not defined",
         _patch(goodbye, 48, (4000).to_bytes(2, "little"))),
        ("goodbye_detail_control", "a control byte in the detail", _patch(goodbye, 52, b"\n")),
        ("error_code_14", "error code 14 is not defined",
         _patch(error, 48, (14).to_bytes(2, "little"))),
    ]


def write() -> None:
    vectors: list[dict[str, object]] = []
    for name, description, msg in VALID:
        vectors.append({
            "name": name,
            "description": description,
            "message_type": msg.MESSAGE_TYPE.name,
            "type_code": int(msg.MESSAGE_TYPE),
            "fields": fields_json(msg),
            "hex": encode(msg).hex(),
        })
    for name, description, data in invalid_cases():
        try:
            decode(data)
        except ProtocolError as exc:
            vectors.append({"name": name, "description": description, "hex": data.hex(),
                            "error": type(exc).__name__, "offset": exc.offset,
                            "reason": exc.reason})
        else:  # pragma: no cover
            raise AssertionError(f"{name} decodes")
    document = {
        "about": (
            "Suho Binary Protocol version 1 session vectors (docs/protocol.md, Session): "
            "HELLO, WELCOME, GOODBYE and the session's ERROR codes. An entry with `fields` "
            "and `hex` is valid: encode `fields` and compare with `hex`, decode `hex` and "
            "compare with `fields` (same conventions as valid.json). An entry with `error` "
            "must be rejected with that error at `offset` (same conventions as invalid.json)."
        ),
        "protocol_version": 1,
        "packet_size": 144,
        "vectors": vectors,
    }
    SESSION_FILE.write_text(json.dumps(document, indent=1) + "\n", "utf-8")


if __name__ == "__main__":  # pragma: no cover
    write()
