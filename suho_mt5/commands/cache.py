"""Cache commands: ACL users, rebuild, statistics, reading a value as a tenant.

Plain functions under ``suho-mt5 cache ...`` (``docs/cache.md``); each runs its own event
loop. ``admin_url`` is a cache user that may run ``ACL``, ``SCAN`` and ``INFO`` (the
operator's); a rebuild may use a writer's URL instead.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from suho_mt5.errors import ConfigError

if TYPE_CHECKING:
    from suho_mt5.cache import CacheTTLs, Grant, RebuildReport
    from suho_mt5.cache.stats import CacheStats

__all__ = ["GET_KINDS", "get", "grant_tenant", "grant_writer", "rebuild", "revoke_tenant",
           "stats", "users"]

#: What ``suho-mt5 cache get`` reads, and what each needs.
GET_KINDS = {"quote": ("account", "symbol"), "snapshot": ("account",),
             "status": ("account",), "reference": ("symbol",), "signals": ("account",)}


def grant_tenant(admin_url: str, tenant_id: str, password: str | None = None) -> Grant:
    from suho_mt5.cache import acl

    return asyncio.run(acl.grant_tenant(admin_url, tenant_id, password=password))


def grant_writer(admin_url: str, user: str, password: str | None = None) -> Grant:
    from suho_mt5.cache import acl

    return asyncio.run(acl.grant_writer(admin_url, user, password=password))


def revoke_tenant(admin_url: str, tenant_id: str, purge: bool = False) -> tuple[bool, int]:
    from suho_mt5.cache import acl

    return asyncio.run(acl.revoke_tenant(admin_url, tenant_id, purge=purge))


def users(admin_url: str) -> list[dict[str, Any]]:
    from suho_mt5.cache import acl

    return asyncio.run(acl.list_users(admin_url))


def rebuild(database_url: str, cache_url: str, *, tenant_id: str | None = None,
            role: str | None = None, ttls: CacheTTLs | None = None,
            progress: Callable[[str, int, int], None] | None = None) -> RebuildReport:
    from suho_mt5.cache import rebuild as run

    return asyncio.run(run(database_url, cache_url, tenant_id=tenant_id, role=role,
                           ttls=ttls, progress=progress))


def stats(admin_url: str) -> CacheStats:
    from suho_mt5.cache.stats import read_stats

    return asyncio.run(read_stats(admin_url))


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        return [_plain(v) for v in value]
    data = asdict(value)
    data["source"] = value.source
    return data


def get(cache_url: str | None, kind: str, tenant_id: str, *, account: str | None = None,
        symbol: str | None = None, database_url: str | None = None,
        limit: int = 20, ttls: CacheTTLs | None = None) -> Any:
    """The value ``cache get`` prints: a dict (or a list of them for signals), or None.

    ``cache_url`` carries the tenant's user (``grant-tenant`` printed it); ``database_url``,
    a tenant login, answers misses."""
    from suho_mt5.cache import CacheReader

    if kind not in GET_KINDS:
        raise ConfigError(f"unknown kind {kind!r}: one of {', '.join(GET_KINDS)}")
    given = {"account": account, "symbol": symbol}
    missing = [n for n in GET_KINDS[kind] if not given[n]]
    if missing:
        raise ConfigError(f"{kind} needs --{' and --'.join(missing)}")
    account_id = None
    if account is not None:
        try:
            account_id = uuid.UUID(account)
        except ValueError as exc:
            raise ConfigError(f"not an account id (UUID): {account!r}") from exc

    async def read() -> Any:
        async with CacheReader(cache_url, database_url=database_url, ttls=ttls) as reader:
            if kind == "quote":
                assert account_id is not None and symbol is not None
                return await reader.latest_quote(tenant_id, account_id, symbol)
            if kind == "snapshot":
                assert account_id is not None
                return await reader.latest_snapshot(tenant_id, account_id)
            if kind == "status":
                assert account_id is not None
                return await reader.ea_status(tenant_id, account_id)
            if kind == "reference":
                assert symbol is not None
                return await reader.market_reference(tenant_id, symbol)
            assert account_id is not None
            return await reader.recent_signals(tenant_id, account_id, limit)

    return _plain(asyncio.run(read()))
