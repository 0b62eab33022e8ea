"""The read API: the latest state of a tenant's accounts, from the cache, else the database.

Every call takes the tenant explicitly and reads with that tenant's ACL user (``suho-mt5
cache grant-tenant``), whose keys are ``suho:{<tenant>}:*`` and nothing else. On a miss (the
key expired or was never written) or when the cache does not answer within ``timeout``,
the call reads the database instead, through the ``mt5_tenant`` views with the tenant set,
as the tenant login at ``database_url`` (a member of ``mt5_app`` or ``mt5_readonly``).
Both paths apply the same freshness rule: nothing older than its kind's TTL is returned.

After a cache failure the reader goes straight to the database for ``retry_after`` seconds
instead of waiting for the timeout on every call.

>>> reader = CacheReader(None)  # no cache: every call goes to the database (none here)
>>> reader.cache_url is None
True
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from suho_mt5.cache._client import connect, translate_errors
from suho_mt5.cache._keys import (
    CacheTTLs,
    quote_key,
    ref_key,
    signals_key,
    snapshot_key,
    status_key,
    tenant_user,
    valid_tenant,
)
from suho_mt5.cache._values import (
    EAStatus,
    MarketReference,
    Quote,
    SignalState,
    Snapshot,
    from_us,
)
from suho_mt5.errors import CacheError, CacheUnavailableError, ConfigError

if TYPE_CHECKING:
    import psycopg

    from suho_mt5.cache.metrics import CacheMetrics
    from suho_mt5.ingest.reconcile import SymbolMapper

__all__ = ["CacheReader", "Credentials"]

_T = TypeVar("_T")
#: A tenant's password (its user is ``suho-tenant-<tenant>``), by tenant: a mapping or a
#: function (a secret store lookup); None for a tenant with no cache user.
Credentials = Mapping[str, str] | Callable[[str], str | None]


class CacheReader:
    """The read API over the cache at ``cache_url`` (None: no cache) and the database at
    ``database_url`` (None: no fallback; a miss is then None, a cache failure an error).

    ``credentials`` gives each tenant's password; without it the user in ``cache_url``
    reads for every tenant (a single-tenant application's own tenant URL). ``mapper`` maps
    broker symbols to canonical ones for :meth:`market_reference`'s database fallback (the
    bridge's default cleaning when None).
    """

    def __init__(self, cache_url: str | None, *, credentials: Credentials | None = None,
                 database_url: str | None = None, ttls: CacheTTLs | None = None,
                 timeout: float = 0.25, retry_after: float = 1.0, signal_limit: int = 50,
                 mapper: SymbolMapper | None = None,
                 metrics: CacheMetrics | None = None) -> None:
        self.cache_url = cache_url
        self.credentials = credentials
        self.database_url = database_url
        self.ttls = ttls or CacheTTLs()
        self.timeout = timeout
        self.retry_after = retry_after
        self.signal_limit = signal_limit
        self.mapper = mapper
        self.metrics = metrics
        self._clients: dict[str, Any] = {}
        self._down_until = 0.0
        self._db: psycopg.AsyncConnection[Any] | None = None
        self._db_lock = asyncio.Lock()

    async def __aenter__(self) -> CacheReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        if self._db is not None:
            with contextlib.suppress(Exception):
                await self._db.close()
            self._db = None

    # ------------------------------------------------------------------ the read API

    async def latest_quote(self, tenant_id: str, account_id: uuid.UUID,
                           symbol: str) -> Quote | None:
        """The account's latest broker quote of ``symbol`` (its broker's spelling)."""
        key = quote_key(tenant_id, account_id, symbol)
        return await self._latest(
            "quote", tenant_id, key, Quote.from_json,
            lambda cur, since: _db().read_quote(cur, account_id, symbol, since))

    async def latest_snapshot(self, tenant_id: str, account_id: uuid.UUID) -> Snapshot | None:
        """The account's latest snapshot: balance, equity, margin, margin level."""
        return await self._latest(
            "snapshot", tenant_id, snapshot_key(tenant_id, account_id), Snapshot.from_json,
            lambda cur, since: _db().read_snapshot(cur, account_id, since))

    async def ea_status(self, tenant_id: str, account_id: uuid.UUID) -> EAStatus | None:
        """The EA's status: its latest heartbeat and the gateway serving it."""
        kind = "status"
        key = status_key(tenant_id, account_id)
        fields = await self._from_cache(kind, tenant_id, lambda c: c.hgetall(key))
        if fields and "v" in fields:
            status = EAStatus.from_json(fields["v"])
            gateway, since = _gateway(fields)
            return _with_gateway(status, gateway, since)
        if fields:  # a session, no heartbeat yet (or none within the TTL)
            gateway, since = _gateway(fields)
            found = await self._fallback(
                kind, tenant_id, lambda cur, s: _db().read_status(cur, account_id, s))
            if found is None:
                return EAStatus(account_id, None, None, None, gateway=gateway,
                                gateway_since=since)
            return _with_gateway(found, gateway, since)
        return await self._fallback(
            kind, tenant_id, lambda cur, s: _db().read_status(cur, account_id, s))

    async def market_reference(self, tenant_id: str, symbol: str) -> MarketReference | None:
        """The latest market reference price of the canonical ``symbol`` (``EURUSD``), as
        the tenant's latest reconciled broker quote of it recorded it."""
        async def database(cur: Any, since: datetime) -> MarketReference | None:
            from suho_mt5.ingest.reconcile import SymbolMapper

            mapper = self.mapper or SymbolMapper()
            db = _db()
            rows = await db.read_references(cur, since)
            found: MarketReference | None = db.newest_reference(rows, symbol, mapper.canonical)
            return found

        return await self._latest("reference", tenant_id, ref_key(tenant_id, symbol),
                                  MarketReference.from_json, database)

    async def recent_signals(self, tenant_id: str, account_id: uuid.UUID,
                             limit: int = 20) -> list[SignalState]:
        """The account's last ``limit`` signals (newest first) with their status; at most
        ``signal_limit`` come from the cache, more from the database."""
        kind = "signals"
        key = signals_key(tenant_id, account_id)
        since = datetime.now(UTC) - self.ttls.signals
        if limit <= self.signal_limit:
            fields = await self._from_cache(kind, tenant_id, lambda c: c.hgetall(key))
            if fields:
                return _signals(fields, account_id, since)[:limit]
        found = await self._fallback(
            kind, tenant_id, lambda cur, s: _db().read_signals(cur, account_id, s, limit))
        return found or []

    # ------------------------------------------------------------------ plumbing

    async def _latest(self, kind: str, tenant_id: str, key: str,
                      decode: Callable[[str], _T],
                      database: Callable[[Any, datetime], Awaitable[_T | None]]
                      ) -> _T | None:
        text = await self._from_cache(kind, tenant_id, lambda c: c.hget(key, "v"))
        if text is not None:
            return decode(text)
        return await self._fallback(kind, tenant_id, database)

    def _client(self, tenant_id: str) -> Any:
        client = self._clients.get(tenant_id)
        if client is None:
            assert self.cache_url is not None
            if self.credentials is None:
                client = connect(self.cache_url, timeout=self.timeout)
            else:
                password = (self.credentials.get(tenant_id)
                            if isinstance(self.credentials, Mapping)
                            else self.credentials(tenant_id))
                if password is None:
                    raise ConfigError(
                        f"no cache credentials for tenant {tenant_id!r}: create its user "
                        f"with `suho-mt5 cache grant-tenant {tenant_id}`")
                client = connect(self.cache_url, timeout=self.timeout,
                                 username=tenant_user(tenant_id), password=password)
            self._clients[tenant_id] = client
        return client

    async def _from_cache(self, kind: str, tenant_id: str,
                          command: Callable[[Any], Awaitable[Any]]) -> Any:
        """The reply of ``command`` on the tenant's connection; None on a miss or (with a
        database to fall back on) a failure."""
        valid_tenant(tenant_id)
        if self.cache_url is None:
            return None
        m = self.metrics
        if time.monotonic() < self._down_until and self.database_url is not None:
            if m is not None:
                m.reads.labels(kind, "skipped").inc()
            return None
        started = time.perf_counter()
        try:
            with translate_errors(f"reading {kind} of tenant {tenant_id!r}"):
                reply = await asyncio.wait_for(command(self._client(tenant_id)),
                                               self.timeout * 2)
        except (CacheError, TimeoutError) as exc:
            if m is not None:
                m.reads.labels(kind, "error").inc()
            if isinstance(exc, CacheUnavailableError | TimeoutError | asyncio.TimeoutError):
                self._down_until = time.monotonic() + self.retry_after
                client = self._clients.pop(tenant_id, None)
                if client is not None:
                    with contextlib.suppress(Exception):
                        await client.aclose()
            if self.database_url is None:
                if isinstance(exc, CacheError):
                    raise
                raise CacheUnavailableError(
                    f"reading {kind} of tenant {tenant_id!r}: no answer within "
                    f"{self.timeout * 2:.2f} s") from exc
            return None
        if m is not None:
            m.read_seconds.labels("cache").observe(time.perf_counter() - started)
            m.reads.labels(kind, "hit" if reply else "miss").inc()
        return reply or None

    async def _fallback(self, kind: str, tenant_id: str,
                        read: Callable[[Any, datetime], Awaitable[_T | None]]) -> _T | None:
        if self.database_url is None:
            return None
        since = datetime.now(UTC) - self.ttls.of(kind)
        started = time.perf_counter()
        import psycopg

        async with self._db_lock:
            for attempt in (1, 2):  # a connection the server closed is opened again once
                conn = await self._database()
                try:
                    async with conn.transaction(), conn.cursor() as cur:
                        await _db().set_tenant(cur, tenant_id)
                        found = await read(cur, since)
                    break
                except psycopg.OperationalError as exc:
                    with contextlib.suppress(Exception):
                        await conn.close()
                    self._db = None
                    if attempt == 2:
                        raise CacheUnavailableError(
                            f"reading {kind} of tenant {tenant_id!r} from the database: "
                            f"{exc}") from exc
        m = self.metrics
        if m is not None:
            m.read_seconds.labels("database").observe(time.perf_counter() - started)
            m.fallbacks.labels(kind, "yes" if found else "no").inc()
        return found

    async def _database(self) -> psycopg.AsyncConnection[Any]:
        if self._db is None or self._db.closed:
            import psycopg

            from suho_mt5.db import psycopg_conninfo

            assert self.database_url is not None
            conninfo, _ = psycopg_conninfo(self.database_url)
            self._db = await psycopg.AsyncConnection.connect(conninfo, connect_timeout=5)
        return self._db


