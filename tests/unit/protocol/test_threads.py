"""The codec from many threads: ``decode`` raises nothing but ``ProtocolError``."""

from __future__ import annotations

import random
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from suho_mt5.errors import ProtocolError
from suho_mt5.protocol import BrokerQuotePacket, Packet, decode, encode
from suho_mt5.protocol._constants import SYMBOL_CACHE_SIZE

pytestmark = pytest.mark.unit

THREADS = 8
PER_THREAD = 100_000
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._#"


@contextmanager
def frequent_thread_switches() -> Iterator[None]:
    # Switch threads every microsecond instead of every 5 ms, so that two threads often
    # interleave inside the cache's eviction: the race is then hit within the run.
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _packets(rng: random.Random) -> list[bytes]:
    """Valid quotes with three times more distinct symbols than the cache holds (so the cache
    evicts on almost every decode), plus invalid symbols and broken CRCs."""
    out = []
    for n in range(3 * SYMBOL_CACHE_SIZE):
        symbol = "".join(rng.choices(ALPHABET, k=rng.randint(1, 16)))
        packet = encode(BrokerQuotePacket(n, n, bytes(16), symbol, n, n + 1, 0, 0, 1))
        if n % 10 == 0:  # an invalid symbol byte, CRC fixed: the reference path rejects it
            body = packet[:40] + b"\x7f" + packet[41:140]
            packet = body + zlib.crc32(body).to_bytes(4, "little")
        elif n % 10 == 1:
            packet = packet[:-1] + bytes([packet[-1] ^ 1])
        out.append(packet)
    return out


def test_eight_threads_decode_through_the_shared_symbol_cache() -> None:
    packets = _packets(random.Random(9))
    failures: list[BaseException] = []
    counts = [0] * THREADS

    def work(index: int) -> None:
        rng = random.Random(index)
        picks = rng.choices(range(len(packets)), k=PER_THREAD)
        decoded = 0
        try:
            for i in picks:
                try:
                    msg: Packet = decode(packets[i])
                except ProtocolError:
                    continue
                assert isinstance(msg, BrokerQuotePacket)
                decoded += 1
        except BaseException as exc:  # anything but ProtocolError is the bug
            failures.append(exc)
        counts[index] = decoded

    with frequent_thread_switches():
        threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
    assert all(c > PER_THREAD // 2 for c in counts)  # most packets are valid ones
