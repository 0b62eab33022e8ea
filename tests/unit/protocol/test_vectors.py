"""The golden vectors of tests/vectors/ (every file), checked both ways."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

import suho_mt5.errors
from suho_mt5.errors import ProtocolError
from suho_mt5.protocol import (
    RECORD_TYPES,
    MessageType,
    StreamDecoder,
    decode,
    decode_frame,
    encode,
    iter_frame,
)

from .vector_cases import contents, fields_from_json
from .vector_files import VECTORS, fields_json

pytestmark = pytest.mark.unit


def _name(v: dict[str, Any]) -> str:
    return f"{v['file']}:{v['name']}"


def test_at_least_two_vectors_per_message_type() -> None:
    counts = Counter(v["message_type"] for v in VECTORS.valid if not v.get("decode_only"))
    assert set(counts) == {t.name for t in MessageType}
    assert min(counts.values()) >= 2


def test_names_are_unique() -> None:
    names = Counter(
        v["name"] for v in (*VECTORS.valid, *VECTORS.invalid, *VECTORS.frames, *VECTORS.streams,
                            *VECTORS.encode)
    )
    assert [n for n, c in names.items() if c > 1] == []


@pytest.mark.parametrize("vector", VECTORS.valid, ids=_name)
def test_valid_vector_both_ways(vector: dict[str, Any]) -> None:
    cls = RECORD_TYPES[MessageType[vector["message_type"]]]
    assert int(cls.MESSAGE_TYPE) == vector["type_code"]
    msg = fields_from_json(cls, vector["fields"])
    packet = bytes.fromhex(vector["hex"])
    if vector.get("decode_only"):
        assert encode(msg) != packet  # e.g. non-zero padding: an encoder writes zeros
    else:
        assert encode(msg).hex() == vector["hex"]
    assert decode(packet) == msg
    assert fields_json(decode(packet)) == vector["fields"]


def test_all_valid_vectors_as_one_frame() -> None:
    frame = b"".join(bytes.fromhex(v["hex"]) for v in VECTORS.valid)
    assert [m.MESSAGE_TYPE.name for m in decode_frame(frame)] == [
        v["message_type"] for v in VECTORS.valid
    ]


@pytest.mark.parametrize("vector", VECTORS.invalid, ids=_name)
def test_invalid_vector_is_rejected_as_documented(vector: dict[str, Any]) -> None:
    error = getattr(suho_mt5.errors, vector["error"])
    assert issubclass(error, ProtocolError)
    with pytest.raises(error) as info:
        decode(bytes.fromhex(vector["hex"]))
    assert type(info.value) is error
    assert info.value.offset == vector["offset"]
    assert info.value.reason == vector["reason"]


def test_invalid_vectors_cover_every_error_class() -> None:
    named = {v["error"] for v in VECTORS.invalid}
    classes = {
        name
        for name in suho_mt5.errors.__all__
        if issubclass(getattr(suho_mt5.errors, name), ProtocolError) and name != "ProtocolError"
    }
    assert named == classes


@pytest.mark.parametrize("vector", VECTORS.encode, ids=_name)
def test_encoder_refuses_as_documented(vector: dict[str, Any]) -> None:
    if vector["message_type"] is None:
        # Python's records are per type: a type that is not one has no record class, so
        # encode() cannot be asked (a C or MQL5 record holds the code as a number).
        with pytest.raises(ValueError):
            MessageType(vector["type_code"])
        assert vector["error"] == "UnknownMessageTypeError" and vector["offset"] == 5
        return
    cls = RECORD_TYPES[MessageType[vector["message_type"]]]
    msg = fields_from_json(cls, vector["fields"])
    with pytest.raises(ProtocolError) as info:
        encode(msg)
    assert (type(info.value).__name__, info.value.offset) == (vector["error"], vector["offset"])


def test_encode_vectors_cover_each_refusal() -> None:
    labels = {v["name"].rsplit(".", 1)[-1] for v in VECTORS.encode}
    for label in ("too_long", "not_ascii", "byte_0x7F", "empty", "does_not_fit", "type_0x00"):
        assert label in labels, label


@pytest.mark.parametrize("vector", VECTORS.frames, ids=_name)
def test_frame_vector(vector: dict[str, Any]) -> None:
    frame = bytes.fromhex(vector["hex"])
    seen: list[dict[str, object]] = []
    try:
        for msg in iter_frame(frame):
            seen.append({"message_type": msg.MESSAGE_TYPE.name, "fields": fields_json(msg)})
    except ProtocolError as exc:
        assert (type(exc).__name__, exc.offset) == (vector["error"], vector["offset"])
    else:
        assert "error" not in vector
    assert seen == vector["records"]
    if "error" in vector:
        with pytest.raises(getattr(suho_mt5.errors, vector["error"])) as info:
            decode_frame(frame)
        assert info.value.offset == vector["offset"]
    else:
        assert [fields_json(m) for m in decode_frame(frame)] == [
            r["fields"] for r in vector["records"]
        ]


@pytest.mark.parametrize("vector", VECTORS.streams, ids=_name)
def test_stream_vector(vector: dict[str, Any]) -> None:
    dec = StreamDecoder()
    records = [
        {"message_type": m.MESSAGE_TYPE.name, "fields": fields_json(m)}
        for chunk in vector["chunks"]
        for m in dec.feed(bytes.fromhex(chunk))
    ]
    if vector["close"]:
        dec.close()
    assert records == vector["records"]
    assert [
        {"offset": s.offset, "length": s.length, "reason": s.reason} for s in dec.skips
    ] == vector["skips"]
    assert dec.pending == vector["pending"]
    assert dec.skipped_bytes == sum(s["length"] for s in vector["skips"])


def test_the_files_are_what_the_generator_writes() -> None:
    # The files are the contract; the generator (python -m tests.unit.protocol.vector_cases)
    # must be re-run after any change of the cases, the rules or the codec.
    for path, content in contents().items():
        assert json.loads(path.read_text("utf-8")) == content, f"regenerate {path.name}"
