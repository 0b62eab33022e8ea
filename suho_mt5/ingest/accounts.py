"""What the bridge knows about accounts: who they are (read from ``mt5_user_accounts``, kept
for a while) and the margin mode their own snapshots reported.

Accounts found are trusted for ``ttl_s`` (30 s: a deactivation takes effect within that);
unknown ones are asked again every batch, so an account registered a moment ago is never
refused for long.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["ACCOUNT_TTL_S", "AccountCache", "AccountInfo", "read_accounts"]

#: Seconds an account lookup is trusted (the delay of a deactivation).
ACCOUNT_TTL_S: Final = 30.0

_READ = ("SELECT account_id, tenant_id, is_active, margin_mode, broker_name"
         " FROM public.mt5_user_accounts WHERE account_id = ANY(%s)")


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What the bridge needs to know about an account."""

    account_id: uuid.UUID
    tenant_id: str
    is_active: bool
    margin_mode: str | None
    broker_name: str


async def read_accounts(conn: Any, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, AccountInfo]:
    """The registered accounts among ``ids``, read on ``conn`` (a psycopg
    ``AsyncConnection``, whose transaction this ends)."""
    async with conn.cursor() as cur:
        await cur.execute(_READ, (list(ids),))
        found = {r[0]: AccountInfo(*r) for r in await cur.fetchall()}
    await conn.rollback()
    return found


Reader = Callable[[list[uuid.UUID]], Awaitable[Mapping[uuid.UUID, AccountInfo]]]


class AccountCache:
    """Account lookups, shared by a bridge's workers.

    >>> import asyncio
    >>> a = uuid.UUID(int=1)
    >>> async def read(ids):
    ...     return {a: AccountInfo(a, "acme", True, "netting", "Broker")}
    >>> cache = AccountCache()
    >>> asyncio.run(cache.refresh({a, uuid.UUID(int=2)}, read))
    >>> cache.known[a].tenant_id, cache.known[uuid.UUID(int=2)]
    ('acme', None)
    >>> cache.report_margin_mode(a, "hedging"); cache.margin_modes()[a]
    'hedging'
    """

    def __init__(self, ttl_s: float = ACCOUNT_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[uuid.UUID, tuple[float, AccountInfo | None]] = {}
        self.known: dict[uuid.UUID, AccountInfo | None] = {}
        #: Margin modes the snapshots themselves reported (they win over the account row).
        self._reported: dict[uuid.UUID, str] = {}

    def stale(self, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``ids`` to read again: unknown, or known longer than ``ttl_s``."""
        now = time.monotonic()
        entries = self._entries
        return {a for a in ids if (e := entries.get(a)) is None or e[1] is None
                or now - e[0] > self.ttl_s}

    async def refresh(self, ids: Iterable[uuid.UUID], read: Reader) -> None:
        """Read the stale ones of ``ids`` with ``read`` (called only when some are)."""
        now = time.monotonic()
        stale = self.stale(ids)
        if not stale:
            return
        found = await read(sorted(stale))
        for a in stale:
            info = found.get(a)
            self._entries[a] = (now, info)
            self.known[a] = info

    def broker_of(self, account: uuid.UUID) -> str | None:
        """The broker of a known account (for its symbol mapping), else None."""
        info = self.known.get(account)
        return info.broker_name if info is not None else None

    def report_margin_mode(self, account: uuid.UUID, mode: str) -> None:
        self._reported[account] = mode

    def margin_modes(self) -> dict[uuid.UUID, str | None]:
        """Each account's margin mode: as its snapshots reported it, else its row's."""
        modes = {a: (info.margin_mode if info is not None else None)
                 for a, info in self.known.items()}
        modes.update(self._reported)
        return modes
