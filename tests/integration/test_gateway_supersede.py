"""An EA that reconnects while its session is still starting: the new connection supersedes
the starting one at once, instead of waiting for its start-up on the bus to finish.

Start-up waits on JetStream (the last stored sequence, one consumer per channel, the
cluster-wide ownership). A session looked at its ending only once started, so each new
session of the account waited for the previous one's whole start-up; an EA reconnecting in
a loop chained them, and the 100,000-stream fuzz left ~6,500 sessions that never ended.
Real gateway, real sockets, a real nats-server; keys from a static table.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from suho_mt5.gateway import Gateway, GatewayConfig, StaticAuthenticator, open_connection
from suho_mt5.protocol import CloseCode, GoodbyePacket, HelloPacket, WelcomePacket, now_us
from tests.support.servers import NatsServer
from tests.timescale.gateway._support import create_streams, delete_streams

ACCOUNT = uuid.UUID(int=0x5AFE)
KEY = "supersede-key-0123"

pytestmark = pytest.mark.timeout(120)


@contextlib.asynccontextmanager
async def _gateway(nats_url: str) -> AsyncIterator[Gateway]:
    await create_streams(nats_url)
    gw = Gateway(GatewayConfig(host="127.0.0.1", ws_port=None, tcp_port=0,
                               max_unauthenticated_per_address=10**6),
                 nats_url=nats_url,
                 authenticator=StaticAuthenticator({ACCOUNT: ("tenant_sup", KEY)}))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()
        await delete_streams(nats_url)


def test_a_session_superseded_while_starting_ends_without_finishing_its_start(
    nats_server: NatsServer,
) -> None:
    async def scenario() -> None:
        async with _gateway(nats_server.url) as gw:
            assert gw._services is not None
            bus = gw._services.bus
            real_last_stored = bus.last_stored
            stuck = asyncio.Event()
            never = asyncio.Event()
            calls = 0

            async def last_stored(tenant_id: str, account: uuid.UUID) -> int:
                nonlocal calls
                calls += 1
                if calls == 1:  # the first session's start-up hangs on the bus
                    stuck.set()
                    await never.wait()
                return await real_last_stored(tenant_id, account)

            bus.last_stored = last_stored  # type: ignore[method-assign]
            url = f"tcp://127.0.0.1:{gw.tcp_port}"
            first = await open_connection(url)
            await first.send(HelloPacket(0, now_us(), ACCOUNT.bytes, 0, 0, 0, KEY))
            await asyncio.wait_for(stuck.wait(), 10)
            second = await open_connection(url)
            welcome = await second.hello(ACCOUNT, KEY, timeout=10)
            assert isinstance(welcome, WelcomePacket)
            assert await first.wait_closed(5) == CloseCode.SUPERSEDED
            assert not never.is_set()
            assert gw.registry.sessions.get(ACCOUNT) is not None
            await first.close()
            await second.close()

    asyncio.run(scenario())


def test_the_newest_connection_wins_over_one_still_waiting_for_the_account(
    nats_server: NatsServer,
) -> None:
    async def scenario() -> None:
        async with _gateway(nats_server.url) as gw:
            url = f"tcp://127.0.0.1:{gw.tcp_port}"
            first = await open_connection(url)
            await first.hello(ACCOUNT, KEY, timeout=10)
            ownership = gw.registry.ownership
            assert ownership is not None
            real_release = ownership.release
            stuck, gate = asyncio.Event(), asyncio.Event()

            async def release(lease: object) -> None:
                if not gate.is_set():  # the first session's wind-up hangs on the bus
                    stuck.set()
                    await gate.wait()
                await real_release(lease)  # type: ignore[arg-type]

            ownership.release = release  # type: ignore[method-assign]
            second = await open_connection(url)
            await second.send(HelloPacket(0, now_us(), ACCOUNT.bytes, 0, 0, 0, KEY))
            try:
                await asyncio.wait_for(stuck.wait(), 10)  # the second waits for the first
                third = await open_connection(url)
                await third.send(HelloPacket(0, now_us(), ACCOUNT.bytes, 0, 0, 0, KEY))
                # The second is older than the third: it ends without ever starting, while
                # the first is still winding up.
                assert await second.wait_closed(5) == CloseCode.SUPERSEDED
            finally:
                gate.set()  # (a failure must not leave the gateway unable to stop)
            packets = await third.recv(10)
            assert isinstance(packets[0], WelcomePacket), packets
            assert await first.wait_closed(5) == CloseCode.SUPERSEDED
            for conn in (first, second, third):
                await conn.close()

    asyncio.run(scenario())


def test_a_reconnect_storm_of_one_account_leaves_one_session(nats_server: NatsServer) -> None:
    storm = 150

    async def scenario() -> dict[str, int]:
        async with _gateway(nats_server.url) as gw:
            url = f"tcp://127.0.0.1:{gw.tcp_port}"
            conns = [await open_connection(url) for _ in range(storm)]
            await asyncio.gather(*(c.send(HelloPacket(0, now_us(), ACCOUNT.bytes, 0, 0, 0, KEY))
                                   for c in conns))

            seen: list[list[object]] = [[] for _ in conns]

            async def read_until_goodbye(i: int) -> None:
                while batch := await conns[i].recv():
                    seen[i] += batch
                    if any(isinstance(p, GoodbyePacket) for p in batch):
                        return

            started = time.monotonic()
            readers = [asyncio.create_task(read_until_goodbye(i)) for i in range(storm)]
            deadline = started + 30
            while sum(r.done() for r in readers) < storm - 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the survivor's WELCOME, had it not come yet
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            counts: dict[str, int] = {"seconds": round(time.monotonic() - started)}
            for packets in seen:
                bye = [p for p in packets if isinstance(p, GoodbyePacket)]
                name = (CloseCode(bye[0].code).name if bye else
                        "open" if any(isinstance(p, WelcomePacket) for p in packets)
                        else "silent")
                counts[name] = counts.get(name, 0) + 1
            counts["sessions"] = len(gw.registry.sessions)
            counts["live"] = len(gw._all)
            for conn in conns:
                await conn.close()
            return counts

    counts = asyncio.run(scenario())
    # Every connection but the newest claimer's is superseded; that one stays open.
    assert counts.get("open") == 1 and counts.get("SUPERSEDED") == storm - 1, counts
    assert counts["sessions"] == 1 and counts["live"] == 1, counts
