"""Fuzzing the session layer: random and mutated byte streams, seeded from the protocol's
and the session's test vectors, sent over both transports to a live gateway (in this
process, real sockets, a real nats-server; keys from a static table, so that what is
exercised is the session layer, not bcrypt).

The gateway must never crash, must end every connection it was sent (no task and no socket
left once the streams are done: counted before and after), and must never forward a packet
from a connection that did not authenticate: the bus holds packets of the fuzzer's own
accounts only (it authenticates one stream in ten, then sends mutated packets too).

``make test`` sends ``SUHO_FUZZ_STREAMS`` streams (2,000 by default, seed
``SUHO_FUZZ_SEED``, 22 by default); ``make fuzz`` sends 100,000 (docs/security.md).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import random
import struct
import time
import uuid
from pathlib import Path

import nats
import pytest
from websockets.asyncio.client import connect

from suho_mt5.gateway import Gateway, GatewayConfig, StaticAuthenticator
from suho_mt5.protocol import PACKET_SIZE, HelloPacket, encode
from suho_mt5.protocol._crc import crc32
from tests.support.secrets import register
from tests.support.servers import NatsServer
from tests.timescale.gateway._support import create_streams, delete_streams

STREAMS = int(os.environ.get("SUHO_FUZZ_STREAMS", "2000"))
SEED = int(os.environ.get("SUHO_FUZZ_SEED", "22"))
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
ACCOUNTS = [uuid.UUID(int=0xF0220 + i) for i in range(64)]  # few collide: the newest wins
KEY = "fuzz-key-0123456789"
register(KEY)
_CRC = struct.Struct("<I")

pytestmark = pytest.mark.timeout(max(300, STREAMS // 50))


def _seeds() -> list[bytes]:
    seeds = []
    for name in ("valid.json", "session.json", "invalid.json"):
        for vector in json.loads((VECTORS / name).read_text())["vectors"]:
            for field in ("hex", "input_hex", "bytes_hex"):
                if isinstance(vector.get(field), str):
                    seeds.append(bytes.fromhex(vector[field]))
    assert len(seeds) > 20
    return seeds


def _fix_crcs(data: bytearray) -> None:
    for off in range(0, len(data) - PACKET_SIZE + 1, PACKET_SIZE):
        data[off + 140:off + 144] = _CRC.pack(crc32(bytes(data[off:off + 140])))


def _as_account(packet: bytes, account: uuid.UUID) -> bytes:
    """A seed packet made the authenticated account's (a valid one may then be forwarded)."""
    out = bytearray(packet[:PACKET_SIZE].ljust(PACKET_SIZE, b"\0"))
    out[24:40] = account.bytes
    out[8:16] = struct.pack("<Q", random.getrandbits(40))
    _fix_crcs(out)
    return bytes(out)


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        at = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and out:
            out[min(at, len(out) - 1)] = rng.choice((0, 0x7F, 0x80, 0xFF, 0x20, 0x2E))
        elif op == 2:
            out[at:at] = rng.randbytes(rng.randint(1, 32))
        elif op == 3 and out:
            del out[at:at + rng.randint(1, 32)]
        elif op == 4:
            del out[at:]
        elif op == 5 and out:
            out[at:at] = out[max(0, at - 144):at]
        elif op == 6:
            out[at:at + 8] = rng.randbytes(8)
        else:  # a multi-byte field set to an extreme
            out[at:at + 8] = rng.choice((b"\xff" * 8, b"\x00" * 8, b"\x7f" + b"\xff" * 7))
    if rng.random() < 0.6:
        _fix_crcs(out)  # so that the checks behind the CRC are reached too
    return bytes(out)


