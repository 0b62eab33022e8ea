"""Key names, ACL user names and how long each kind of value lives.

Every key of a tenant starts with ``suho:{<tenant>}:``. The braces are literal: a tenant id
cannot contain ``}`` (``_names.TENANT_ID_PATTERN``), so the closing brace ends the tenant
unambiguously, and the ACL pattern ``suho:{acme}:*`` cannot match a key of tenant
``acme:eu`` (``suho:{acme:eu}:...``), which ``suho:acme:*`` would. On a Redis Cluster or a
DragonflyDB in cluster mode the braces are also the hash tag: one tenant's keys share a slot,
so a script may touch several of them.

Keys outside every tenant live under ``suho:meta:`` (the writers' status, the cache's epoch):
no tenant pattern matches them, and only the writer and admin users reach them.

>>> quote_key("acme", uuid.UUID(int=1), "EURUSD.m")
'suho:{acme}:quote:00000000-0000-0000-0000-000000000001:EURUSD.m'
>>> tenant_pattern("acme"), tenant_of_key("suho:{globex.eu}:ref:EURUSD")
('suho:{acme}:*', 'globex.eu')
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Final

from suho_mt5._names import TENANT_ID_PATTERN, TENANT_ID_RULE
from suho_mt5.errors import ConfigError, TenantError

__all__ = [
    "ALL_TENANTS_PATTERN",
    "EPOCH_KEY",
    "KINDS",
    "META_PREFIX",
    "WRITER_PATTERN",
    "WRITER_STATUS_PREFIX",
    "CacheTTLs",
    "closing_key",
    "glob_escape",
    "quote_key",
    "ref_key",
    "signal_index_key",
    "signals_key",
    "snapshot_key",
    "status_key",
    "tenant_of_key",
    "tenant_pattern",
    "tenant_prefix",
    "tenant_user",
    "valid_tenant",
]

#: The kinds of value the cache holds (metric labels, ``cache get``).
KINDS: Final = ("quote", "snapshot", "status", "reference", "signals")
#: Every tenant's keys (the writer's key pattern covers these and the meta keys).
ALL_TENANTS_PATTERN: Final = "suho:{*"
#: Keys of no tenant.
META_PREFIX: Final = "suho:meta:"
#: What the writer user may touch: every tenant's keys and the meta keys, nothing else.
WRITER_PATTERN: Final = "suho:*"
#: One hash per running writer (bridge, gateway, rebuild): last flush, lag, errors.
WRITER_STATUS_PREFIX: Final = META_PREFIX + "writer:"
#: Set by the first writer that finds the cache empty: its absence means the cache lost its
#: data (a restart without persistence) and needs ``suho-mt5 cache rebuild``.
EPOCH_KEY: Final = META_PREFIX + "epoch"

_GLOB_SPECIAL: Final = re.compile(r"([*?\[\]\\])")


def valid_tenant(tenant_id: object) -> str:
    """``tenant_id`` if it is a well-formed tenant id, else :class:`TenantError`."""
    if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise TenantError(f"malformed tenant_id {tenant_id!r}: {TENANT_ID_RULE}")
    return tenant_id


def glob_escape(text: str) -> str:
    r"""``text`` with the glob characters of Redis patterns escaped (a tenant id has none;
    this keeps a pattern literal whatever changes the tenant-id rule).

    >>> glob_escape("a*b?[c]")
    'a\\*b\\?\\[c\\]'
    """
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def tenant_prefix(tenant_id: str) -> str:
    return f"suho:{{{valid_tenant(tenant_id)}}}:"


def tenant_pattern(tenant_id: str) -> str:
    """The ACL key pattern of one tenant's keys."""
    return f"suho:{{{glob_escape(valid_tenant(tenant_id))}}}:*"


def tenant_of_key(key: str) -> str | None:
    """The tenant a key belongs to, or None for a key of no tenant."""
    if not key.startswith("suho:{"):
        return None
    end = key.find("}", 6)
    return key[6:end] if end > 6 else None


