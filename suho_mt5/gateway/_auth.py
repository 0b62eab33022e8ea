"""Checking an EA's account id and API key: bounded work, and never a lever for strangers.

An API key check is expensive on purpose (bcrypt in the database: ~170-210 ms of a core, the
seed's ``verify_api_key``), so who may cause one is decided before, cheaply:

* :class:`VerifiedKeys`: (account, key) pairs verified before, under a keyed hash
  (HMAC-SHA-256 with a random per-process key: the key itself is never kept). An EA that
  comes back costs no check at all; each account's key is re-read every few seconds
  (:meth:`Authenticator.fingerprints`), so a deactivated account or a rotated key is
  dropped, and its sessions ended, within that bound.
* :class:`LoginLimiter`: key checks that may fail per source address, *counting those still
  running*; past it, a HELLO is refused without a key check, a database round trip or a log
  line of its own, unless it is for an account that authenticated here before and that
  (address, account) pair has checks left (a neighbour's failures lock no one out).
* :class:`KeyChecks`: at most ``workers`` checks at a time, at most ``limit`` waiting;
  accounts that authenticated before go first; checks for accounts that never did are also
  bounded in rate across all addresses; a check whose client left is dropped from the queue.

``docs/security.md`` says why bcrypt stays and what these bounds give.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import itertools
import os
import random
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from suho_mt5.db import (
    AccountIdentity,
    account_digest,
    account_digests,
    authenticate,
    is_single_backend,
    key_fingerprints,
    make_engine,
)
from suho_mt5.errors import AuthenticationError, DatabaseError, GatewayError

__all__ = [
    "AccountDirectory",
    "Authenticator",
    "DatabaseAuthenticator",
    "KeyChecks",
    "KeyChecksBusy",
    "LoginLimiter",
    "StaticAuthenticator",
    "VerifiedKeys",
]

_REFUSED = "invalid account id or API key"
_K = TypeVar("_K")


class Authenticator(Protocol):
    """What the gateway asks: who is this account, if the key is right; and, for accounts it
    let in, whether their keys are still the ones it verified."""

    async def authenticate(self, account_id: uuid.UUID, api_key: str) -> AccountIdentity:
        """The identity (with its ``key_fingerprint``), or raise ``AuthenticationError``
        (or ``DatabaseError``)."""
        ...

    async def fingerprints(self, tenant_id: str, accounts: Iterable[uuid.UUID]
                           ) -> dict[uuid.UUID, str]:
        """The current key fingerprint of each of ``accounts`` that is active and has a key
        (the others are left out)."""
        ...

    async def account_digests(self) -> frozenset[int] | None:
        """:func:`suho_mt5.db.account_digest` of every account that may log in (``None``:
        not known; every account id then gets a real check)."""
        ...

    def close(self) -> None: ...


class KeyChecksBusy(GatewayError):
    """Too many key checks are waiting (or, for accounts never seen, too many per second):
    the HELLO is refused with UNAVAILABLE and a retry delay, without a check."""


class VerifiedKeys:
    """(account, key) pairs verified recently, under a keyed hash, and the accounts that
    ever authenticated here (the ones :class:`KeyChecks` and :class:`LoginLimiter` favour).

    >>> keys = VerifiedKeys(60.0)
    >>> who = AccountIdentity("t1", "u1", uuid.UUID(int=1), "fp")
    >>> keys.put(uuid.UUID(int=1), "key", who)
    >>> keys.get(uuid.UUID(int=1), "key") is who, keys.get(uuid.UUID(int=1), "nope")
    (True, None)
    >>> keys.forget(uuid.UUID(int=1))
    >>> keys.get(uuid.UUID(int=1), "key"), keys.known(uuid.UUID(int=1))
    (None, True)
    """

    def __init__(self, ttl_s: float, max_entries: int = 100_000,
                 known_ttl_s: float = 7 * 86_400.0) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.known_ttl_s = known_ttl_s
        self._pepper = os.urandom(32)
        self._entries: OrderedDict[bytes, tuple[float, AccountIdentity]] = OrderedDict()
        self._by_account: dict[uuid.UUID, bytes] = {}
        self._known: OrderedDict[uuid.UUID, float] = OrderedDict()
        self._latest: dict[uuid.UUID, AccountIdentity] = {}

    def _digest(self, account_id: uuid.UUID, api_key: str) -> bytes:
        return hmac.new(self._pepper, account_id.bytes + api_key.encode(),
                        hashlib.sha256).digest()

    def get(self, account_id: uuid.UUID, api_key: str) -> AccountIdentity | None:
        if self.ttl_s <= 0:
            return None
        entry = self._entries.get(self._digest(account_id, api_key))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, account_id: uuid.UUID, api_key: str, identity: AccountIdentity) -> None:
        now = time.monotonic()
        known = self._known
        known[account_id] = now
        known.move_to_end(account_id)
        self._latest[account_id] = identity
        while len(known) > self.max_entries:
            self._latest.pop(known.popitem(last=False)[0], None)
        if self.ttl_s <= 0:
            return
        digest = self._digest(account_id, api_key)
        old = self._by_account.get(account_id)
        if old is not None and old != digest:
            self._entries.pop(old, None)  # one key per account: the newest verified
        self._by_account[account_id] = digest
        self._entries[digest] = (now + self.ttl_s, identity)
        self._entries.move_to_end(digest)
        while len(self._entries) > self.max_entries:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._by_account.pop(dropped.account_id, None)

    def known(self, account_id: uuid.UUID) -> bool:
        """Whether ``account_id`` authenticated here within ``known_ttl_s``."""
        seen = self._known.get(account_id)
        return seen is not None and seen > time.monotonic() - self.known_ttl_s

    def forget(self, account_id: uuid.UUID) -> None:
        """Drop the account's verified key (it was deactivated, or its key changed)."""
        digest = self._by_account.pop(account_id, None)
        if digest is not None:
            self._entries.pop(digest, None)
        self._latest.pop(account_id, None)

    def to_recheck(self, connected: Iterable[uuid.UUID]) -> list[AccountIdentity]:
        """The identities whose keys must still be the ones verified: those held here and
        those of ``connected`` accounts (each as its key was last verified)."""
        now = time.monotonic()
        wanted = {identity.account_id for expires, identity in self._entries.values()
                  if expires >= now}
        wanted.update(connected)
        return [identity for account, identity in self._latest.items()
                if account in wanted and identity.key_fingerprint is not None]


