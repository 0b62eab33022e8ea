"""The golden vectors of tests/vectors/, checked both ways."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

import suho_mt5.errors
from suho_mt5.errors import ProtocolError
from suho_mt5.protocol import RECORD_TYPES, MessageType, decode, decode_frame, encode

from .vector_cases import INVALID_FILE, VALID, VALID_FILE, fields_from_json, fields_json

pytestmark = pytest.mark.unit

VALID_VECTORS: list[dict[str, Any]] = json.loads(VALID_FILE.read_text("utf-8"))["vectors"]
INVALID_VECTORS: list[dict[str, Any]] = json.loads(INVALID_FILE.read_text("utf-8"))["vectors"]


def test_at_least_two_vectors_per_message_type() -> None:
    counts = Counter(v["message_type"] for v in VALID_VECTORS)
    assert set(counts) == {t.name for t in MessageType}
    assert min(counts.values()) >= 2


@pytest.mark.parametrize("vector", VALID_VECTORS, ids=lambda v: v["name"])
def test_valid_vector_both_ways(vector: dict[str, Any]) -> None:
    cls = RECORD_TYPES[MessageType[vector["message_type"]]]
    assert int(cls.MESSAGE_TYPE) == vector["type_code"]
    msg = fields_from_json(cls, vector["fields"])
    packet = bytes.fromhex(vector["hex"])
    assert encode(msg).hex() == vector["hex"]
    assert decode(packet) == msg
    assert fields_json(decode(packet)) == vector["fields"]


def test_all_valid_vectors_as_one_frame() -> None:
    frame = b"".join(bytes.fromhex(v["hex"]) for v in VALID_VECTORS)
    assert [m.MESSAGE_TYPE.name for m in decode_frame(frame)] == [
        v["message_type"] for v in VALID_VECTORS
    ]


def test_the_files_hold_every_case() -> None:
    assert [v["name"] for v in VALID_VECTORS] == [name for name, _, _ in VALID]


@pytest.mark.parametrize("vector", INVALID_VECTORS, ids=lambda v: v["name"])
def test_invalid_vector_is_rejected_as_documented(vector: dict[str, Any]) -> None:
    error = getattr(suho_mt5.errors, vector["error"])
    assert issubclass(error, ProtocolError)
    with pytest.raises(error) as info:
        decode(bytes.fromhex(vector["hex"]))
    assert type(info.value) is error
    assert info.value.offset == vector["offset"]
    assert info.value.reason == vector["reason"]


def test_invalid_vectors_cover_every_error_class() -> None:
    named = {v["error"] for v in INVALID_VECTORS}
    classes = {
        name
        for name in suho_mt5.errors.__all__
        if issubclass(getattr(suho_mt5.errors, name), ProtocolError) and name != "ProtocolError"
    }
    assert named == classes