def tenant_user(tenant_id: str) -> str:
    """The ACL user of a tenant's readers.

    >>> tenant_user("globex.eu")
    'suho-tenant-globex.eu'
    """
    return f"suho-tenant-{valid_tenant(tenant_id)}"


def quote_key(tenant_id: str, account_id: uuid.UUID, symbol: str) -> str:
    """The latest broker quote of an account and broker symbol."""
    return f"{tenant_prefix(tenant_id)}quote:{account_id}:{symbol}"


def snapshot_key(tenant_id: str, account_id: uuid.UUID) -> str:
    """The latest account snapshot (balance, equity, margin, margin level)."""
    return f"{tenant_prefix(tenant_id)}snapshot:{account_id}"


def status_key(tenant_id: str, account_id: uuid.UUID) -> str:
    """The EA's status: its latest heartbeat, and the gateway serving it."""
    return f"{tenant_prefix(tenant_id)}status:{account_id}"


def ref_key(tenant_id: str, symbol: str) -> str:
    """The latest market reference price of a canonical symbol, as the tenant's reconciled
    quotes saw it."""
    return f"{tenant_prefix(tenant_id)}ref:{symbol}"


def signals_key(tenant_id: str, account_id: uuid.UUID) -> str:
    """The account's last signals and their status (one hash)."""
    return f"{tenant_prefix(tenant_id)}signals:{account_id}"


def signal_index_key(tenant_id: str, account_id: uuid.UUID) -> str:
    """The account's signals by time (a sorted set): which to keep, which to drop."""
    return f"{tenant_prefix(tenant_id)}signals:{account_id}:by-time"


def closing_key(tenant_id: str, account_id: uuid.UUID, ticket: int) -> str:
    """A trade close that arrived before its execution report (short-lived)."""
    return f"{tenant_prefix(tenant_id)}closing:{account_id}:{ticket}"


@dataclass(frozen=True, slots=True)
class CacheTTLs:
    """How long each kind of value lives, counted from the time of the packet (or row) it
    comes from, not from when it was written: a value older than its TTL is gone, and the
    read API returns nothing older than it from the database either.

    >>> CacheTTLs().quote
    datetime.timedelta(seconds=300)
    """

    quote: timedelta = timedelta(minutes=5)
    reference: timedelta = timedelta(minutes=5)
    snapshot: timedelta = timedelta(hours=1)
    status: timedelta = timedelta(days=1)
    signals: timedelta = timedelta(days=1)
    #: A trade close kept until its execution report arrives.
    closing: timedelta = timedelta(minutes=10)

    @classmethod
    def uniform(cls, ttl: timedelta) -> CacheTTLs:
        """Every kind living ``ttl`` (tests, replays of old data)."""
        return cls(ttl, ttl, ttl, ttl, ttl, ttl)

    def of(self, kind: str) -> timedelta:
        ttl: timedelta = getattr(self, kind)
        return ttl

    @classmethod
    def parse(cls, settings: Iterable[str]) -> CacheTTLs:
        """TTLs from ``kind=seconds`` settings (the command line's ``--cache-ttl``); the
        kind ``all`` sets every one.

        >>> CacheTTLs.parse(["quote=60", "status=3600"]).quote.total_seconds()
        60.0
        """
        values = {f.name: getattr(cls(), f.name) for f in fields(cls)}
        for setting in settings:
            kind, _, seconds = setting.partition("=")
            kind = kind.strip().lower()
            try:
                ttl = timedelta(seconds=float(seconds))
            except ValueError:
                ttl = timedelta(0)
            if (kind not in values and kind != "all") or ttl <= timedelta(0):
                raise ConfigError(f"not a TTL: {setting!r} (KIND=SECONDS, KIND one of "
                                  f"{', '.join(values)} or all, SECONDS > 0)")
            for name in values if kind == "all" else (kind,):
                values[name] = ttl
        return cls(**values)
