"""The first packet of a connection: a HELLO in time, from an address that may still try,
with an account id and API key the authenticator accepts.

One :class:`Handshake` serves every connection of a gateway; its two collaborators, the
:class:`~._auth.Authenticator` (who is this, if the key is right) and the
:class:`~._auth.LoginLimiter` (failed logins per source address), are handed to it by the
gateway, so that a stricter admission policy changes this unit and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import NoReturn

from suho_mt5.errors import AuthenticationError, ProtocolError, SuhoError
from suho_mt5.protocol import (
    PACKET_SIZE,
    CloseCode,
    ErrorCode,
    HelloPacket,
    SessionResult,
    WelcomePacket,
    decode,
    encode,
    now_us,
)

from ._auth import Authenticator, LoginLimiter
from ._common import EA_CLOSED, ERROR_CODES, Closing, Peer, error_packet, send_now
from ._config import GatewayConfig
from ._metrics import GatewayMetrics
from ._transport import Transport

__all__ = ["Handshake", "Opened"]

log = logging.getLogger("suho_mt5.gateway")


@dataclass(frozen=True, slots=True)
class Opened:
    """A handshake that succeeded: the HELLO, who sent it, and the bytes read after it."""

    hello: HelloPacket
    peer: Peer
    rest: bytes


class Handshake:
    """Reads and checks the HELLO of a connection; :meth:`open` raises :class:`Closing` (after
    a refusing WELCOME where one is due) whenever the session must not open."""

    def __init__(self, config: GatewayConfig, metrics: GatewayMetrics,
                 authenticator: Authenticator, limiter: LoginLimiter) -> None:
        self.config = config
        self.metrics = metrics
        self.authenticator = authenticator
        self.limiter = limiter

    async def open(self, transport: Transport) -> Opened:
        try:
            hello, rest = await asyncio.wait_for(self._read_hello(transport),
                                                 self.config.hello_timeout_s)
        except TimeoutError:
            raise Closing(CloseCode.AUTH_TIMEOUT, "no HELLO in time") from None
        peer = await self._authenticate(transport, hello)
        peer.observe_skew(hello.timestamp_us)
        return Opened(hello, peer, rest)

    async def _read_hello(self, transport: Transport) -> tuple[HelloPacket, bytes]:
        buffer = b""
        while len(buffer) < PACKET_SIZE:
            data = await transport.recv()
            if not data:
                raise Closing(CloseCode.NORMAL, EA_CLOSED)
            buffer += data
        raw, rest = buffer[:PACKET_SIZE], buffer[PACKET_SIZE:]
        try:
            packet = decode(raw)
        except ProtocolError as exc:
            code = ERROR_CODES.get(type(exc).__name__, ErrorCode.MALFORMED_PACKET)
            await send_now(transport, error_packet(bytes(16), 0, code, exc.reason))
            raise Closing(CloseCode.PROTOCOL_VIOLATION, "the first packet is not a HELLO") \
                from None
        if not isinstance(packet, HelloPacket):
            await send_now(transport, error_packet(bytes(16), packet.sequence,
                                                   ErrorCode.NOT_AUTHENTICATED,
                                                   "send HELLO first"))
            raise Closing(CloseCode.PROTOCOL_VIOLATION, "the first packet is not a HELLO")
        return packet, rest

    async def _authenticate(self, transport: Transport, hello: HelloPacket) -> Peer:
        peer = transport.peer
        account = uuid.UUID(bytes=hello.account_id)
        limiter, failures = self.limiter, self.metrics.auth_failures
        if limiter.blocked(peer):
            retry_ms = int(limiter.retry_after_s(peer) * 1000) + 1
            failures.labels("rate_limited").inc()
            log.warning("HELLO from %s for %s refused: too many failed logins", peer, account)
            await self._refuse(transport, hello, SessionResult.RATE_LIMITED, retry_ms,
                               CloseCode.RATE_LIMITED, "too many failed logins")
        try:
            identity = await self.authenticator.authenticate(account, hello.api_key)
        except AuthenticationError:
            limiter.failed(peer)
            failures.labels("refused").inc()
            log.warning("HELLO from %s for %s refused: invalid account id or API key",
                        peer, account)
            await self._refuse(transport, hello, SessionResult.REFUSED, 1000,
                               CloseCode.AUTH_FAILED, "invalid account id or API key")
        except SuhoError as exc:
            failures.labels("unavailable").inc()
            log.error("HELLO from %s for %s: cannot check the key: %s", peer, account, exc)
            await self._refuse(transport, hello, SessionResult.UNAVAILABLE, 5000,
                               CloseCode.BACKEND_UNAVAILABLE, "cannot check the key now")
        return Peer(identity.account_id, identity.tenant_id, self.metrics)

    @staticmethod
    async def _refuse(transport: Transport, hello: HelloPacket, result: SessionResult,
                      retry_ms: int, code: CloseCode, text: str) -> NoReturn:
        welcome = WelcomePacket(0, now_us(), hello.account_id, 0, 0, retry_ms, result)
        await send_now(transport, encode(welcome))
        raise Closing(code, text)
