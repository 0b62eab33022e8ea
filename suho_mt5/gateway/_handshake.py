"""The first packet of a connection: a HELLO in time, from an address that may still try,
with an account id and API key the authenticator accepts.

One :class:`Handshake` serves every connection of a gateway; its collaborators are handed to
it by the gateway, so that a stricter admission policy changes this unit and nothing else:
the :class:`~._auth.VerifiedKeys` (an EA that comes back costs nothing), the
:class:`~._auth.LoginLimiter` (key checks per source address, running ones included) and
the :class:`~._auth.KeyChecks` (bounded, prioritised work of the
:class:`~._auth.Authenticator`). A client that leaves while its check waits is dropped
from the queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import NoReturn

from suho_mt5.db import AccountIdentity
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

from ._auth import AccountDirectory, KeyChecks, KeyChecksBusy, LoginLimiter, VerifiedKeys
from ._common import EA_CLOSED, ERROR_CODES, Closing, Peer, error_packet, send_now
from ._config import GatewayConfig
from ._metrics import GatewayMetrics
from ._transport import Transport

__all__ = ["Handshake", "Opened", "SampledLog"]

log = logging.getLogger("suho_mt5.gateway")

#: bytes a client may send while its key is checked (kept for the session); then it is
#: no longer read until the check ends (TCP flow control holds the rest)
_EARLY_BYTES = 256 * 1024


class SampledLog:
    """At most one log line per ``every_s`` for a kind of event, saying how many were not
    logged: a flood of refusals must not become a flood of log lines."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def __call__(self, kind: str, level: int, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -1e9) < self.every_s:
            self._skipped[kind] = self._skipped.get(kind, 0) + 1
            return
        skipped = self._skipped.pop(kind, 0)
        self._last[kind] = now
        if skipped:
            message += f" ({skipped} more like it since the last such line)"
        log.log(level, message, *args)


@dataclass(frozen=True, slots=True)
class Opened:
    """A handshake that succeeded: the HELLO, who sent it, and the bytes read after it."""

    hello: HelloPacket
    peer: Peer
    rest: bytes


#: The GOODBYE detail of a connection refused by the per-address cap.
CROWDED = "too many connections not authenticated"