def _db() -> Any:
    import suho_mt5.cache._database as _database

    return _database


def _gateway(fields: Mapping[str, str]) -> tuple[str | None, datetime | None]:
    raw = fields.get("gv")
    if raw is None:
        return None, None
    data = json.loads(raw)
    gateway = data.get("gateway")
    return gateway, datetime.fromisoformat(data["since"]) if gateway else None


def _with_gateway(status: EAStatus, gateway: str | None, since: datetime | None) -> EAStatus:
    from dataclasses import replace

    return replace(status, gateway=gateway, gateway_since=since)


def _signals(fields: Mapping[str, str], account_id: uuid.UUID,
             since: datetime) -> list[SignalState]:
    """An account's signal hash as :class:`SignalState` values, newest first."""
    ids = {name[2:] for name in fields if name[:2] in ("s:", "r:")}
    out: list[SignalState] = []
    for sid in ids:
        base = fields.get("s:" + sid)
        state = (SignalState.from_json(base) if base is not None
                 else SignalState(uuid.UUID(sid), account_id, None, "pending"))
        rank_status = fields.get("r:" + sid, "")
        status = rank_status.partition("|")[2] or state.status
        executed = fields.get("e:" + sid)
        ticket = fields.get("x:" + sid)
        closed = fields.get("k:" + sid)
        from dataclasses import replace

        state = replace(
            state, status=status,
            executed_at=from_us(int(executed)) if executed else None,
            ticket=int(ticket) if ticket else None, closed=closed is not None,
            closed_at=from_us(int(closed)) if closed else None)
        if state.time is not None and state.time <= since:
            continue
        out.append(state)
    epoch = datetime.min.replace(tzinfo=UTC)
    out.sort(key=lambda s: s.time or epoch, reverse=True)
    return out
