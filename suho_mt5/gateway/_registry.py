"""Who owns an account's session: one at a time, the newest wins.

Every session that authenticates :meth:`~SessionRegistry.claim`\\ s its account before it
reads the bus or starts a consumer; an older session of the account is closed with
``SUPERSEDED`` first, so that two sessions never share the account's consumers. This is the
one place that decides ownership: within this gateway process, and, with a
:class:`~._ownership.ClusterOwnership`, across every gateway on the same NATS cluster (a
claim here closes the account's session on another gateway, and another gateway's claim
closes it here).
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Generic, Protocol, TypeVar

from suho_mt5.protocol import CloseCode

from ._ownership import ClusterOwnership, Lease

__all__ = ["Owner", "SessionListener", "SessionRegistry"]


class Owner(Protocol):
    """What the registry needs of a session."""

    @property
    def account(self) -> uuid.UUID | None: ...

    def end(self, code: CloseCode, detail: str) -> None:
        """Ask the session to end, without waiting for it."""

    async def close(self, code: CloseCode, detail: str) -> None:
        """Ask the session to end, and wait until it has."""


class SessionListener(Protocol):
    """Told when an EA's session starts or ends here (the latest-state cache's writer, which
    records the gateway serving each EA). Synchronous and must not block."""

    def session_changed(self, tenant_id: str, account_id: uuid.UUID, connected: bool) -> None:
        ...


S = TypeVar("S", bound=Owner)

SUPERSEDED_DETAIL = "another connection opened for the account"


class SessionRegistry(Generic[S]):
    """The authenticated sessions of one gateway, by account."""

    def __init__(self, listener: SessionListener | None = None) -> None:
        self.sessions: dict[uuid.UUID, S] = {}
        self.listener = listener
        #: cluster-wide ownership (None: within this process only); :meth:`attach` sets it
        self.ownership: ClusterOwnership | None = None
        self._leases: dict[uuid.UUID, Lease] = {}
        #: the newest session waiting for each account's older session to end
        self._waiting: dict[uuid.UUID, S] = {}

    async def attach(self, ownership: ClusterOwnership) -> None:
        """Hold ownership cluster-wide from now on (the gateway, once connected)."""
        await ownership.start(self._close_local)
        self.ownership = ownership

    async def claim(self, tenant_id: str, account: uuid.UUID, session: S) -> None:
        """Make ``session`` the one session of ``account``, closing an older one first
        (here, or on the gateway that served it). Raises
        :class:`~suho_mt5.errors.BusUnavailableError` when the bucket cannot be written;
        the session then holds nothing."""
        # The newest wins, waiting ones too: a session still waiting here for the account is
        # older than this one, and is ended before it starts. An EA reconnecting in a loop
        # otherwise queued every connection here, each to start and be superseded in turn
        # (the 100,000-stream fuzz left thousands queued, most of them long disconnected).
        earlier = self._waiting.get(account)
        if earlier is not None and earlier is not session:
            earlier.end(CloseCode.SUPERSEDED, SUPERSEDED_DETAIL)
        self._waiting[account] = session
        try:
            # Again after each wait: another session may have taken the account meanwhile.
            while (old := self.sessions.get(account)) is not None and old is not session:
                await old.close(CloseCode.SUPERSEDED, SUPERSEDED_DETAIL)
                if self.sessions.get(account) is old:  # it ended without releasing: forget it
                    del self.sessions[account]
        finally:
            if self._waiting.get(account) is session:
                del self._waiting[account]
        self.sessions[account] = session
        if self.ownership is not None:
            try:
                lease = await self.ownership.acquire(tenant_id, account)
            except BaseException:
                # Failed or cancelled (the session ended while claiming): hold nothing.
                if self.sessions.get(account) is session:
                    del self.sessions[account]
                held = self.ownership.held.get(account)
                if held is not None:
                    with contextlib.suppress(Exception):
                        await self.ownership.release(held)
                raise
            if self.sessions.get(account) is not session:  # superseded here meanwhile
                await self.ownership.release(lease)
                return
            self._leases[account] = lease
        if self.listener is not None:
            self.listener.session_changed(tenant_id, account, True)

    async def release(self, tenant_id: str, account: uuid.UUID, session: S) -> None:
        """Forget ``session`` (unless a newer one has the account already)."""
        if self.sessions.get(account) is session:
            del self.sessions[account]
            lease = self._leases.pop(account, None)
            if lease is not None and self.ownership is not None:
                await self.ownership.release(lease)
            if self.listener is not None:
                self.listener.session_changed(tenant_id, account, False)

    async def _close_local(self, account: uuid.UUID, code: CloseCode, detail: str) -> None:
        """Another gateway owns ``account`` now (or this one cannot prove it does)."""
        session = self.sessions.get(account)
        if session is not None:
            await session.close(code, detail)
