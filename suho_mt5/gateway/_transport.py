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


class WebSocketTransport:
    name = "ws"

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        addr = ws.remote_address
        self.peer = str(addr[0]) if addr else "?"

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


class StreamTransport:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, tls: bool
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.name = "tls" if tls else "tcp"
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "?"

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


def enable_tcp_keepalive(writer: asyncio.StreamWriter, idle_s: int = 30, interval_s: int = 10,
                         count: int = 3) -> None:
    """TCP keepalive: a peer that vanished without a FIN is detected in about
    ``idle_s + interval_s * count`` seconds even when no packet is due."""
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", idle_s), ("TCP_KEEPINTVL", interval_s),
                        ("TCP_KEEPCNT", count)):
        option = getattr(socket, name, None)
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
