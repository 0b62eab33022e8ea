"""``suho-mt5 cache rebuild``: the cache filled again from the database.

It reads the latest row per key of every kind (quotes, market references, snapshots, EA
heartbeats, each account's last signals) within the kinds' TTLs, as a login of
``mt5_maintenance`` (``BYPASSRLS``: every tenant) or a superuser, and writes them through
the same newer-wins scripts as the bridge. So it is safe while bridges write: a value the
bridge wrote meanwhile is newer and stays; a value the rebuild brings is kept only where the
cache has nothing newer.

Broker names (for the per-broker symbol overrides of the market references) come from
``mt5_user_accounts`` when the login may read it (``mt5_maintenance`` may not: then only the
overrides for every broker, ``"*"``, apply).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from suho_mt5.cache._entries import Latest, SignalOp, from_rows, signal_base
from suho_mt5.cache._keys import EPOCH_KEY, META_PREFIX, CacheTTLs, valid_tenant
from suho_mt5.cache.writer import CacheWriter, WriteCounts
from suho_mt5.errors import CacheError, DatabaseError

if TYPE_CHECKING:
    from suho_mt5.ingest.reconcile import SymbolMapper

__all__ = ["REBUILT_KEY", "RebuildReport", "rebuild"]

log = logging.getLogger("suho_mt5.cache")

#: When the last rebuild ran and what it wrote (monitor shows it).
REBUILT_KEY = META_PREFIX + "rebuilt"
_CHUNK = 500

#: ``progress(phase, done, total)``: phase ``read <kind>`` (done = rows read) or ``write``.
Progress = Callable[[str, int, int], None]


@dataclass
class RebuildReport:
    """What a rebuild read and wrote."""

    tenant_id: str | None
    rows: dict[str, int] = field(default_factory=dict)
    values: int = 0
    written: int = 0
    older: int = 0
    expired: int = 0
    seconds: float = 0.0
    broker_names: bool = True

    def as_json(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "rows": self.rows, "values": self.values,
                "written": self.written, "older": self.older, "expired": self.expired,
                "seconds": round(self.seconds, 3), "broker_names": self.broker_names}


async def _brokers(conn: Any, tenant_id: str | None) -> dict[uuid.UUID, str] | None:
    import psycopg

    try:
        async with conn.transaction(), conn.cursor() as cur:
            await cur.execute("SELECT account_id, broker_name FROM public.mt5_user_accounts"
                              + (" WHERE tenant_id = %s" if tenant_id else ""),
                              (tenant_id,) if tenant_id else ())
            return {a: b for a, b in await cur.fetchall()}
    except psycopg.errors.InsufficientPrivilege:
        return None


async def rebuild(database_url: str, cache_url: str, *, tenant_id: str | None = None,
                  role: str | None = None, ttls: CacheTTLs | None = None,
                  mapper: SymbolMapper | None = None, signal_limit: int = 50,
                  timeout: float = 5.0, progress: Progress | None = None) -> RebuildReport:
    """Refill the cache at ``cache_url`` (a writer or admin user) from the database at
    ``database_url`` (``mt5_maintenance`` or a superuser; ``role``: ``SET ROLE`` first), for
    every tenant or one."""
    import psycopg

    import suho_mt5.cache._database as db
    from suho_mt5.db import psycopg_conninfo
    from suho_mt5.ingest.reconcile import SymbolMapper

    if tenant_id is not None:
        valid_tenant(tenant_id)
    ttls = ttls or CacheTTLs()
    mapper = mapper or SymbolMapper()
    report = RebuildReport(tenant_id)
    started = time.monotonic()
    now = datetime.now(UTC)
    tick = progress or (lambda *_: None)
    latest: list[Latest] = []
    ops: list[SignalOp] = []
    try:
        conn = await psycopg.AsyncConnection.connect(psycopg_conninfo(database_url)[0],
                                                     connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to the database: {exc}") from exc
    try:
        if role is not None:
            from psycopg import sql

            await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            await conn.commit()
        brokers = await _brokers(conn, tenant_id)
        report.broker_names = brokers is not None
        names = brokers or {}

        def canonical(symbol: str, account: uuid.UUID) -> str:
            return mapper.canonical(symbol, names.get(account))

        kinds = (("quotes", "mt5_broker_quotes", ttls.quote, False),
                 ("references", "mt5_broker_quotes", ttls.reference, True),
                 ("snapshots", "mt5_account_balance_history", ttls.snapshot, False),
                 ("heartbeats", "mt5_ea_heartbeat", ttls.status, False))
        for label, table, ttl, reconciled in kinds:
            tick(f"read {label}", 0, 0)
            async with conn.transaction(), conn.cursor() as cur:
                rows = await db.latest_rows(cur, table, now - ttl, tenant_id, reconciled)
            report.rows[label] = len(rows)
            tick(f"read {label}", len(rows), len(rows))
            got, _ = from_rows(table, rows, ttls, canonical if reconciled else None,
                               signal_limit)
            if reconciled:  # the quotes' own keys come from the unfiltered rows
                got = [e for e in got if "}:ref:" in e.key]
            latest.extend(got)
        tick("read signals", 0, 0)
        async with conn.transaction(), conn.cursor() as cur:
            signals = await db.signal_rows(cur, now - ttls.signals, tenant_id, signal_limit)
        report.rows["signals"] = len(signals)
        ops.extend(signal_base(t, s, ttls, signal_limit) for t, s in signals)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot read the latest rows: {exc}") from exc
    finally:
        await conn.close()

    report.values = len(latest) + len(ops)
    writer = CacheWriter(cache_url, ttls=ttls, name=f"rebuild:{uuid.uuid4().hex[:8]}",
                         timeout=timeout, signal_limit=signal_limit)
    counts = WriteCounts()
    try:
        tick("write", 0, report.values)
        done = 0
        for i in range(0, len(latest), _CHUNK):
            chunk = latest[i : i + _CHUNK]
            counts.add(await writer.write_now(chunk, []))
            done += len(chunk)
            tick("write", done, report.values)
        for i in range(0, len(ops), _CHUNK):
            chunk_ops = ops[i : i + _CHUNK]
            counts.add(await writer.write_now([], chunk_ops))
            done += len(chunk_ops)
            tick("write", done, report.values)
        client = writer._connection()
        from suho_mt5.cache._client import translate_errors

        with translate_errors("recording the rebuild"):
            await client.set(EPOCH_KEY, f"{now.isoformat()} rebuild", nx=True)
            await client.hset(REBUILT_KEY, mapping={
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "tenant": tenant_id or "*", "values": report.values,
                "written": counts.written})
    except CacheError:
        raise
    finally:
        await writer.close(drain_timeout=0)
    report.written, report.older, report.expired = counts.written, counts.older, counts.expired
    report.seconds = time.monotonic() - started
    log.info("cache rebuilt (%s): %d value(s), %d written, %d older kept", tenant_id or "all",
             report.values, report.written, report.older)
    return report
