"""Who owns an account's session: one at a time, the newest wins.

Every session that authenticates :meth:`~SessionRegistry.claim`\\ s its account before it
reads the bus or starts a consumer; an older session of the account is closed with
``SUPERSEDED`` first, so that two sessions never share the account's consumers. This is the
one place that decides ownership: today within one gateway process.
"""

from __future__ import annotations

import uuid
from typing import Generic, Protocol, TypeVar

from suho_mt5.protocol import CloseCode

__all__ = ["Owner", "SessionListener", "SessionRegistry"]


class Owner(Protocol):
    """What the registry needs of a session."""

    @property
    def account(self) -> uuid.UUID | None: ...

    async def close(self, code: CloseCode, detail: str) -> None: ...


class SessionListener(Protocol):
    """Told when an EA's session starts or ends here (the latest-state cache's writer, which
    records the gateway serving each EA). Synchronous and must not block."""

    def session_changed(self, tenant_id: str, account_id: uuid.UUID, connected: bool) -> None:
        ...


S = TypeVar("S", bound=Owner)


class SessionRegistry(Generic[S]):
    """The authenticated sessions of one gateway, by account."""

    def __init__(self, listener: SessionListener | None = None) -> None:
        self.sessions: dict[uuid.UUID, S] = {}
        self.listener = listener

    async def claim(self, tenant_id: str, account: uuid.UUID, session: S) -> None:
        """Make ``session`` the one session of ``account``, closing an older one first."""
        old = self.sessions.get(account)
        if old is not None and old is not session:
            await old.close(CloseCode.SUPERSEDED, "another connection opened for the account")
        self.sessions[account] = session
        if self.listener is not None:
            self.listener.session_changed(tenant_id, account, True)

    def release(self, tenant_id: str, account: uuid.UUID, session: S) -> None:
        """Forget ``session`` (unless a newer one has the account already)."""
        if self.sessions.get(account) is session:
            del self.sessions[account]
            if self.listener is not None:
                self.listener.session_changed(tenant_id, account, False)
