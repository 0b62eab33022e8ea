"""The demo's latest-state cache: a redis-server of its own when one is installed (the
cache tier DragonflyDB fills in production), written by the bridge and the gateway, read
back as each tenant's own ACL user.

``start`` runs it (or says why not), ``grant`` makes the writer's and the tenants' users,
``read_back`` reads one line of live state per tenant through the read API.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from suho_mt5.demo.servers import RedisServer

__all__ = ["DemoCache", "read_back", "start"]


@dataclass
class DemoCache:
    server: RedisServer
    writer_url: str = ""
    #: tenant -> the tenant user's password
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The server, without credentials (readers add their tenant's)."""
        return self.server.url()


def start(workdir: Path, notes: list[str]) -> DemoCache | None:
    """A redis-server in ``workdir`` (not started yet), or None with a note saying why."""
    if shutil.which("redis-server") is None:
        notes.append("redis-server is not installed: no latest-state cache (`make setup` "
                     "installs it)")
        return None
    directory = workdir / "redis"
    directory.mkdir()
    return DemoCache(RedisServer(directory))


def grant(cache: DemoCache, tenants: list[str]) -> None:
    """The writer's user (bridge, gateway, signals) and one reader user per tenant."""
    import asyncio

    from suho_mt5.cache import acl

    async def go() -> None:
        cache.writer_url = (await acl.grant_writer(cache.server.admin_url)).url
        for tenant in tenants:
            cache.passwords[tenant] = (await acl.grant_tenant(cache.server.admin_url,
                                                              tenant)).password

    asyncio.run(go())


def _price(value: Decimal | None) -> str:
    return "-" if value is None else f"{value.normalize():f}"


async def read_back(cache: DemoCache, run: Any) -> dict[str, dict[str, Any]]:
    """Per tenant, its first account's live state read from the cache as the tenant's user
    (the database answers a miss, through the tenant views as the app login)."""
    from suho_mt5.cache import CacheReader
    from suho_mt5.demo.market import INSTRUMENTS

    out: dict[str, dict[str, Any]] = {}
    async with CacheReader(cache.url, credentials=cache.passwords,
                           database_url=run.app_url) as reader:
        for tenant in run.tenants:
            account = tenant.accounts[0][0]
            canonical = INSTRUMENTS[0].symbol
            symbol = tenant.broker.symbol(canonical)
            quote = await reader.latest_quote(tenant.tenant_id, account, symbol)
            ref = await reader.market_reference(tenant.tenant_id, canonical)
            snap = await reader.latest_snapshot(tenant.tenant_id, account)
            status = await reader.ea_status(tenant.tenant_id, account)
            signals = await reader.recent_signals(tenant.tenant_id, account)
            parts = []
            if quote is not None:
                parts.append(f"{symbol} {_price(quote.bid)}/{_price(quote.ask)} at "
                             f"{quote.time:%H:%M:%S.%f}"[:-3])
            if ref is not None:
                parts.append(f"reference {_price(ref.bid)}/{_price(ref.ask)}")
            if snap is not None:
                parts.append(f"equity {snap.equity:,.2f} {snap.currency or ''}".rstrip())
            if status is not None:
                parts.append(f"EA {status.status or 'unknown'}"
                             + (f" via {status.gateway}" if status.gateway else ""))
            states = [s.state for s in signals]
            parts.append(f"{len(signals)} recent signal(s)"
                         + (f" ({states.count('closed')} closed)" if signals else ""))
            sources = {v.source for v in (quote, ref, snap, status, *signals) if v is not None}
            out[tenant.tenant_id] = {
                "account": str(account), "line": "; ".join(parts),
                "sources": sorted(sources),
                "quote": None if quote is None else {"bid": str(quote.bid),
                                                     "ask": str(quote.ask),
                                                     "time": quote.time.isoformat()},
                "signals": len(signals), "gateway": None if status is None else status.gateway,
            }
    return out
