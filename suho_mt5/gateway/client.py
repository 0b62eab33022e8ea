"""The EA side of a connection: open, say HELLO, send and receive packets, learn the close code.

What an MQL5 EA does, in Python; the simulator and the tests use it.

URLs: ``ws://host:port`` or ``wss://...`` (WebSocket), ``tcp://host:port`` or
``tls://host:port`` (a stream of 144-byte packets).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, SupportsIndex
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from suho_mt5.errors import GatewayError, ProtocolError, SessionClosedError, SessionRefusedError
from suho_mt5.protocol import (
    GoodbyePacket,
    HelloPacket,
    Packet,
    SessionResult,
    StreamDecoder,
    WelcomePacket,
    encode,
    now_us,
)

__all__ = ["EAConnection", "Resume", "open_connection"]


class _StampedReader(asyncio.StreamReader):
    """A stream reader that notes when bytes last reached it from the event loop."""

    received_ns = 0

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        self.received_ns = time.time_ns()
        super().feed_data(data)


class _StampedWebSocket(ClientConnection):
    """A WebSocket client connection that notes when bytes last reached it."""

    received_ns = 0

    def data_received(self, data: bytes) -> None:
        self.received_ns = time.time_ns()
        super().data_received(data)


@dataclass(frozen=True, slots=True)
class Resume:
    """What an EA tells the gateway it has handled, per backend -> EA channel."""

    signal: int = 0
    command: int = 0
    config: int = 0


class EAConnection:
    """One connection to the gateway. Use :func:`open_connection`.

    :meth:`recv` returns decoded packets (a GOODBYE is returned like any other, and sets
    :attr:`close_code`); it returns ``[]`` once the connection has ended.
    """

    def __init__(self, url: str, *, ssl_context: ssl.SSLContext | None = None,
                 source_address: str | None = None) -> None:
        self.url = url
        #: connect from this local address (tests and benchmarks: many clients on loopback)
        self.local_addr = (source_address, 0) if source_address else None
        parts = urlsplit(url)
        self.scheme = parts.scheme
        if self.scheme not in ("ws", "wss", "tcp", "tls"):
            raise GatewayError(f"unsupported gateway URL {url!r}: ws, wss, tcp or tls")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.scheme in ("wss", "tls") else 8000)
        self.ssl_context = ssl_context
        self.transport = "ws" if self.scheme.startswith("ws") else "tcp"
        self._ws: ClientConnection | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = StreamDecoder()
        self.close_code: int | None = None
        self.close_reason = ""
        self.welcome: WelcomePacket | None = None
        #: when the newest bytes returned by the last :meth:`recv` reached this process
        #: (``time.time_ns()``, noted by the event loop's read callback, before any parsing
        #: or task switch: latency measured with it leaves out the reader's own load)
        self.received_ns = 0

    async def open(self) -> None:
        try:
            if self.transport == "ws":
                tls: Any = None
                if self.scheme == "wss":
                    tls = self.ssl_context or ssl.create_default_context()
                self._ws = await connect(self.url, ssl=tls, max_size=2**20, compression=None,
                                         open_timeout=10, close_timeout=2, ping_interval=None,
                                         create_connection=_StampedWebSocket,
                                         local_addr=self.local_addr)
            else:
                tls = None
                if self.scheme == "tls":
                    tls = self.ssl_context or ssl.create_default_context()
                self._reader, self._writer = await asyncio.wait_for(
                    self._open_stream(tls), 10)
        except (OSError, TimeoutError) as exc:
            raise SessionClosedError(0, f"cannot connect to {self.url}: {exc}") from exc

    async def _open_stream(self, tls: ssl.SSLContext | None
                           ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """``asyncio.open_connection`` with a reader that timestamps arriving bytes."""
        loop = asyncio.get_running_loop()
        reader = _StampedReader(limit=1 << 20, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport, _ = await loop.create_connection(lambda: protocol, self.host, self.port,
                                                    ssl=tls, local_addr=self.local_addr)
        with contextlib.suppress(OSError):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

    async def send(self, *packets: Packet | bytes) -> None:
        data = b"".join(p if isinstance(p, bytes) else encode(p) for p in packets)
        await self.send_raw(data)

    async def send_raw(self, data: bytes) -> None:
        try:
            if self._ws is not None:
                await self._ws.send(data)
            else:
                assert self._writer is not None
                self._writer.write(data)
                await self._writer.drain()
        except (ConnectionClosed, OSError) as exc:
            self._note_ws_close()
            raise SessionClosedError(self.close_code or 0, "connection lost") from exc

    def _note_ws_close(self) -> None:
        ws = self._ws
        if ws is not None and ws.close_code is not None and self.close_code is None:
            self.close_code = ws.close_code
            self.close_reason = ws.close_reason or ""

    async def recv(self, timeout: float | None = None) -> list[Packet]:
        """The next packets (at least one), or ``[]`` at the end of the connection."""
        while True:
            try:
                data = await asyncio.wait_for(self._recv_bytes(), timeout)
            except TimeoutError:
                raise
            if not data:
                await self.close()
                return []
            packets = self._decoder.feed(data)
            for p in packets:
                if isinstance(p, GoodbyePacket) and self.close_code is None:
                    self.close_code, self.close_reason = int(p.code), p.detail
            if packets:
                return packets

    async def _recv_bytes(self) -> bytes:
        if self._ws is not None:
            try:
                data = await self._ws.recv()
            except ConnectionClosed:
                self._note_ws_close()
                return b""
            self.received_ns = getattr(self._ws, "received_ns", 0) or time.time_ns()
            return data if isinstance(data, bytes) else b""
        assert self._reader is not None
        try:
            data = await self._reader.read(1 << 16)
        except (ConnectionError, OSError):
            return b""
        self.received_ns = getattr(self._reader, "received_ns", 0) or time.time_ns()
        return data

    async def hello(self, account_id: uuid.UUID, api_key: str, resume: Resume = Resume(),
                    *, timeout: float = 10.0) -> WelcomePacket:
        """Send HELLO and return the WELCOME; raise ``SessionRefusedError`` if refused."""
        await self.send(HelloPacket(0, now_us(), account_id.bytes,
                                    resume.signal, resume.command, resume.config, api_key))
        packets = await self.recv(timeout)
        if not packets:
            raise SessionClosedError(self.close_code or 0, "closed before WELCOME")
        first = packets[0]
        if not isinstance(first, WelcomePacket):
            raise ProtocolError(f"expected WELCOME, got {first.MESSAGE_TYPE.name}", 0)
        self.welcome = first
        self._early = packets[1:]
        if first.result is not SessionResult.ACCEPTED:
            # Read on to the close frame (WebSocket) so close_code is known.
            with contextlib.suppress(Exception):
                while await self.recv(2.0):
                    pass
            raise SessionRefusedError(first.result.name, first.retry_after_ms)
        return first

    def early_packets(self) -> list[Packet]:
        """Packets that arrived together with the WELCOME."""
        early: list[Packet] = getattr(self, "_early", [])
        self._early = []
        return early

    async def wait_closed(self, timeout: float = 10.0) -> int | None:
        """Read and drop packets until the gateway closes; return the close code."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not await self.recv(max(0.01, deadline - time.monotonic())):
                    break
            except TimeoutError:
                break
        await self.close()
        return self.close_code

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._ws is not None:
                await self._ws.close()
            elif self._writer is not None:
                self._writer.close()
                await asyncio.wait_for(self._writer.wait_closed(), 2)

    def abort(self) -> None:
        """Drop the connection without a goodbye (a crash, a cable pulled)."""
        if self._ws is not None:
            self._ws.transport.abort()
        elif self._writer is not None:
            self._writer.transport.abort()


async def open_connection(url: str, *, ssl_context: ssl.SSLContext | None = None,
                          source_address: str | None = None) -> EAConnection:
    """Open a connection to the gateway at ``url`` (HELLO not sent yet), from
    ``source_address`` if given."""
    conn = EAConnection(url, ssl_context=ssl_context, source_address=source_address)
    await conn.open()
    return conn