class AccountDirectory:
    """Which account ids may exist: the digests of :meth:`Authenticator.account_digests`,
    read every ``refresh_s``. A HELLO for an id not among them is refused after a pause as
    long as a real refusal (:meth:`pause_s`) with no key check, except a few a second
    (``rate``), which get a real check: an account created since the last read still gets
    in.

    >>> d = AccountDirectory()
    >>> d.may_exist(uuid.UUID(int=1))  # nothing read yet: every id may exist
    True
    >>> d.update(frozenset({account_digest(uuid.UUID(int=1))}))
    >>> d.may_exist(uuid.UUID(int=1)), d.may_exist(uuid.UUID(int=2))
    (True, False)
    """

    def __init__(self, refresh_s: float = 30.0, rate: float = 2.0, burst: int = 10,
                 expected_s: Callable[[], float] | None = None) -> None:
        self.refresh_s = refresh_s
        self._digests: frozenset[int] | None = None
        self._checks = _TokenBucket(rate, burst)
        self._expected_s = expected_s or (lambda: 0.2)

    def update(self, digests: frozenset[int] | None) -> None:
        self._digests = digests

    def may_exist(self, account_id: uuid.UUID) -> bool:
        digests = self._digests
        return digests is None or account_digest(account_id) in digests

    def listed(self, account_id: uuid.UUID) -> bool:
        """Whether the directory was read and names ``account_id`` (it may exist)."""
        digests = self._digests
        return digests is not None and account_digest(account_id) in digests

    def check_anyway(self) -> bool:
        """Whether an id not in the directory gets a real check now (a few a second)."""
        return self._checks.take()

    def pause_s(self) -> float:
        """How long to wait before refusing an id that does not exist: what a real check
        asked for now would take (:meth:`KeyChecks.expected_s`), so that neither the answer
        nor its timing says which ids exist."""
        return self._expected_s()


