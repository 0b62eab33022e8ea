"""Whether the EA at the other end is still there: the idle, ACK and write deadlines, a
keepalive ACK when nothing else was sent, and the transport's own ping (WebSocket ping/pong;
TCP keepalive is set on the socket by the server)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from suho_mt5.protocol import CloseCode

from ._common import Closing
from ._config import GatewayConfig
from ._sender import Sender
from ._transport import Transport

__all__ = ["Liveness"]


@dataclass(frozen=True, slots=True)
class Liveness:
    """:meth:`watch` and :meth:`ping` are session tasks; each raises :class:`Closing` when a
    deadline passes."""

    config: GatewayConfig
    transport: Transport
    sender: Sender
    #: ``time.monotonic()`` of the last bytes read
    last_read: Callable[[], float]
    #: ``time.time()`` the oldest unacknowledged packet was written (0: none)
    oldest_unacked: Callable[[], float]
    #: the keepalive packet (a cumulative ACK)
    keepalive: Callable[[], bytes]

    async def watch(self) -> None:
        cfg = self.config
        tick = min(1.0, cfg.heartbeat_interval_s / 4, cfg.ack_timeout_s / 4)
        # A random phase: after a restart hundreds of sessions open within a second, and
        # their checks would otherwise all run in the same event-loop turn, every tick,
        # holding up whatever signal arrives then.
        await asyncio.sleep(tick * random.random())
        while True:
            await asyncio.sleep(tick)
            mono, now = time.monotonic(), time.time()
            if mono - self.last_read() > cfg.idle_timeout_s:
                raise Closing(CloseCode.IDLE_TIMEOUT,
                              f"nothing received for {cfg.idle_timeout_s:g} s")
            oldest = self.oldest_unacked()
            if oldest and now - oldest > cfg.ack_timeout_s:
                raise Closing(CloseCode.SLOW_CONSUMER, f"no ACK for {cfg.ack_timeout_s:g} s")
            sender = self.sender
            if mono - sender.last_write > cfg.heartbeat_interval_s and not sender.queued:
                sender.enqueue(self.keepalive())
                sender.last_write = mono

    async def ping(self) -> None:
        """The transport's own liveness check ends the session like the idle deadline."""
        reason = await self.transport.unresponsive()
        raise Closing(CloseCode.IDLE_TIMEOUT, reason)
