"""What ``suho-mt5 monitor`` and ``suho-mt5 cache stats`` show of the cache: keys per tenant
and kind, the server's hit/miss counts, each writer's lag, when the cache was last found
empty and last rebuilt. Read as an admin user (``SCAN``, ``INFO``)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from suho_mt5.cache._client import connect, translate_errors
from suho_mt5.cache._keys import EPOCH_KEY, WRITER_STATUS_PREFIX, tenant_of_key
from suho_mt5.cache._rebuild import REBUILT_KEY

__all__ = ["CacheStats", "WriterStatus", "read_stats"]


@dataclass
class WriterStatus:
    name: str
    age_s: float
    lag_ms: int
    pending: int
    errors: int
    written: int
    older: int
    dropped: int
    last_error: str


@dataclass
class CacheStats:
    """The cache's state as an admin sees it."""

    keys: int = 0
    #: tenant -> kind -> keys
    tenants: dict[str, Counter[str]] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    writers: list[WriterStatus] = field(default_factory=list)
    epoch: str | None = None
    rebuilt: dict[str, str] = field(default_factory=dict)
    #: True when the key scan stopped at ``max_keys``.
    truncated: bool = False

    @property
    def hit_ratio(self) -> float | None:
        total = self.hits + self.misses
        return None if total == 0 else self.hits / total


def _kind(key: str) -> str:
    rest = key[key.find("}:") + 2:]
    kind = rest.split(":", 1)[0]
    return {"ref": "reference", "closing": "signals"}.get(kind, kind)


async def read_stats(admin_url: str, *, max_keys: int = 1_000_000,
                     timeout: float = 5.0) -> CacheStats:
    """Scan the keyspace (``SCAN``, 1,000 keys a step, at most ``max_keys``) and read the
    server's statistics."""
    stats = CacheStats()
    client = connect(admin_url, timeout=timeout)
    try:
        with translate_errors("reading the cache's statistics"):
            info = await client.info("stats")
            stats.hits = int(info.get("keyspace_hits", 0))
            stats.misses = int(info.get("keyspace_misses", 0))
            async for key in client.scan_iter(match="suho:*", count=1000):
                stats.keys += 1
                tenant = tenant_of_key(key)
                if tenant is not None:
                    stats.tenants.setdefault(tenant, Counter())[_kind(key)] += 1
                if stats.keys >= max_keys:
                    stats.truncated = True
                    break
            now_ms = time.time_ns() // 1_000_000
            async for key in client.scan_iter(match=WRITER_STATUS_PREFIX + "*", count=1000):
                h: dict[Any, Any] = dict(await client.hgetall(key))
                if not h:
                    continue
                stats.writers.append(WriterStatus(
                    h.get("name", key), (now_ms - int(h.get("updated_ms", now_ms))) / 1000,
                    int(h.get("lag_ms", 0)), int(h.get("pending", 0)),
                    int(h.get("errors", 0)), int(h.get("written", 0)),
                    int(h.get("older", 0)), int(h.get("dropped", 0)),
                    h.get("last_error", "")))
            epoch = await client.get(EPOCH_KEY)
            stats.epoch = None if epoch is None else str(epoch)
            stats.rebuilt = {str(k): str(v) for k, v in
                             (await client.hgetall(REBUILT_KEY) or {}).items()}
    finally:
        await client.aclose()
    stats.writers.sort(key=lambda w: w.name)
    return stats