class _TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, float(burst)
        self._tokens, self._at = float(burst), time.monotonic()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class KeyChecks:
    """Key checks run ``workers`` at a time; at most ``limit`` wait, accounts seen before
    first; checks for accounts never seen are also bounded to ``unknown_rate`` a second
    (``unknown_burst`` at once). A caller cancelled while waiting (its client left) is dropped
    from the queue; one cancelled while its check runs frees the slot when the check ends
    (the database is still working on it).
    """

    def __init__(self, check: Callable[[uuid.UUID, str], Awaitable[AccountIdentity]], *,
                 workers: int, limit: int, unknown_rate: float, unknown_burst: int,
                 on_start: Callable[[], None] | None = None) -> None:
        self._check = check
        self._on_start = on_start
        self.workers = max(1, workers)
        self.limit = limit
        self._unknown = _TokenBucket(unknown_rate, unknown_burst)
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.running = 0
        #: checks started so far (what the database was asked to hash)
        self.started = 0
        #: how long recent checks took (the database's work, without the queue), by how many
        #: checks ran at once when each started: four bcrypt hashes at once on a two-core
        #: database take twice as long each as one alone
        self.durations: dict[int, deque[float]] = {}

    @property
    def waiting(self) -> int:
        return sum(1 for *_, fut in self._waiting if not fut.done())

    async def check(self, account_id: uuid.UUID, api_key: str, *, known: bool
                    ) -> AccountIdentity:
        if self.running >= self.workers or self._waiting:
            self._make_room(known)
        if not known and not self._unknown.take():
            raise KeyChecksBusy("too many key checks for new accounts; try again")
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._waiting, (0 if known else 1, next(self._order), turn))
        self._pump()
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self._release()  # granted, then cancelled before it ran
            else:
                turn.cancel()
            raise
        self.started += 1
        if self._on_start is not None:
            self._on_start()
        work = asyncio.ensure_future(self._timed(account_id, api_key))
        try:
            return await asyncio.shield(work)
        finally:
            if work.done():
                self._release()
            else:  # the caller left: the slot is free once the database is done
                work.add_done_callback(self._release_after)

    async def _timed(self, account_id: uuid.UUID, api_key: str) -> AccountIdentity:
        """The check, timed when the database answered it (yes or no). A check that failed
        (the database away: an error in a millisecond) is not a duration a refusal may
        imitate: after an outage, ids that do not exist would be refused at once, and
        their quick answers would tell them apart from real ones."""
        together = min(self.running, self.workers)  # this check included
        started = time.monotonic()
        try:
            identity = await self._check(account_id, api_key)
        except AuthenticationError:
            self._took(together, started)
            raise
        self._took(together, started)
        return identity

    def _took(self, together: int, started: float) -> None:
        self.durations.setdefault(together, deque(maxlen=50)).append(
            time.monotonic() - started)

    def expected_s(self) -> float:
        """How long a check asked for now would take, queue included: a recent duration of
        a check that ran with as many others as this one would (the nearest such count
        measured), plus the wait of the checks ahead of it. Sampling every recent duration
        instead made a refusal after a flood as slow as the flood's contended checks: twice
        a quiet check's time, a difference a client could use."""
        if not self.durations:
            return 0.2
        together = min(self.running + 1, self.workers)
        nearest = min(self.durations, key=lambda n: (abs(n - together), n))
        durations = self.durations[nearest]
        ahead = self.waiting + max(0, self.running - self.workers + 1)
        mean = sum(durations) / len(durations)
        return random.choice(durations) + ahead * mean / self.workers

    def _make_room(self, known: bool) -> None:
        self._waiting = [w for w in self._waiting if not w[2].done()]
        heapq.heapify(self._waiting)
        if len(self._waiting) < self.limit:
            return
        if known:
            # Push out the newest check for an account never seen, if there is one.
            strangers = [w for w in self._waiting if w[0] == 1]
            if strangers:
                victim = max(strangers, key=lambda w: w[1])
                victim[2].set_exception(KeyChecksBusy("pushed out by a known account"))
                self._waiting.remove(victim)
                heapq.heapify(self._waiting)
                return
        raise KeyChecksBusy(f"{len(self._waiting)} key checks waiting; try again")

    def _release_after(self, work: asyncio.Future[AccountIdentity]) -> None:
        if not work.cancelled():
            work.exception()  # retrieved: nobody waits for it any more
        self._release()

    def _release(self) -> None:
        self.running -= 1
        self._pump()

    def _pump(self) -> None:
        while self.running < self.workers and self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if turn.done():
                continue
            self.running += 1
            turn.set_result(None)


