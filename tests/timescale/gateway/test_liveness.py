"""Liveness: WebSocket ping/pong, TCP keepalive on accepted sockets (the HEARTBEAT deadline,
IDLE_TIMEOUT, is tested in test_transports.py). Intervals are shortened so the tests run in
seconds; each test fails when its protection is removed."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
import time
import uuid
from datetime import UTC, datetime, timedelta

import nats
import pytest
import sqlalchemy as sa

from suho_mt5.db import make_engine
from suho_mt5.gateway import open_connection
from suho_mt5.ingest.bridge import Bridge, BridgeSettings
from suho_mt5.ingest.streams import DEFAULT_CONTRACT, setup_streams
from suho_mt5.protocol import (
    CloseCode,
    GoodbyePacket,
    HeartbeatPacket,
    HelloPacket,
    StreamDecoder,
    WelcomePacket,
    encode,
)
from tests.integration.ingest._support import make_ingest_login

from ._support import GatewayDb, metric, running_gateway, stored_packets, wait_for

pytestmark = pytest.mark.timeout(60)


def _client_frame(payload: bytes) -> bytes:
    """One masked binary WebSocket frame (RFC 6455 §5.2), as a client must send it."""
    mask = os.urandom(4)
    n = len(payload)
    header = b"\x82" + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) +
                        struct.pack(">H", n))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _server_frames(data: bytes | bytearray) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each whole unmasked frame in ``data``."""
    frames, i = [], 0
    while i + 2 <= len(data):
        opcode, n = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if n == 126:
            n, i = struct.unpack_from(">H", data, i)[0], i + 2
        elif n == 127:
            n, i = struct.unpack_from(">Q", data, i)[0], i + 8
        if i + n > len(data):
            break
        frames.append((opcode, bytes(data[i:i + n])))
        i += n
    return frames


