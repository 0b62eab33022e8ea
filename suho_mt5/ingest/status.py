"""EA status: an account whose EA has sent no heartbeat for a while is marked offline.

Heartbeats (every 30 s) keep an account online. :func:`mark_offline` writes one
``status = 'offline'`` heartbeat row for every active account whose latest heartbeat is
older than ``after`` and not already offline, so the seed's connectivity query (the latest
heartbeat per account) counts it offline. Several bridges may run it: a transaction-level
advisory lock lets one of them do it at a time. The bridge runs it every
``offline_check_every`` seconds (:func:`offline_loop`).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, Final, NamedTuple

from suho_mt5.ingest._stop import Stop
from suho_mt5.ingest.hooks import CommitListener
from suho_mt5.ingest.metrics import BridgeMetrics

__all__ = ["OFFLINE_LOCK", "OfflineMark", "mark_offline", "offline_loop"]

log = logging.getLogger("suho_mt5.ingest")

#: Advisory lock key of the offline check (any bigint; this one spells "suho_off").
OFFLINE_LOCK: Final = 0x7375686F5F6F6666

_MARK = """
INSERT INTO public.mt5_ea_heartbeat (time, tenant_id, account_id, status)
SELECT coalesce(%(now)s, now()), a.tenant_id, a.account_id, 'offline'
FROM public.mt5_user_accounts a
CROSS JOIN LATERAL (
    SELECT h.time, h.status FROM public.mt5_ea_heartbeat h
    WHERE h.tenant_id = a.tenant_id AND h.account_id = a.account_id
    ORDER BY h.time DESC LIMIT 1
) latest
WHERE a.is_active AND latest.status <> 'offline'
  AND latest.time < coalesce(%(now)s, now()) - %(after)s
RETURNING tenant_id, account_id, time
"""


class OfflineMark(NamedTuple):
    """An ``offline`` heartbeat :func:`mark_offline` wrote."""

    tenant_id: str
    account_id: uuid.UUID
    time: datetime


async def mark_offline(conn: Any, after: timedelta,
                       now: datetime | None = None) -> list[OfflineMark]:
    """Mark silent EAs offline and commit; returns ``(tenant_id, account_id, time)`` of each.

    ``conn`` is a psycopg ``AsyncConnection`` of a login in ``mt5_ingest``; ``now`` (default:
    the server's clock) is the time of the check and of the rows written.
    """
    async with conn.cursor() as cur:
        await cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (OFFLINE_LOCK,))
        row = await cur.fetchone()
        if not row or not row[0]:
            await conn.rollback()
            return []
        await cur.execute(_MARK, {"now": now, "after": after})
        marked = [OfflineMark(str(t), a, at) for t, a, at in await cur.fetchall()]
    await conn.commit()
    return marked


async def offline_loop(conninfo: str, after: timedelta, every: float, metrics: BridgeMetrics,
                       stop: Stop, listener: CommitListener | None = None) -> None:
    """:func:`mark_offline` every ``every`` seconds on a connection of its own, until
    ``stop``; a failed check is logged and tried again next time. ``listener`` (the
    latest-state cache's writer) is told the accounts marked."""
    import psycopg

    while not await stop.sleep(every):
        try:
            async with await psycopg.AsyncConnection.connect(conninfo) as conn:
                marked = await mark_offline(conn, after)
            for tenant_id, account, _ in marked:
                metrics.marked_offline.inc()
                log.info("account marked offline: %s %s", tenant_id, account)
            if marked and listener is not None:
                listener.offline_marked(marked)
        except Exception as exc:
            log.warning("offline check failed: %s", exc)