class DatabaseAuthenticator:
    """:func:`suho_mt5.db.authenticate` on a thread pool (the database does the slow hash).

    ``url`` should be a login of a role that may call ``mt5_authenticate`` (``mt5_app``).
    The key checks are bounded and ordered by :class:`KeyChecks`, not here: at most
    ``workers`` run at once.
    """

    def __init__(self, url: str, *, workers: int = 4) -> None:
        engine = make_engine(url)
        if is_single_backend(engine):
            # The PGlite engine serves one client at a time: a connection per check, one
            # check at a time, so the bridge sharing it is never locked out for long.
            workers = 1
        else:
            engine.dispose()
            # One more connection than workers: the periodic re-read of keys never waits
            # behind a queue of bcrypt checks.
            engine = make_engine(url, pool_size=workers + 1, max_overflow=0,
                                 pool_pre_ping=True)
        self.workers = workers
        self._engine = engine
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="suho-auth")
        self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="suho-keys")

    async def authenticate(self, account_id: uuid.UUID, api_key: str) -> AccountIdentity:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, authenticate, self._engine,
                                          account_id, api_key)

    async def fingerprints(self, tenant_id: str, accounts: Iterable[uuid.UUID]
                           ) -> dict[uuid.UUID, str]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reads, key_fingerprints, self._engine,
                                          tenant_id, list(accounts))

    async def account_digests(self) -> frozenset[int] | None:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._reads, account_digests, self._engine)
        except DatabaseError as exc:
            if "mt5_account_digests" in str(exc) and "does not exist" in str(exc):
                return None  # a schema before revision 0014
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._reads.shutdown(wait=True, cancel_futures=True)
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
        return AccountIdentity(entry[0], f"user_{account_id.hex[:8]}", account_id,
                               _fingerprint(entry[1]))

    async def fingerprints(self, tenant_id: str, accounts: Iterable[uuid.UUID]
                           ) -> dict[uuid.UUID, str]:
        out = {}
        for account in accounts:
            entry = self._accounts.get(account)
            if entry is not None and entry[0] == tenant_id:
                out[account] = _fingerprint(entry[1])
        return out

    async def account_digests(self) -> frozenset[int] | None:
        return frozenset(account_digest(a) for a in self._accounts)

    def set_key(self, account_id: uuid.UUID, tenant_id: str, api_key: str | None) -> None:
        """Change an account's key (``None``: deactivate it), as the database would."""
        if api_key is None:
            self._accounts.pop(account_id, None)
        else:
            self._accounts[account_id] = (tenant_id, api_key)

    def close(self) -> None:
        pass


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _fingerprint(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Admitted:
    """A key check :meth:`LoginLimiter.admit` allowed: hand it back to
    :meth:`LoginLimiter.finish`."""

    address: str
    account_id: uuid.UUID
    #: counted on the (address, account) pair's budget, the address's being used up
    on_pair: bool


class _Window:
    """Failures within a window, plus checks still running, for one key."""

    __slots__ = ("changed", "failures", "running")

    def __init__(self, size: int) -> None:
        self.failures: deque[float] = deque(maxlen=max(1, size))
        self.running = 0
        #: resolved when a running check ends (HELLOs waiting for the budget look again)
        self.changed: asyncio.Future[None] | None = None

    def used(self, now: float, window_s: float) -> int:
        failures = self.failures
        while failures and failures[0] <= now - window_s:
            failures.popleft()
        return len(failures) + self.running


class LoginLimiter:
    """At most ``max_failures`` key checks per source address within ``window_s`` that fail
    or are still running; past it, ``max_pair_failures`` more per (address, account) for
    accounts that authenticated before (so that a neighbour's failures lock no one out).

    Memory is bounded: at most ``max_addresses`` addresses and as many pairs are remembered,
    the one used least recently is forgotten first.

    >>> lim = LoginLimiter(2, 60.0)
    >>> lim.failed("10.0.0.1"); lim.blocked("10.0.0.1")
    False
    >>> lim.failed("10.0.0.1"); lim.blocked("10.0.0.1")
    True
    """

    def __init__(self, max_failures: int, window_s: float, max_addresses: int = 100_000,
                 max_pair_failures: int = 3) -> None:
        self.max_failures = max_failures
        self.max_pair_failures = max_pair_failures
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._addresses: OrderedDict[str, _Window] = OrderedDict()
        self._pairs: OrderedDict[tuple[str, uuid.UUID], _Window] = OrderedDict()

    @property
    def _failures(self) -> OrderedDict[str, _Window]:  # what the unit tests count
        return self._addresses

    def _window(self, table: OrderedDict[_K, _Window], key: _K, size: int) -> _Window:
        window = table.get(key)
        if window is None:
            window = table[key] = _Window(size)
            while len(table) > self.max_addresses:
                changed = table.popitem(last=False)[1].changed
                if changed is not None and not changed.done():
                    changed.set_result(None)  # its waiters look again
        table.move_to_end(key)
        return window

    def _used(self, table: OrderedDict[_K, _Window], key: _K, now: float) -> int:
        window = table.get(key)
        if window is None:
            return 0
        used = window.used(now, self.window_s)
        if not used and window.changed is None:
            del table[key]
        return used

    async def admit(self, address: str, account_id: uuid.UUID, *, known: bool
                    ) -> Admitted | None:
        """Count a key check about to run (``None``: refuse the HELLO without one).

        While the address's budget is held by checks still running, the HELLO waits for
        one of them to end (a cheap wait: no check, no database): if they failed, it is
        refused; if they succeeded, it goes ahead. So an address never gets more checks
        that fail than its budget, and EAs behind one address logging in together are
        not refused for it."""
        while True:
            now = time.monotonic()
            if self._used(self._addresses, address, now) < self.max_failures:
                self._window(self._addresses, address, self.max_failures).running += 1
                return Admitted(address, account_id, on_pair=False)
            pair = (address, account_id)
            if known and self._used(self._pairs, pair, now) < self.max_pair_failures:
                self._window(self._pairs, pair, self.max_pair_failures).running += 1
                return Admitted(address, account_id, on_pair=True)
            window = self._addresses.get(address)
            if window is None or not window.running:
                return None
            if window.changed is None:
                window.changed = asyncio.get_running_loop().create_future()
            await asyncio.shield(window.changed)

    def finish(self, admitted: Admitted, *, failed: bool) -> None:
        """The check ended: a failure counts for the window, anything else is forgotten."""
        if admitted.on_pair:
            window = self._pairs.get((admitted.address, admitted.account_id))
        else:
            window = self._addresses.get(admitted.address)
        if window is None:  # forgotten meanwhile (the table is bounded)
            return
        window.running = max(0, window.running - 1)
        if failed:
            window.failures.append(time.monotonic())
        changed, window.changed = window.changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    def blocked(self, address: str) -> bool:
        """Whether ``address`` has used up its key checks for now."""
        return self._used(self._addresses, address, time.monotonic()) >= self.max_failures

    def retry_after_s(self, address: str) -> float:
        """Seconds until ``address`` may try again (0 if it may now)."""
        now = time.monotonic()
        window = self._addresses.get(address)
        if window is None or window.used(now, self.window_s) < self.max_failures:
            return 0.0
        failures = window.failures
        if len(failures) < self.max_failures:
            return 1.0  # held by running checks only
        return max(0.0, failures[-self.max_failures] + self.window_s - now)

    def failed(self, address: str) -> None:
        """Record one failed login from ``address`` (a check that was not admitted first)."""
        window = self._window(self._addresses, address, self.max_failures)
        window.failures.append(time.monotonic())
