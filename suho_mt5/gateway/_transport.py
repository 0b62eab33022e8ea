"""The two ways an EA connects, behind one small interface the session uses.

* WebSocket (``websockets``): each binary message holds one or more whole packets.
* A plain TCP or TLS stream of 144-byte packets (what MQL5's ``SocketCreate`` and
  ``SocketTlsHandshake`` can do).

A close code reaches a WebSocket client in its close frame; on a stream the GOODBYE packet
sent just before the close carries it (the session sends GOODBYE on both transports).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

__all__ = ["StreamTransport", "Transport", "WebSocketTransport", "enable_tcp_keepalive"]

_READ_SIZE = 64 * 1024


class Transport(Protocol):
    name: str
    peer: str

    async def recv(self) -> bytes:
        """The next bytes from the EA; ``b""`` when the connection has ended."""
        ...

    async def send(self, data: bytes) -> None:
        """Write ``data``; returns when the transport accepted it (flow control)."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close politely (WebSocket close frame with ``code``, or FIN)."""
        ...

    def abort(self) -> None:
        """Drop the connection at once, discarding unsent data (a client that stopped
        reading would otherwise hold the close for as long as its buffers are full)."""
        ...

    async def unresponsive(self) -> str:
        """Return (with the reason) once the peer is found unresponsive by the transport's
        own liveness check; never returns on a transport that has none."""
        ...

    def os_socket(self) -> socket.socket | None:
        """The underlying socket (options, tests)."""
        ...


class WebSocketTransport:
    """A ``websockets`` server connection. Its pings are sent here rather than by
    ``websockets``' own keepalive (``serve(ping_interval=None)``), so that a client that stops
    answering them is closed through the session, with IDLE_TIMEOUT and a GOODBYE, like any
    other dead connection."""

    name = "ws"

    def __init__(self, ws: ServerConnection, ping_interval_s: float = 20.0,
                 ping_timeout_s: float = 20.0) -> None:
        self.ws = ws
        addr = ws.remote_address
        self.peer = str(addr[0]) if addr else "?"
        self.ping_interval_s = ping_interval_s
        self.ping_timeout_s = ping_timeout_s

    async def recv(self) -> bytes:
        try:
            data = await self.ws.recv()
        except ConnectionClosed:
            return b""
        # A text message is never a packet: hand the bytes on, the decoder rejects them.
        return data if isinstance(data, bytes) else data.encode("utf-8", "replace") or b" "

    async def send(self, data: bytes) -> None:
        await self.ws.send(data)

    async def close(self, code: int, reason: str) -> None:
        await self.ws.close(code, reason[:120])

    def abort(self) -> None:
        self.ws.transport.abort()

    async def unresponsive(self) -> str:
        if self.ping_interval_s <= 0:
            await asyncio.Future()  # pings disabled: wait forever
        while True:
            await asyncio.sleep(self.ping_interval_s)
            try:
                pong = await self.ws.ping()
            except ConnectionClosed:
                await asyncio.Future()  # recv() reports the end
            try:
                await asyncio.wait_for(pong, self.ping_timeout_s)
            except TimeoutError:
                return f"no pong within {self.ping_timeout_s:g} s"
            except ConnectionClosed:
                await asyncio.Future()

    def os_socket(self) -> socket.socket | None:
        sock: socket.socket | None = self.ws.transport.get_extra_info("socket")
        return sock


class StreamTransport:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, tls: bool,
        peer: str | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.name = "tls" if tls else "tcp"
        if peer is None:  # not behind a proxy that said who the client is
            peername = writer.get_extra_info("peername")
            peer = str(peername[0]) if peername else "?"
        self.peer = peer

    async def recv(self) -> bytes:
        try:
            return await self.reader.read(_READ_SIZE)
        except (ConnectionError, OSError):
            return b""

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def close(self, code: int, reason: str) -> None:
        try:
            self.writer.close()
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    def abort(self) -> None:
        self.writer.transport.abort()

    async def unresponsive(self) -> str:
        # TCP keepalive (enable_tcp_keepalive) is the kernel's: a dead peer makes recv() fail.
        await asyncio.Future()
        return ""

    def os_socket(self) -> socket.socket | None:
        sock: socket.socket | None = self.writer.get_extra_info("socket")
        return sock


def enable_tcp_keepalive(sock: socket.socket | None, idle_s: int = 30, interval_s: int = 10,
                         count: int = 3) -> None:
    """TCP keepalive on an accepted socket: a peer that vanished without a FIN is detected
    in about ``idle_s + interval_s * count`` seconds even when no packet is due (the
    read then fails and the session ends). Also TCP_NODELAY: packets are small and urgent."""
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", idle_s), ("TCP_KEEPINTVL", interval_s),
                        ("TCP_KEEPCNT", count)):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, max(1, int(value)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
