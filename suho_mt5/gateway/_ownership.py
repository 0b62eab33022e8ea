"""An account's session ownership held cluster-wide, in a JetStream key-value bucket, so that
any gateway may serve any account and the newest connection wins across all of them.

The protocol (``docs/gateway.md``, "Several gateways: who owns an account"):

- The bucket (``MT5_SESSIONS`` by default; one revision per key, entries expire after the
  lease, as many copies as the streams) holds one key per served account: the account id in
  hex, whose value names the gateway serving it (:class:`Claim`).
- **Claim**: read the key, then write it *revision-checked* (``update(last=revision read)``;
  a concurrent claim makes it fail, and the claim reads and writes again). The newest
  writer owns the account. When the entry it replaced named another live gateway, the
  claimer asks that gateway, over NATS request/reply on ``suho.gateway.<id>.supersede``, to
  close its session with ``SUPERSEDED``, and waits for the reply (sent once that session has
  ended: its last frame is on the bus) before it reads the bus for WELCOME: the same order
  as a supersede within one gateway. No responder: that gateway is gone, go on at once. No
  reply within ``handover_timeout_s``: go on, and count it (the old gateway is cut off;
  the renewal below closes its session once it can reach the bucket again).
- **Renewal**: every third of the lease, each held key is rewritten revision-checked. A
  failed check means another gateway claimed the account meanwhile (a lost handover
  request, a partition that healed): the local session is closed with ``SUPERSEDED``. A
  gateway that cannot renew for a whole lease can no longer prove its ownership: it closes
  the session with ``BACKEND_UNAVAILABLE`` (its EA reconnects, through the load balancer,
  to a gateway that can reach the bucket).
- **Release**: when the session ends its key is deleted, revision-checked, so that the
  entry of a newer owner is never removed; a key whose gateway died expires with its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from suho_mt5._nats import cluster_size, default_replicas
from suho_mt5.errors import BusUnavailableError
from suho_mt5.protocol import CloseCode

from ._config import GatewayConfig
from ._metrics import GatewayMetrics

__all__ = ["Claim", "ClusterOwnership", "Lease", "supersede_subject"]

log = logging.getLogger("suho_mt5.gateway")

#: Tries of a claim whose revision-checked write lost to a concurrent one.
_CLAIM_TRIES = 5


def supersede_subject(gateway_id: str) -> str:
    """Where gateway ``gateway_id`` takes requests to close one of its sessions."""
    return f"suho.gateway.{gateway_id}.supersede"


@dataclass(frozen=True, slots=True)
class Claim:
    """The value of an account's key: who serves it."""

    gateway: str
    """The gateway's id (hex, unique per process run)."""
    name: str
    """What people read: ``gateway@host:pid``."""
    tenant: str

    def encode(self) -> bytes:
        return json.dumps({"gateway": self.gateway, "name": self.name,
                           "tenant": self.tenant}).encode()

    @classmethod
    def decode(cls, data: bytes | None) -> Claim | None:
        try:
            value = json.loads(data or b"")
            return cls(str(value["gateway"]), str(value["name"]), str(value["tenant"]))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(slots=True)
class Lease:
    """An account held by this gateway: the revision it last wrote, and when."""

    account: uuid.UUID
    claim: Claim
    revision: int
    renewed: float
    """``time.monotonic()`` of the last successful write."""


#: Called to close the local session of an account: (account, code, detail).
Closer = Callable[[uuid.UUID, CloseCode, str], Awaitable[None]]


