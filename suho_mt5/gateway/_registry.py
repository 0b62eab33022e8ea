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

__all__ = ["Owner", "SessionRegistry"]


class Owner(Protocol):
    """What the registry needs of a session."""

    @property
    def account(self) -> uuid.UUID | None: ...

    async def close(self, code: CloseCode, detail: str) -> None: ...


S = TypeVar("S", bound=Owner)


class SessionRegistry(Generic[S]):
    """The authenticated sessions of one gateway, by account."""

    def __init__(self) -> None:
        self.sessions: dict[uuid.UUID, S] = {}

    async def claim(self, account: uuid.UUID, session: S) -> None:
        """Make ``session`` the one session of ``account``, closing an older one first."""
        old = self.sessions.get(account)
        if old is not None and old is not session:
            await old.close(CloseCode.SUPERSEDED, "another connection opened for the account")
        self.sessions[account] = session

    def release(self, account: uuid.UUID, session: S) -> None:
        """Forget ``session`` (unless a newer one has the account already)."""
        if self.sessions.get(account) is session:
            del self.sessions[account]