def stream(rng: random.Random, seeds: list[bytes]) -> tuple[bytes, uuid.UUID | None]:
    """One connection's bytes, and the account it authenticates as (``None``: it does not)."""
    if rng.random() < 0.1:
        account = rng.choice(ACCOUNTS)
        hello = encode(HelloPacket(0, time.time_ns() // 1000, account.bytes, 0, 0, 0, KEY))
        body = b"".join(mutate(rng, rng.choice(seeds)) if rng.random() < 0.7
                        else _as_account(rng.choice(seeds), account)
                        for _ in range(rng.randint(1, 6)))
        return hello + body, account
    kind = rng.random()
    if kind < 0.1:
        return rng.randbytes(rng.randint(0, 600)), None
    if kind < 0.25:  # a HELLO with the right shape for an account it does not know
        hello = encode(HelloPacket(0, time.time_ns() // 1000, uuid.uuid4().bytes, 0, 0, 0,
                                   rng.choice((KEY, "x" * 64, "k"))))
        return mutate(rng, hello) if rng.random() < 0.5 else hello, None
    parts = [mutate(rng, rng.choice(seeds)) for _ in range(rng.randint(1, 3))]
    return b"".join(parts), None


async def _send_stream(gw: Gateway, transport: str, data: bytes, rng: random.Random,
                       linger_s: float = 0.0) -> None:
    with contextlib.suppress(Exception):
        if transport == "tcp":
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.tcp_port)
            try:
                cut = rng.randrange(len(data) + 1)
                for part in (data[:cut], data[cut:]):
                    writer.write(part)
                    await writer.drain()
                await asyncio.sleep(linger_s)  # an authenticated EA waits for its ACK
                if rng.random() < 0.7:
                    writer.write_eof()
                await asyncio.wait_for(reader.read(), 5)
            finally:
                writer.transport.abort()
        else:
            async with connect(f"ws://127.0.0.1:{gw.ws_port}", open_timeout=5,
                               close_timeout=1, ping_interval=None) as ws:
                cut = rng.randrange(len(data) + 1)
                for part in (data[:cut], data[cut:]):
                    if part:
                        await ws.send(part if rng.random() < 0.95
                                      else part.decode("latin-1"))
                await asyncio.sleep(linger_s)
                if rng.random() < 0.7:
                    await ws.close()
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        async for _ in ws:
                            pass


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _stored_accounts(nats_url: str) -> collections.Counter[uuid.UUID]:
    from nats.js.api import AckPolicy, ConsumerConfig

    nc = await nats.connect(nats_url)
    counts: collections.Counter[uuid.UUID] = collections.Counter()
    try:
        js = nc.jetstream()
        total = (await js.stream_info("MT5_ACCOUNTS")).state.messages
        if not total:
            return counts
        sub = await js.pull_subscribe(">", stream="MT5_ACCOUNTS",
                                      config=ConsumerConfig(ack_policy=AckPolicy.NONE))
        seen = 0
        while seen < total:
            for msg in await sub.fetch(min(1000, total - seen), timeout=5):
                seen += 1
                for off in range(0, len(msg.data), PACKET_SIZE):
                    counts[uuid.UUID(bytes=msg.data[off + 24:off + 40])] += 1
    finally:
        await nc.close()
    return counts


def test_fuzzed_streams_over_both_transports_crash_nothing_leak_nothing_forward_nothing(
    nats_server: NatsServer,
) -> None:
    seeds = _seeds()
    rng = random.Random(SEED)
    asyncio.run(create_streams(nats_server.url))

    async def scenario() -> dict[str, object]:
        config = GatewayConfig(host="127.0.0.1", ws_port=0, tcp_port=0, hello_timeout_s=1.0,
                               max_failed_logins=10**9, max_unauthenticated_per_address=10**6,
                               auth_queue_limit=10**6, auth_unknown_rate=0)
        gw = Gateway(config, nats_url=nats_server.url, authenticator=StaticAuthenticator(
            {a: ("tenant_fuzz", KEY) for a in ACCOUNTS}))
        await gw.start()
        try:
            # One session first: nats-py makes each connection's reply subscription on its
            # first request, once; it is not a leak of the streams that follow.
            await _send_stream(gw, "tcp", encode(HelloPacket(
                0, time.time_ns() // 1000, ACCOUNTS[0].bytes, 0, 0, 0, KEY)), random.Random(0))
            await asyncio.sleep(0.5)
            before = asyncio.all_tasks()
            tasks_before, fds_before = len(before), _open_fds()
            authenticated = collections.Counter[str]()
            gate = asyncio.Semaphore(256)
            started = time.monotonic()

            async def one(i: int) -> None:
                async with gate:
                    local = random.Random(rng.random())
                    data, account = stream(local, seeds)
                    authenticated["yes" if account else "no"] += 1
                    await _send_stream(gw, "ws" if i % 2 else "tcp", data, local,
                                       0.3 if account else 0.0)

            await asyncio.gather(*(one(i) for i in range(STREAMS)))
            deadline = time.monotonic() + 30
            while (gw._all or gw.handshake.unauthenticated) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            elapsed = time.monotonic() - started
            return {"tasks": (tasks_before, len(asyncio.all_tasks())),
                    "new tasks": [repr(t) for t in asyncio.all_tasks() - before
                                  if t is not asyncio.current_task()],
                    "fds": (fds_before, _open_fds()), "sessions": len(gw._all),
                    "pending": gw.handshake.unauthenticated, "elapsed": elapsed,
                    "authenticated": dict(authenticated),
                    "closes": {s.labels["code"]: s.value for m in gw.metrics.registry.collect()
                               if m.name == "suho_gateway_closes"
                               for s in m.samples if s.name.endswith("_total")}}
        finally:
            await gw.stop()

    try:
        result = asyncio.run(scenario())
        stored = asyncio.run(_stored_accounts(nats_server.url))
    finally:
        asyncio.run(delete_streams(nats_server.url))
    print(f"\nfuzz: {STREAMS} streams (seed {SEED}) in {result['elapsed']:.0f} s: {result}; "
          f"packets on the bus by account: {sum(stored.values())}")
    assert result["sessions"] == 0 and result["pending"] == 0
    tasks_before, tasks_after = result["tasks"]  # type: ignore[misc]
    fds_before, fds_after = result["fds"]  # type: ignore[misc]
    assert tasks_after <= tasks_before, result
    assert fds_after <= fds_before, result
    assert stored, "no packet reached the bus: the fuzzer never got past the session layer"
    assert set(stored) <= set(ACCOUNTS), "a packet of a connection that did not authenticate"
