"""The cache compared with the database, key by key, each side read its own way: the
database with plain SQL written here (not the cache's), the cache by scanning its keys."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import psycopg
import redis

from suho_mt5.cache import EAStatus, MarketReference, Quote, Snapshot
from suho_mt5.cache._keys import quote_key, ref_key, snapshot_key, status_key
from suho_mt5.ingest.reconcile import SymbolMapper
from tests.integration.ingest._support import libpq

_LATEST = ("ORDER BY {key}, time DESC, sequence DESC NULLS LAST")


def expected(admin_url: str, since: datetime,
             mapper: SymbolMapper | None = None) -> dict[str, Any]:
    """The database's latest row per cache key (rows newer than ``since``)."""
    mapper = mapper or SymbolMapper()
    out: dict[str, Any] = {}
    with psycopg.connect(libpq(admin_url)) as conn:
        for r in conn.execute(
                "SELECT DISTINCT ON (tenant_id, account_id, symbol) tenant_id, account_id,"
                " symbol, time, sequence, bid, ask, last, volume, spread_points, polygon_bid,"
                " polygon_ask, price_deviation FROM mt5_broker_quotes WHERE time > %s "
                + _LATEST.format(key="tenant_id, account_id, symbol"), (since,)):
            out[quote_key(r[0], r[1], r[2])] = Quote(
                r[1], r[2], r[3], r[4], bid=r[5], ask=r[6], last=r[7], volume=r[8],
                spread_points=r[9], polygon_bid=r[10], polygon_ask=r[11],
                price_deviation=r[12])
        for r in conn.execute(
                "SELECT DISTINCT ON (tenant_id, account_id) tenant_id, account_id, time,"
                " sequence, balance, equity, margin, free_margin, margin_level, leverage,"
                " currency FROM mt5_account_balance_history WHERE time > %s "
                + _LATEST.format(key="tenant_id, account_id"), (since,)):
            out[snapshot_key(r[0], r[1])] = Snapshot(
                r[1], r[2], r[3], balance=r[4], equity=r[5], margin=r[6], free_margin=r[7],
                margin_level=r[8], leverage=r[9], currency=r[10])
        for r in conn.execute(
                "SELECT DISTINCT ON (tenant_id, account_id) tenant_id, account_id, time,"
                " sequence, status, ea_version, terminal_build, terminal_connected,"
                " trade_allowed, ping_ms FROM mt5_ea_heartbeat WHERE time > %s "
                + _LATEST.format(key="tenant_id, account_id"), (since,)):
            out[status_key(r[0], r[1])] = EAStatus(
                r[1], r[4], r[2], r[3], ea_version=r[5], terminal_build=r[6],
                terminal_connected=r[7], trade_allowed=r[8], ping_ms=r[9])
        refs: dict[tuple[str, str], tuple[Any, MarketReference]] = {}
        for r in conn.execute(
                "SELECT q.tenant_id, q.symbol, q.time, q.sequence, q.polygon_bid,"
                " q.polygon_ask, a.broker_name FROM mt5_broker_quotes q JOIN"
                " mt5_user_accounts a USING (tenant_id, account_id) WHERE q.time > %s AND"
                " q.polygon_bid IS NOT NULL", (since,)):
            symbol = mapper.canonical(r[1], r[6])
            order = (r[2], -1 if r[3] is None else r[3])
            best = refs.get((r[0], symbol))
            if best is None or order > best[0]:
                refs[(r[0], symbol)] = (order, MarketReference(symbol, r[2], r[4], r[5]))
        for (tenant, symbol), (_, ref) in refs.items():
            out[ref_key(tenant, symbol)] = ref
    return out


_DECODE = {"quote": Quote, "snapshot": Snapshot, "status": EAStatus,
           "ref": MarketReference}


def cached(admin_cache_url: str) -> dict[str, Any]:
    """Every latest value in the cache (quotes, snapshots, statuses, references)."""
    client = redis.Redis.from_url(admin_cache_url, decode_responses=True)
    out: dict[str, Any] = {}
    try:
        for key in client.scan_iter(match="suho:{*", count=1000):
            kind = key[key.find("}:") + 2:].split(":", 1)[0]
            if kind in _DECODE:
                value = client.hget(key, "v")
                if value is not None:
                    out[key] = _DECODE[kind].from_json(value)
    finally:
        client.close()
    return out


def differences(want: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """What differs, key by key (empty when the cache equals the database)."""
    out = [f"missing {k}" for k in sorted(want.keys() - got.keys())]
    out += [f"extra {k}" for k in sorted(got.keys() - want.keys())]
    out += [f"{k}: cache {got[k]} != database {want[k]}" for k in sorted(want.keys() & got.keys())
            if got[k] != want[k]]
    return out


def kinds(values: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key in values:
        kind = key[key.find("}:") + 2:].split(":", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def account_uuid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)
