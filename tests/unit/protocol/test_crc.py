"""The CRC-32 backend (zlib-ng when installed) computes exactly zlib's CRC-32."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suho_mt5.protocol._crc import CRC_BACKEND, crc32

pytestmark = pytest.mark.unit


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=400), value=st.integers(0, 2**32 - 1))
def test_backend_equals_zlib(data: bytes, value: int) -> None:
    assert crc32(data) == zlib.crc32(data)
    assert crc32(data, value) == zlib.crc32(data, value)
    assert crc32(memoryview(data)) == zlib.crc32(data)


def test_backend_is_named() -> None:
    assert CRC_BACKEND.startswith(("zlib-ng ", "zlib "))


def test_the_standard_library_can_be_forced() -> None:
    code = (
        "from suho_mt5.protocol._crc import CRC_BACKEND;"
        "from suho_mt5.protocol import decode, encode, AckPacket, MessageType;"
        "m = AckPacket(1, 0, bytes(16), 2, MessageType.SIGNAL);"
        "assert decode(encode(m)) == m;"
        "print(CRC_BACKEND)"
    )
    env = {**os.environ, "SUHO_MT5_CRC": "zlib"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("zlib ") and not out.startswith("zlib-ng")
