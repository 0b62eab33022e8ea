"""A lean pull-consumer fetch on nats-py's public API.

nats-py's ``PullSubscription.fetch`` waits for every message of a batch with its own
``asyncio.wait_for`` (a task and a timer per message): with one packet per message that, not
the server, caps the bridge (docs/ingest.md, "Measured"). This fetch sends the same pull
requests (``$JS.API.CONSUMER.MSG.NEXT.<stream>.<durable>``) and collects the replies with a
subscription callback, which nats-py calls for each message without a task, and waits once
per batch.

Requests: a ``no_wait`` request for a batch returns what the stream has now (then a ``404``
status if that is less than the batch); only when it returns nothing does a lingering
request (``expires``) wait for new messages, and the fetch returns as soon as the first
arrives. Whatever a lingering request delivers later is kept for the next fetch;
:meth:`Puller.release` naks what is left when the worker stops, so another bridge gets it at
once instead of after AckWait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any

__all__ = ["Puller"]

_STATUS = "Status"


class Puller:
    """Fetches batches of a durable pull consumer for one worker."""

    def __init__(self, nc: Any, stream: str, durable: str, api_prefix: str = "$JS.API") -> None:
        self._nc = nc
        self._subject = f"{api_prefix}.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox: str = nc.new_inbox()
        self._buf: deque[Any] = deque()
        self._sub: Any = None
        self._event = asyncio.Event()
        self._want = 0  # wake the waiting fetch once the buffer holds this many
        self._no_wait_open = False
        self._linger_left = 0  # messages the lingering request may still deliver
        self._linger_until = 0.0
        #: The last error status (409 ...) the server answered with, for the log.
        self.last_status: str | None = None

    async def start(self) -> Puller:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)
        return self

    async def _on_message(self, msg: Any) -> None:
        headers = msg.headers
        status = headers.get(_STATUS) if headers else None
        if status and not msg.data:
            if status == "404" or status == "408":
                # 404: the no_wait request is done; 408: the lingering request expired.
                if self._no_wait_open and status == "404":
                    self._no_wait_open = False
                else:
                    self._linger_left = 0
            elif status != "100":  # 100: an idle heartbeat (none are asked for)
                self.last_status = f"{status} {headers.get('Description', '')}".strip()
                self._no_wait_open = False
                self._linger_left = 0
            self._event.set()
            return
        self._buf.append(msg)
        if not self._no_wait_open and self._linger_left > 0:
            self._linger_left -= 1
        if len(self._buf) >= self._want:
            self._event.set()

    async def _request(self, batch: int, expires: float | None) -> None:
        req: dict[str, Any] = {"batch": batch}
        if expires is None:
            req["no_wait"] = True
            self._no_wait_open = True
        else:
            req["expires"] = int(expires * 1e9)
            self._linger_left = batch
            self._linger_until = time.monotonic() + expires
        await self._nc.publish(self._subject, json.dumps(req).encode(), reply=self._inbox)

    async def _wait(self, want: int, until: float, done: Any) -> None:
        self._want = want
        while not done():
            left = until - time.monotonic()
            if left <= 0:
                return
            self._event.clear()
            if done():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), left)

    def _lingering(self) -> bool:
        return self._linger_left > 0 and time.monotonic() < self._linger_until

    async def fetch(self, batch: int, timeout: float) -> list[Any]:
        """Up to ``batch`` messages; ``TimeoutError`` if none came within ``timeout``."""
        until = time.monotonic() + timeout
        if not self._buf:
            if not self._lingering():
                await self._request(batch, None)
                await self._wait(batch, until,
                                 lambda: not self._no_wait_open or len(self._buf) >= batch)
                self._no_wait_open = False
            if not self._buf and not self._lingering():
                # Expire a little before the caller gives up, so requests do not pile up.
                await self._request(batch, max(0.05, until - time.monotonic() - 0.05))
            if not self._buf:
                await self._wait(1, until, lambda: bool(self._buf))
        if not self._buf:
            raise TimeoutError("no messages")
        n = min(batch, len(self._buf))
        return [self._buf.popleft() for _ in range(n)]

    async def release(self) -> None:
        """Unsubscribe and nak what was delivered but never handed out."""
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None
        while self._buf:
            msg = self._buf.popleft()
            with contextlib.suppress(Exception):
                await msg.nak()