class ClusterOwnership:
    """This gateway's side of the protocol above; :meth:`start` before the first claim."""

    def __init__(self, nc: NatsClient, js: JetStreamContext, config: GatewayConfig,
                 metrics: GatewayMetrics) -> None:
        self.nc, self.js, self.config, self.metrics = nc, js, config, metrics
        self.gateway_id = uuid.uuid4().hex
        self.name = f"gateway@{socket.gethostname()}:{os.getpid()}"
        self.lease_s = config.session_lease_s
        self.held: dict[uuid.UUID, Lease] = {}
        self._kv: KeyValue | None = None
        self._close: Closer | None = None
        self._sub: object | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def kv(self) -> KeyValue:
        assert self._kv is not None, "ClusterOwnership.start() was not called"
        return self._kv

    async def start(self, close: Closer) -> None:
        """Open (or create) the bucket, answer supersede requests, renew the leases;
        ``close`` ends the local session of an account."""
        self._close = close
        bucket = self.config.session_bucket
        try:
            try:
                self._kv = await self.js.key_value(bucket)
            except BucketNotFoundError:
                self._kv = await self.js.create_key_value(
                    bucket=bucket, history=1, ttl=self.lease_s,
                    replicas=default_replicas(cluster_size(self.nc)),
                    description="suho-mt5: the gateway serving each account")
            status = await self._kv.status()
        except Exception as exc:
            raise BusUnavailableError(f"cannot open the session bucket {bucket}: {exc}") \
                from exc
        if status.ttl:  # an existing bucket's entries live this long: renew within it
            self.lease_s = min(self.lease_s, status.ttl)
        self._sub = await self.nc.subscribe(supersede_subject(self.gateway_id),
                                            cb=self._on_supersede)
        self._renewer = asyncio.create_task(self._renew(), name="session-leases")

    async def stop(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()  # type: ignore[attr-defined]
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- claim and release -------------------------------------------------------------------

    async def acquire(self, tenant_id: str, account: uuid.UUID) -> Lease:
        """Make this gateway the owner of ``account`` in the bucket; when another gateway
        was, have it close its session first (bounded by ``handover_timeout_s``)."""
        claim = Claim(self.gateway_id, self.name, tenant_id)
        key = account.hex
        try:
            for _ in range(_CLAIM_TRIES):
                try:
                    entry = await self.kv.get(key)
                    previous, last = Claim.decode(entry.value), entry.revision or 0
                except KeyNotFoundError as missing:  # never written, deleted or expired
                    previous = None
                    last = getattr(getattr(missing, "entry", None), "revision", None) or 0
                try:
                    revision = await self.kv.update(key, claim.encode(), last=last)
                    break
                except KeyWrongLastSequenceError:
                    continue  # another claim came between: read again
            else:
                raise BusUnavailableError(
                    f"account {account}: {_CLAIM_TRIES} concurrent claims in a row")
        except BusUnavailableError:
            raise
        except Exception as exc:
            raise BusUnavailableError(f"cannot claim account {account}: {exc}") from exc
        lease = Lease(account, claim, revision, time.monotonic())
        self.held[account] = lease
        if previous is not None and previous.gateway != self.gateway_id:
            await self._hand_over(previous, account, revision)
        return lease

    async def _hand_over(self, previous: Claim, account: uuid.UUID, revision: int) -> None:
        body = json.dumps({"account": account.hex, "revision": revision}).encode()
        try:
            await self.nc.request(supersede_subject(previous.gateway), body,
                                  timeout=self.config.handover_timeout_s)
            result = "closed"
        except NoRespondersError:
            result = "gone"
        except NatsTimeoutError:
            result = "timeout"
            log.warning("account %s: %s did not confirm the end of its session within %.1f s",
                        account, previous.name, self.config.handover_timeout_s)
        except Exception as exc:  # the bus went away meanwhile: the lease decides later
            result = "timeout"
            log.warning("account %s: handover request to %s failed: %s", account,
                        previous.name, exc)
        self.metrics.handovers.labels(result).inc()

    async def release(self, lease: Lease) -> None:
        """Forget ``lease`` and delete its key unless a newer owner wrote it."""
        if self.held.get(lease.account) is lease:
            del self.held[lease.account]
        with contextlib.suppress(Exception):  # a newer revision, or the bus is away: expiry
            await self.kv.delete(lease.account.hex, last=lease.revision)

    # -- the other gateways, and time --------------------------------------------------------

    async def _on_supersede(self, msg: Msg) -> None:
        # A session's close may wait for its GOODBYE (up to 2 s): one task per request, so
        # that a hundred EAs moving at once are not closed one after the other.
        self._spawn(self._supersede(msg))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _supersede(self, msg: Msg) -> None:
        try:
            request = json.loads(msg.data)
            account, revision = uuid.UUID(hex=request["account"]), int(request["revision"])
        except (ValueError, KeyError, TypeError):
            log.warning("bad supersede request %r", msg.data[:200])
            return
        lease = self.held.get(account)
        if lease is not None and lease.revision < revision:
            self.metrics.ownership_lost.labels("superseded").inc()
            await self._closing(account, CloseCode.SUPERSEDED,
                                "another connection opened for the account on another gateway")
        with contextlib.suppress(Exception):
            await msg.respond(b"closed")

    async def _closing(self, account: uuid.UUID, code: CloseCode, detail: str) -> None:
        assert self._close is not None
        try:
            await self._close(account, code, detail)
        except Exception:  # never let one account stop the others
            log.exception("account %s: closing its session failed", account)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            for lease in list(self.held.values()):
                if self.held.get(lease.account) is lease:
                    await self._renew_one(lease)

    async def _renew_one(self, lease: Lease) -> None:
        try:
            lease.revision = await self.kv.update(lease.account.hex, lease.claim.encode(),
                                                  last=lease.revision)
            lease.renewed = time.monotonic()
            return
        except KeyWrongLastSequenceError:
            self.metrics.ownership_lost.labels("superseded").inc()
            code, detail = (CloseCode.SUPERSEDED,
                            "another gateway claimed the account meanwhile")
        except Exception as exc:
            if time.monotonic() - lease.renewed < self.lease_s:
                log.warning("account %s: lease renewal failed (retried): %s", lease.account,
                            exc)
                return
            self.metrics.ownership_lost.labels("expired").inc()
            code, detail = (CloseCode.BACKEND_UNAVAILABLE,
                            "the session lease could not be renewed")
        log.warning("account %s: ownership lost: %s", lease.account, detail)
        self.held.pop(lease.account, None)
        self._spawn(self._closing(lease.account, code, detail))
