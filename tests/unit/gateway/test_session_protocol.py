"""The session's packets against tests/vectors/session.json, and the gateway's pure parts."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import suho_mt5.errors
from suho_mt5.gateway import INBOUND_KINDS, LoginLimiter
from suho_mt5.gateway._common import CHANNELS
from suho_mt5.gateway._common import EA_TYPES as _EA_TYPES
from suho_mt5.gateway._outbound import restamp
from suho_mt5.protocol import (
    RECORD_TYPES,
    AckPacket,
    CloseCode,
    ErrorCode,
    MessageType,
    SessionResult,
    decode,
    encode,
)

from .session_vectors import SESSION_FILE, VALID, fields_json, invalid_cases

DOCS = Path(__file__).resolve().parents[3] / "docs"
VECTORS: list[dict[str, Any]] = json.loads(SESSION_FILE.read_text("utf-8"))["vectors"]


def test_the_file_is_what_the_cases_generate() -> None:
    names = [v["name"] for v in VECTORS]
    assert names == [n for n, _, _ in VALID] + [n for n, _, _ in invalid_cases()]
    for vector, (_, _, msg) in zip(VECTORS, VALID, strict=False):
        assert vector["hex"] == encode(msg).hex()


def test_at_least_two_valid_vectors_per_session_type() -> None:
    types = [v["message_type"] for v in VECTORS if "error" not in v]
    for mtype in (MessageType.HELLO, MessageType.WELCOME, MessageType.GOODBYE):
        assert types.count(mtype.name) >= 2


@pytest.mark.parametrize("vector", [v for v in VECTORS if "error" not in v],
                         ids=lambda v: v["name"])
def test_valid_session_vector_both_ways(vector: dict[str, Any]) -> None:
    packet = bytes.fromhex(vector["hex"])
    msg = decode(packet)
    assert type(msg) is RECORD_TYPES[MessageType[vector["message_type"]]]
    assert fields_json(msg) == vector["fields"]
    assert encode(msg) == packet


@pytest.mark.parametrize("vector", [v for v in VECTORS if "error" in v],
                         ids=lambda v: v["name"])
def test_invalid_session_vector_is_rejected(vector: dict[str, Any]) -> None:
    error = getattr(suho_mt5.errors, vector["error"])
    with pytest.raises(error) as info:
        decode(bytes.fromhex(vector["hex"]))
    assert (info.value.offset, info.value.reason) == (vector["offset"], vector["reason"])


def test_every_new_enum_value_has_a_vector() -> None:
    named = {v["fields"].get(k) for v in VECTORS if "fields" in v for k in ("result", "code")}
    assert {r.name for r in SessionResult} - {"ACCEPTED"} <= named | {"ACCEPTED"}
    assert {"WRONG_DIRECTION", "SEQUENCE_REPLAYED"} <= named


def test_directions_follow_the_type_ranges() -> None:
    """0x01-0x3F EA -> backend, 0x40-0x7D backend -> EA, 0x7E-0x7F both: the gateway
    refuses exactly the backend -> EA types from an EA."""
    for mtype in MessageType:
        from_ea = mtype <= 0x3F or mtype >= 0x7E
        assert (mtype in _EA_TYPES) is from_ea, mtype.name
    assert set(INBOUND_KINDS) | {MessageType.HELLO, MessageType.ACK, MessageType.ERROR} \
        == _EA_TYPES
    assert all(0x40 <= t <= 0x7D for t in CHANNELS.values())


def test_docs_list_every_close_code_and_error_code() -> None:
    gateway_md = (DOCS / "gateway.md").read_text("utf-8")
    protocol_md = (DOCS / "protocol.md").read_text("utf-8")
    for code in CloseCode:
        assert re.search(rf"\|\s*{int(code)}\s*\|\s*`{code.name}`", gateway_md), code.name
        assert f"`{code.name}`" in protocol_md, code.name
    for result in SessionResult:
        assert f"`{result.name}`" in protocol_md, result.name
    for err in (ErrorCode.WRONG_DIRECTION, ErrorCode.SEQUENCE_REPLAYED,
                ErrorCode.NOT_AUTHENTICATED):
        assert f"`{err.name}`" in gateway_md and f"`{err.name}`" in protocol_md


def test_restamp_sets_the_sequence_and_keeps_the_packet_valid() -> None:
    ack = encode(AckPacket(5, 1, bytes(16), 2, MessageType.SIGNAL))
    again = decode(restamp(ack, 2**64 - 1))
    assert isinstance(again, AckPacket)
    assert again.sequence == 2**64 - 1 and again.acked_sequence == 2


def test_login_limiter_blocks_after_the_limit_and_forgets_old_addresses() -> None:
    limiter = LoginLimiter(3, 60.0, max_addresses=2)
    for _ in range(3):
        assert not limiter.blocked("a")
        limiter.failed("a")
    assert limiter.blocked("a") and 0 < limiter.retry_after_s("a") <= 60
    assert not limiter.blocked("b")
    limiter.failed("b")
    limiter.failed("c")  # the third address pushes out the least recent ("a")
    assert not limiter.blocked("a")
    assert len(limiter._failures) == 2


def test_login_limiter_window_expires() -> None:
    limiter = LoginLimiter(1, 0.05)
    limiter.failed("a")
    assert limiter.blocked("a")
    time.sleep(0.06)
    assert not limiter.blocked("a") and limiter.retry_after_s("a") == 0


def test_the_gateway_never_imports_the_models() -> None:
    import subprocess
    import sys

    code = ("import sys, suho_mt5.gateway, suho_mt5.gateway.simulator, suho_mt5.cli; "
            "print(any(m.startswith('suho_mt5.models') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_account_ids_in_vectors_are_uuids() -> None:
    for vector in VECTORS:
        if "fields" in vector:
            uuid.UUID(vector["fields"]["account_id"])
