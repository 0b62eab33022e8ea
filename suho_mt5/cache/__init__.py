"""The latest-state cache: live state on the Redis protocol (DragonflyDB's, redis-server's).

See ``docs/cache.md``. Needs the ``cache`` extra (redis-py with hiredis, prometheus_client).

The Data Bridge writes the newest value of each key after every commit
(:class:`CacheWriter`, newer-wins, in the background); readers ask :class:`CacheReader`,
one tenant at a time, with that tenant's ACL user, and fall back to the database on a miss:

* :meth:`CacheReader.latest_quote` - an account's latest broker quote of a symbol;
* :meth:`CacheReader.latest_snapshot` - its latest balance, equity, margin, margin level;
* :meth:`CacheReader.ea_status` - its EA's latest heartbeat and the gateway serving it;
* :meth:`CacheReader.market_reference` - the latest reference price of a canonical symbol;
* :meth:`CacheReader.recent_signals` - its last signals and their status.

Keys are ``suho:{<tenant>}:<kind>:...`` (:mod:`suho_mt5.cache._keys`); users are created by
:func:`grant_tenant` and :func:`grant_writer`; :func:`rebuild` refills it from the database.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from suho_mt5.cache._client import CACHE_URL_ENV, check_cache_url
from suho_mt5.cache._keys import CacheTTLs, tenant_pattern, tenant_user
from suho_mt5.cache._rebuild import RebuildReport, rebuild
from suho_mt5.cache._values import EAStatus, MarketReference, Quote, SignalState, Snapshot

if TYPE_CHECKING:
    from suho_mt5.cache import acl
    from suho_mt5.cache.acl import Grant, grant_tenant, grant_writer, revoke_tenant
    from suho_mt5.cache.reader import CacheReader
    from suho_mt5.cache.writer import CacheWriter

__all__ = [
    "CACHE_URL_ENV",
    "CacheReader",
    "CacheTTLs",
    "CacheWriter",
    "EAStatus",
    "Grant",
    "MarketReference",
    "Quote",
    "RebuildReport",
    "SignalState",
    "Snapshot",
    "acl",
    "check_cache_url",
    "grant_tenant",
    "grant_writer",
    "rebuild",
    "revoke_tenant",
    "tenant_pattern",
    "tenant_user",
]

#: Public name -> the module that defines it, imported on first access: a reader of the
#: cache does not load what the writer, the rebuild or the ACL commands need.
_LAZY = {
    "CacheReader": "suho_mt5.cache.reader",
    "CacheWriter": "suho_mt5.cache.writer",
    "Grant": "suho_mt5.cache.acl",
    "grant_tenant": "suho_mt5.cache.acl",
    "grant_writer": "suho_mt5.cache.acl",
    "revoke_tenant": "suho_mt5.cache.acl",
}


def __getattr__(name: str) -> Any:
    if name == "acl":
        return importlib.import_module("suho_mt5.cache.acl")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'suho_mt5.cache' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