class Handshake:
    """Reads and checks the HELLO of a connection; :meth:`open` raises :class:`Closing` (after
    a refusing WELCOME where one is due) whenever the session must not open."""

    def __init__(self, config: GatewayConfig, metrics: GatewayMetrics, keys: VerifiedKeys,
                 limiter: LoginLimiter, checks: KeyChecks,
                 directory: AccountDirectory | None = None) -> None:
        self.config = config
        self.directory = directory or AccountDirectory()
        self.metrics = metrics
        self.keys = keys
        self.limiter = limiter
        self.checks = checks
        self.sampled = SampledLog()
        self._unauthenticated: dict[str, int] = {}

    def crowded(self, address: str) -> bool:
        """Whether ``address`` has as many connections not authenticated yet as it may
        (``max_unauthenticated_per_address``): if so, the refusal is counted and logged
        (sampled), and the caller closes the new connection at once."""
        pending = self._unauthenticated.get(address, 0)
        if pending < self.config.max_unauthenticated_per_address:
            return False
        self.metrics.auth_failures.labels("too_many_connections").inc()
        self.sampled("sockets", logging.WARNING,
                     "connection from %s closed: %d connections from it not "
                     "authenticated yet", address, pending)
        return True

    async def open(self, transport: Transport) -> Opened:
        address = transport.peer
        if self.crowded(address):
            raise Closing(CloseCode.RATE_LIMITED, CROWDED)
        self._unauthenticated[address] = self._unauthenticated.get(address, 0) + 1
        try:
            try:
                hello, rest = await asyncio.wait_for(self._read_hello(transport),
                                                     self.config.hello_timeout_s)
            except TimeoutError:
                self.sampled("timeout", logging.WARNING, "connection from %s: no HELLO in %g s",
                             address, self.config.hello_timeout_s)
                raise Closing(CloseCode.AUTH_TIMEOUT, "no HELLO in time") from None
            peer, early = await self._authenticate(transport, hello)
        finally:
            left = self._unauthenticated.pop(address) - 1
            if left:
                self._unauthenticated[address] = left
        peer.observe_skew(hello.timestamp_us)
        return Opened(hello, peer, rest + early)

    @property
    def unauthenticated(self) -> int:
        """Connections that have not authenticated yet."""
        return sum(self._unauthenticated.values())

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
            self.sampled("not_hello", logging.WARNING,
                         "connection from %s: the first packet is not a HELLO", transport.peer)
            await send_now(transport, error_packet(bytes(16), 0, code, exc.reason))
            raise Closing(CloseCode.PROTOCOL_VIOLATION, "the first packet is not a HELLO") \
                from None
        if not isinstance(packet, HelloPacket):
            await send_now(transport, error_packet(bytes(16), packet.sequence,
                                                   ErrorCode.NOT_AUTHENTICATED,
                                                   "send HELLO first"))
            raise Closing(CloseCode.PROTOCOL_VIOLATION, "the first packet is not a HELLO")
        return packet, rest

    async def _authenticate(self, transport: Transport, hello: HelloPacket
                            ) -> tuple[Peer, bytes]:
        account = uuid.UUID(bytes=hello.account_id)
        identity = self.keys.get(account, hello.api_key)
        if identity is not None:  # verified before, and re-read since: no check, no limit
            return Peer(identity.account_id, identity.tenant_id, self.metrics), b""
        peer, failures = transport.peer, self.metrics.auth_failures
        known = self.keys.known(account)
        # Past its address's budget, an account that exists (authenticated here before, or
        # listed in the directory) still has a few checks of its own: EAs behind one NAT
        # are not locked out by a neighbour, even after a gateway restart.
        admitted = await self.limiter.admit(peer, account,
                                            known=known or self.directory.listed(account))
        if admitted is None:
            # The cheap refusal: no key check, no database, a sampled log line.
            retry_ms = int(self.limiter.retry_after_s(peer) * 1000) + 1
            failures.labels("rate_limited").inc()
            self.sampled("rate_limited", logging.WARNING,
                         "HELLO from %s for %s refused: too many failed logins", peer, account)
            # A pause before the answer (a timer, no work): a client that retries as soon
            # as it is refused makes a connection a second, not hundreds.
            await asyncio.sleep(min(retry_ms / 1000, self.config.rate_limited_delay_s))
            await self._refuse(transport, hello, SessionResult.RATE_LIMITED, retry_ms,
                               CloseCode.RATE_LIMITED, "too many failed logins")
        failed = False
        directory = self.directory
        checked = known or directory.may_exist(account) or directory.check_anyway()
        try:
            if not checked:
                # No such account (its digest is not in the directory): refused after a
                # pause like a real refusal's, with no key check and no database.
                await asyncio.sleep(directory.pause_s())
                raise AuthenticationError("invalid account id or API key")
            identity, early = await self._check_while_connected(transport, account,
                                                                hello.api_key, known)
        except AuthenticationError:
            failed = True
            failures.labels("refused").inc()
            self.sampled("refused", logging.WARNING,
                         "HELLO from %s for %s refused: invalid account id or API key",
                         peer, account)
            await self._refuse(transport, hello, SessionResult.REFUSED, 1000,
                               CloseCode.AUTH_FAILED, "invalid account id or API key")
        except KeyChecksBusy as exc:
            failures.labels("busy").inc()
            self.sampled("busy", logging.WARNING, "HELLO from %s for %s: %s", peer, account,
                         exc)
            await self._refuse(transport, hello, SessionResult.UNAVAILABLE, 1000,
                               CloseCode.BACKEND_UNAVAILABLE, "busy: try again")
        except SuhoError as exc:
            failures.labels("unavailable").inc()
            self.sampled("unavailable", logging.ERROR,
                         "HELLO from %s for %s: cannot check the key: %s", peer, account, exc)
            await self._refuse(transport, hello, SessionResult.UNAVAILABLE, 5000,
                               CloseCode.BACKEND_UNAVAILABLE, "cannot check the key now")
        finally:
            self.limiter.finish(admitted, failed=failed)
        self.keys.put(account, hello.api_key, identity)
        return Peer(identity.account_id, identity.tenant_id, self.metrics), early

    async def _check_while_connected(self, transport: Transport, account: uuid.UUID,
                                     api_key: str, known: bool
                                     ) -> tuple[AccountIdentity, bytes]:
        """The key check, while reading the connection: a client that leaves meanwhile
        gives up its place in the queue. What it sent meanwhile is returned with the
        identity (the session reads it first)."""
        check = asyncio.ensure_future(self.checks.check(account, api_key, known=known))
        early = bytearray()
        try:
            while not check.done() and len(early) < _EARLY_BYTES:
                reading = asyncio.ensure_future(transport.recv())
                await asyncio.wait((check, reading), return_when=asyncio.FIRST_COMPLETED)
                if not reading.done():
                    reading.cancel()
                    await asyncio.gather(reading, return_exceptions=True)
                    if reading.cancelled():
                        break
                data = reading.result()
                if not data:
                    raise Closing(CloseCode.NORMAL, EA_CLOSED)
                early += data
            return await check, bytes(early)
        finally:
            if not check.done():
                check.cancel()
            # Retrieved whatever happened (the client may have left as the check ended).
            await asyncio.gather(check, return_exceptions=True)

    @staticmethod
    async def _refuse(transport: Transport, hello: HelloPacket, result: SessionResult,
                      retry_ms: int, code: CloseCode, text: str) -> NoReturn:
        welcome = WelcomePacket(0, now_us(), hello.account_id, 0, 0, retry_ms, result)
        await send_now(transport, encode(welcome))
        raise Closing(code, text)
