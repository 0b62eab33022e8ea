"""Checking an EA's account id and API key without blocking the event loop.

:class:`DatabaseAuthenticator` runs :func:`suho_mt5.db.authenticate` (one ``verify_api_key``
whatever the account: a bcrypt verification of ~170 ms) in a small thread pool with a
connection pool of the same size. :class:`LoginLimiter` bounds failed attempts per source
address, so a flood of bad logins costs the database nothing after the first few.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from suho_mt5.db import AccountIdentity, authenticate, is_single_backend, make_engine
from suho_mt5.errors import AuthenticationError

__all__ = [
    "Authenticator",
    "DatabaseAuthenticator",
    "LoginLimiter",
    "StaticAuthenticator",
]

_REFUSED = "invalid account id or API key"


class Authenticator(Protocol):
    """What the gateway asks: who is this account, if the key is right."""

    async def authenticate(self, account_id: uuid.UUID, api_key: str) -> AccountIdentity:
        """The identity, or raise ``AuthenticationError`` (or ``DatabaseError``)."""
        ...

    def close(self) -> None: ...


class _VerifiedCache:
    """(account, key) pairs verified recently, by SHA-256 digest (the key itself is not kept)."""

    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, AccountIdentity]] = OrderedDict()

    @staticmethod
    def _digest(account_id: uuid.UUID, api_key: str) -> bytes:
        return hashlib.sha256(account_id.bytes + api_key.encode()).digest()

    def get(self, account_id: uuid.UUID, api_key: str) -> AccountIdentity | None:
        if self.ttl_s <= 0:
            return None
        digest = self._digest(account_id, api_key)
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, account_id: uuid.UUID, api_key: str, identity: AccountIdentity) -> None:
        if self.ttl_s <= 0:
            return
        entries = self._entries
        entries[self._digest(account_id, api_key)] = (time.monotonic() + self.ttl_s, identity)
        while len(entries) > self.max_entries:
            entries.popitem(last=False)


class DatabaseAuthenticator:
    """:func:`suho_mt5.db.authenticate` on a thread pool (the database does the slow hash).

    ``url`` should be a login of a role that may call ``mt5_authenticate`` (``mt5_app``).
    """

    def __init__(self, url: str, *, workers: int = 4, cache_ttl_s: float = 60.0) -> None:
        engine = make_engine(url)
        if is_single_backend(engine):
            # The PGlite engine serves one client at a time: a connection per check, one
            # check at a time, so the bridge sharing it is never locked out for long.
            workers = 1
        else:
            engine.dispose()
            engine = make_engine(url, pool_size=workers, max_overflow=0, pool_pre_ping=True)
        self._engine = engine
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="suho-auth")
        self._cache = _VerifiedCache(cache_ttl_s)

    async def authenticate(self, account_id: uuid.UUID, api_key: str) -> AccountIdentity:
        cached = self._cache.get(account_id, api_key)
        if cached is not None:
            return cached
        loop = asyncio.get_running_loop()
        identity = await loop.run_in_executor(
            self._pool, authenticate, self._engine, account_id, api_key
        )
        self._cache.put(account_id, api_key, identity)
        return identity

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._engine.dispose()


class StaticAuthenticator:
    """Accounts and keys from a mapping: for benchmarks and demos without a database.

    >>> import asyncio
    >>> auth = StaticAuthenticator({uuid.UUID(int=1): ("t1", "key")})
    >>> asyncio.run(auth.authenticate(uuid.UUID(int=1), "key")).tenant_id
    't1'
    """

    def __init__(self, accounts: Mapping[uuid.UUID, tuple[str, str]]) -> None:
        self._accounts = dict(accounts)

    async def authenticate(self, account_id: uuid.UUID, api_key: str) -> AccountIdentity:
        entry = self._accounts.get(account_id)
        if entry is None or not _same(entry[1], api_key):
            raise AuthenticationError(_REFUSED)
        return AccountIdentity(entry[0], f"user_{account_id.hex[:8]}", account_id)

    def close(self) -> None:
        pass


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class LoginLimiter:
    """At most ``max_failures`` failed logins per source address within ``window_s``.

    Memory is bounded: at most ``max_addresses`` addresses are remembered, the one that
    failed least recently is forgotten first.

    >>> lim = LoginLimiter(2, 60.0)
    >>> lim.failed("10.0.0.1"); lim.blocked("10.0.0.1")
    False
    >>> lim.failed("10.0.0.1"); lim.blocked("10.0.0.1")
    True
    """

    def __init__(self, max_failures: int, window_s: float, max_addresses: int = 100_000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def blocked(self, address: str) -> bool:
        """Whether ``address`` has used up its failures for now."""
        times = self._recent(address, time.monotonic())
        return times is not None and len(times) >= self.max_failures

    def retry_after_s(self, address: str) -> float:
        """Seconds until ``address`` may try again (0 if it may now)."""
        now = time.monotonic()
        times = self._recent(address, now)
        if times is None or len(times) < self.max_failures:
            return 0.0
        return max(0.0, times[-self.max_failures] + self.window_s - now)

    def failed(self, address: str) -> None:
        """Record one failed login from ``address``."""
        now = time.monotonic()
        times = self._recent(address, now)
        if times is None:
            times = deque(maxlen=self.max_failures)
            self._failures[address] = times
        times.append(now)
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
