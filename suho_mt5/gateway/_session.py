"""One EA connection, whatever its transport: the parts of a session, wired and run.

The life of a session (``docs/gateway.md`` and ``docs/protocol.md``, "Session"):

1. :class:`~._handshake.Handshake`: the first packet must be a HELLO within
   ``hello_timeout_s``; the source address's failed logins, then the key are checked;
2. :class:`~._registry.SessionRegistry`: the account's older session, if any, is closed
   (``SUPERSEDED``); WELCOME reports the highest sequence stored on the bus;
3. :class:`~._inbound.Inbound`: EA packets checked, published in frames, acknowledged;
4. :class:`~._outbound.Outbound`: one JetStream consumer per channel, the EA's ACK acks it;
5. :class:`~._liveness.Liveness`: idle, ACK and write deadlines, keepalives, pings;

all writing through one :class:`~._sender.Sender`. The gateway hands every session the
collaborators it shares (handshake, bus, registry): a session never reaches into the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from suho_mt5.errors import BusUnavailableError
from suho_mt5.protocol import (
    CloseCode,
    GoodbyePacket,
    SessionResult,
    WelcomePacket,
    encode,
    now_us,
)

from ._bus import SessionBus
from ._common import EA_CLOSED, Closing, Ending, Peer, cancel_and_wait, detail, send_now
from ._config import GatewayConfig
from ._handshake import Handshake, Opened
from ._inbound import Inbound
from ._liveness import Liveness
from ._metrics import GatewayMetrics
from ._outbound import Outbound
from ._registry import SessionRegistry
from ._sender import Sender
from ._transport import Transport

__all__ = ["Session", "SessionServices"]

log = logging.getLogger("suho_mt5.gateway")
_T = TypeVar("_T")


class Session:
    """One connection; :meth:`run` returns when it is over (it never raises)."""

    def __init__(self, transport: Transport, services: SessionServices) -> None:
        self.transport = transport
        self.config, self.metrics = services.config, services.metrics
        self.handshake, self.bus = services.handshake, services.bus
        self.registry = services.registry
        self.peer: Peer | None = None
        self.ending = Ending()
        self.sender = Sender(transport, self.config, self.metrics)
        self.inbound: Inbound | None = None
        self.outbound: Outbound | None = None
        self._opened_at = time.monotonic()
        self._claimed = False
        self._counted = False
        self._done = asyncio.Event()

    @property
    def account(self) -> uuid.UUID | None:
        """The authenticated account (None until the handshake succeeded)."""
        return self.peer.account_id if self.peer is not None else None

    async def run(self) -> None:
        self.metrics.connections.labels(self.transport.name).inc()
        try:
            await self._run()
        except Closing as closing:
            self.ending.fail(closing)
        except Exception as exc:  # the session must end cleanly whatever happened
            log.exception("session %s: unexpected error", self._who())
            self.ending.fail(Closing(CloseCode.BACKEND_UNAVAILABLE, str(exc)))
        finally:
            await self._finish()

    def end(self, code: CloseCode, detail: str) -> None:
        """Ask the session to end with ``code``, without waiting for it."""
        self.ending.fail(Closing(code, detail))

    async def close(self, code: CloseCode, detail: str) -> None:
        """Ask the session to end with ``code`` (another task: superseded, shutdown), and
        wait until it has."""
        self.end(code, detail)
        await self._done.wait()

    async def _run(self) -> None:
        opened = await self.handshake.open(self.transport)
        self.peer = opened.peer
        try:
            inbound, outbound = await self._unless_ended(self._begin(opened))
        except BusUnavailableError as exc:
            raise Closing(CloseCode.BACKEND_UNAVAILABLE, str(exc)) from exc
        self.metrics.connected.labels(self.transport.name).inc()
        self._counted = True
        log.info("session %s opened from %s over %s; last stored sequence %d", self._who(),
                 self.transport.peer, self.transport.name, inbound.last_stored)
        liveness = Liveness(self.config, self.transport, self.sender,
                            lambda: inbound.last_read, outbound.oldest_written,
                            inbound.ack_packet)
        tasks = [
            asyncio.create_task(inbound.read(), name="reader"),
            asyncio.create_task(inbound.publish(), name="publisher"),
            asyncio.create_task(self.sender.run(), name="writer"),
            asyncio.create_task(liveness.watch(), name="watchdog"),
            asyncio.create_task(liveness.ping(), name="pinger"),
            asyncio.create_task(self.ending.event.wait(), name="closed"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if isinstance(error, Closing):
                    self.ending.fail(error)
                elif error is not None:
                    raise error
        finally:
            await cancel_and_wait(tasks)

    async def _begin(self, opened: Opened) -> tuple[Inbound, Outbound]:
        await self.registry.claim(opened.peer.tenant_id, opened.peer.account_id, self)
        self._claimed = True
        return await self._start(opened)

    async def _unless_ended(self, start: Coroutine[Any, Any, _T]) -> _T:
        """Run ``start`` unless the session is ended meanwhile (superseded, shut down):
        then it is cancelled and the ending's reason raised. What it made is wound up by
        :meth:`_wind_up`, as for any session.

        Start-up waits on the bus (the account's older session, its ownership, the last
        stored sequence, one consumer per channel). An EA reconnecting in a loop supersedes
        its session while it starts; if that session finished starting before it ended,
        every next one waited for it, and a reconnect storm chained thousands of sessions
        (the 100,000-stream fuzz left ~6,500 that never ended)."""
        task = asyncio.ensure_future(start)
        ended = asyncio.ensure_future(self.ending.event.wait())
        try:
            await asyncio.wait((task, ended), return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait((task, ended))
        reason = self.ending.reason
        if reason is not None and (task.cancelled() or task.exception() is None):
            # Ended while starting (Python 3.11's wait_for may return a reply that came with
            # the cancellation, so start-up can finish all the same). Raised fresh: the
            # kept one would get a traceback holding this frame.
            raise reason.fresh()
        return task.result()

    async def _start(self, opened: Opened) -> tuple[Inbound, Outbound]:
        """WELCOME with the highest sequence on the bus, then the outbound consumers."""
        peer, hello, cfg = opened.peer, opened.hello, self.config
        last_stored = await self.bus.last_stored(peer.tenant_id, peer.account_id)
        # WELCOME goes first in the send queue: the consumers below start delivering at
        # once, and their packets must follow it.
        self.sender.enqueue(encode(WelcomePacket(
            0, now_us(), peer.account_bytes, last_stored, int(cfg.heartbeat_interval_s * 1000),
            0, SessionResult.ACCEPTED)))
        outbound = self.outbound = Outbound(peer, self.bus, self.sender, self.ending, cfg,
                                            self.metrics)
        inbound = self.inbound = Inbound(
            peer, self.transport, self.bus, self.sender, outbound.on_ack, self.ending, cfg,
            self.metrics, last_stored=last_stored, last_read=self._opened_at,
            buffered=opened.rest)
        await outbound.start({"signal": hello.last_signal_sequence,
                              "command": hello.last_command_sequence,
                              "config": hello.last_config_sequence})
        return inbound, outbound

    def _who(self) -> str:
        return str(self.peer) if self.peer is not None else f"<{self.transport.peer}>"

    async def _finish(self) -> None:
        try:
            await self._wind_up()
        finally:
            # Even if this task is cancelled on the way (the gateway stopping while the
            # cluster-wide release waits on JetStream): the connection is dropped, never
            # leaked, and whoever waits in close() is released.
            with contextlib.suppress(Exception):
                self.transport.abort()
            self._done.set()

    async def _wind_up(self) -> None:
        closing = self.ending.reason or Closing(CloseCode.NORMAL, "")
        code = closing.code
        self.metrics.closes.labels(str(int(code))).inc()
        if code is CloseCode.SLOW_CONSUMER:
            self.metrics.slow_clients.inc()
        if self.peer is None:
            # Never authenticated: the handshake logged why, sampled (a flood of refusals
            # must not become a flood of log lines).
            log.debug("connection %s closed: %d %s: %s", self._who(), code, code.name,
                      closing.detail)
        elif code not in (CloseCode.NORMAL, CloseCode.GOING_AWAY):
            log.warning("session %s closed: %d %s: %s", self._who(), code, code.name,
                        closing.detail)
        else:
            log.info("session %s closed: %s", self._who(), closing.detail)
        if self.inbound is not None:
            self.inbound.stop()
        if self.outbound is not None:
            await self.outbound.close()
        peer = self.peer
        if peer is not None:
            peer.forget_skew()
        if self._counted:
            self.metrics.connected.labels(self.transport.name).dec()
        if self._claimed and peer is not None:
            await self.registry.release(peer.tenant_id, peer.account_id, self)
        await self._say_goodbye(closing, peer)

    async def _say_goodbye(self, closing: Closing, peer: Peer | None) -> None:
        code = closing.code
        if closing.detail != EA_CLOSED:
            # A slow consumer's buffers may be full: its GOODBYE gets one second, then the
            # connection is dropped (abort in _finish) so that it cannot hold gateway memory.
            patience = 1.0 if code is CloseCode.SLOW_CONSUMER else 2.0
            account = peer.account_bytes if peer is not None else bytes(16)
            goodbye = GoodbyePacket(0, now_us(), account, closing.ref_sequence, code,
                                    detail(closing.detail))
            await send_now(self.transport, encode(goodbye), patience)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.transport.close(int(code), closing.detail),
                                       patience)


@dataclass(frozen=True, slots=True)
class SessionServices:
    """What every session of a gateway shares; the gateway builds it once it is connected."""

    config: GatewayConfig
    metrics: GatewayMetrics
    handshake: Handshake
    bus: SessionBus
    registry: SessionRegistry[Session]