def _statuses(url: str, account: uuid.UUID, since: datetime) -> list[str]:
    """The account's heartbeat rows' statuses since ``since``, oldest first (the database
    is shared by the module's tests)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [str(s) for s in conn.execute(sa.text(
                "SELECT status FROM mt5_ea_heartbeat WHERE account_id = :a AND time >= :t"
                " ORDER BY time"), {"a": account, "t": since}).scalars()]
    finally:
        engine.dispose()


def _status(url: str, account: uuid.UUID) -> str | None:
    statuses = _statuses(url, account, datetime.min.replace(tzinfo=UTC))
    return statuses[-1] if statuses else None


def test_a_websocket_client_that_stops_answering_pings_is_closed(
    gw_db: GatewayDb, nats_url: str
) -> None:
    """A raw-socket client completes the WebSocket handshake, authenticates, sends one
    HEARTBEAT, then goes silent: it answers no ping. With pings every 0.3 s and a 0.5 s
    timeout it is closed with IDLE_TIMEOUT (in its GOODBYE and close frame) long before the
    90 s HEARTBEAT deadline; its session is gone, so no packet of its account reaches the bus
    any more, and the Data Bridge (running along) marks it offline when its heartbeat is
    older than its ``offline_after``."""
    me = gw_db.accounts[50]
    acc = me.account_id.bytes
    ingest_url = make_ingest_login(gw_db.owner_url)

    started = datetime.now(UTC)

    async def scenario() -> None:
        nc = await nats.connect(nats_url)
        # A stream of its own: the session's nats-server keeps what earlier tests published
        # (with the same account ids) for the bridge's durable consumer.
        with contextlib.suppress(Exception):
            await nc.jetstream().delete_stream("MT5_ACCOUNTS")
        await setup_streams(nc.jetstream(), DEFAULT_CONTRACT)
        await nc.close()
        # The Data Bridge, marking an EA offline 2 s after its last heartbeat.
        bridge = Bridge(BridgeSettings(url=ingest_url, nats_url=nats_url, fetch_timeout=0.5,
                                       offline_after=timedelta(seconds=2),
                                       offline_check_every=0.5, consumer_poll_every=0.5))
        bridging = asyncio.create_task(bridge.run())
        try:
            await with_gateway()

            async def offline() -> bool:
                return await asyncio.to_thread(_status, gw_db.owner_url,
                                               me.account_id) == "offline"

            assert await wait_for(offline, 30)
            # ... "online" first: its HEARTBEAT went through the bridge
            assert await asyncio.to_thread(_statuses, gw_db.owner_url, me.account_id,
                                           started) == ["online", "offline"]
        finally:
            bridge.stop()
            await asyncio.wait_for(bridging, 60)
            nc = await nats.connect(nats_url)
            with contextlib.suppress(Exception):
                await nc.jetstream().delete_stream("MT5_MARKET")
            await nc.close()

    async def with_gateway() -> None:
        async with running_gateway(gw_db, nats_url, ws_ping_interval_s=0.3,
                                   ws_ping_timeout_s=0.5, heartbeat_interval_s=30.0,
                                   idle_timeout_s=90.0) as gw:
            reader, writer = await asyncio.open_connection("127.0.0.1", gw.ws_port)
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(
                f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{gw.ws_port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 101"), head
            now = time.time_ns() // 1000
            writer.write(_client_frame(encode(HelloPacket(0, now, acc, 0, 0, 0, me.api_key))))
            writer.write(_client_frame(encode(HeartbeatPacket(1, now, acc, "raw", 4410, 1,
                                                              True, True))))
            await writer.drain()
            received = bytearray()

            async def read_all() -> None:  # reads everything, answers nothing
                with contextlib.suppress(OSError):
                    while chunk := await reader.read(65536):
                        received.extend(chunk)

            reading = asyncio.create_task(read_all())
            assert await wait_for(lambda: any(op == 2 for op, _ in _server_frames(received)),
                                  5)
            welcome = StreamDecoder().feed(_server_frames(received)[0][1])[0]
            assert isinstance(welcome, WelcomePacket)
            assert await wait_for(lambda: me.account_id in gw.sessions, 5)
            opened = time.monotonic()
            # Silent from here on: nothing sent, no pong. The gateway must give up.
            assert await wait_for(lambda: me.account_id not in gw.sessions, 10), \
                "the silent WebSocket client is still connected"
            assert time.monotonic() - opened < 30  # not the HEARTBEAT deadline (90 s)
            assert metric(gw, "suho_gateway_closes_total", code="4007") == 1
            assert metric(gw, "suho_gateway_connected_eas", transport="ws") == 0
            await asyncio.wait_for(reading, 10)  # the gateway closed the connection
            writer.close()
            frames = _server_frames(bytes(received))
            assert any(op == 9 for op, _ in frames), "no ping was sent"
            closes = [payload for op, payload in frames if op == 8]
            assert closes and struct.unpack(">H", closes[0][:2])[0] == CloseCode.IDLE_TIMEOUT
            packets = [p for op, payload in frames if op == 2
                       for p in StreamDecoder().feed(payload)]
            goodbye = packets[-1]
            assert isinstance(goodbye, GoodbyePacket)
            assert goodbye.code is CloseCode.IDLE_TIMEOUT and "pong" in goodbye.detail
            counts, _ = await stored_packets(gw.js)
            assert set(counts) == {(str(me.account_id), 1)}  # its heartbeat, nothing after

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_accepted_sockets_have_tcp_keepalive_as_configured(
    gw_db: GatewayDb, nats_url: str, transport: str
) -> None:
    """SO_KEEPALIVE with the configured idle time, probe interval and probe count is set on
    the socket of every accepted connection, on both transports (a peer that vanished
    without a FIN is then found by the kernel, and the session's read fails)."""
    me = gw_db.accounts[51 if transport == "tcp" else 52]

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url, tcp_keepalive_idle_s=7,
                                   tcp_keepalive_interval_s=3, tcp_keepalive_count=4) as gw:
            port = gw.tcp_port if transport == "tcp" else gw.ws_port
            conn = await open_connection(f"{transport}://127.0.0.1:{port}")
            await conn.hello(me.account_id, me.api_key)
            assert await wait_for(lambda: me.account_id in gw.sessions, 5)
            sock = gw.sessions[me.account_id].transport.os_socket()
            assert sock is not None
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 7
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 3
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 4
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            await conn.close()

    asyncio.run(scenario())
