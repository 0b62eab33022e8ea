"""The database side of the cache: the latest rows per key, read the same way for the
read API's fallback (one key, as a tenant login, through the ``mt5_tenant`` views) and for a
rebuild (every key, as ``mt5_maintenance``, from the tables).

"Latest" is the cache's order everywhere: the greatest ``time``, then the greatest
``sequence`` (a row without one, such as an ``offline`` heartbeat, sorts below any with one),
among the rows not older than the kind's TTL.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from psycopg import sql

from suho_mt5._names import TENANT_SCHEMA, TENANT_SEARCH_PATH, TENANT_SETTING
from suho_mt5.cache._values import EAStatus, MarketReference, Quote, SignalState, Snapshot
from suho_mt5.ingest.rows import TABLE_COLUMNS

__all__ = [
    "latest_rows",
    "read_quote",
    "read_references",
    "read_signals",
    "read_snapshot",
    "read_status",
    "set_tenant",
    "signal_rows",
]

_QUOTES: Final = "mt5_broker_quotes"
_BALANCE: Final = "mt5_account_balance_history"
_HEARTBEAT: Final = "mt5_ea_heartbeat"
#: What identifies a key of each table (besides the tenant).
KEY_COLUMNS: Final = {_QUOTES: ("account_id", "symbol"), _BALANCE: ("account_id",),
                      _HEARTBEAT: ("account_id",)}
_ORDER: Final = sql.SQL("time DESC, sequence DESC NULLS LAST")


def _table(schema: str, table: str) -> sql.Composable:
    return sql.Identifier(schema, table)


def _columns(table: str) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, TABLE_COLUMNS[table]))


async def set_tenant(cur: Any, tenant_id: str) -> None:
    """The tenant and the tenant search path, for this transaction only (docs/schema.md,
    trap 6), as :func:`suho_mt5.db.set_tenant` does for SQLAlchemy."""
    await cur.execute("SELECT set_config(%s, %s, true), set_config('search_path', %s, true)",
                      (TENANT_SETTING, tenant_id, TENANT_SEARCH_PATH))


# ------------------------------------------------------------------ one key, one tenant

async def _one(cur: Any, table: str, where: str, params: Sequence[Any]) -> Any:
    query = sql.SQL("SELECT {} FROM {} WHERE {} AND time > %s ORDER BY {} LIMIT 1").format(
        _columns(table), _table(TENANT_SCHEMA, table), sql.SQL(where), _ORDER)
    await cur.execute(query, params)
    return await cur.fetchone()


async def read_quote(cur: Any, account_id: uuid.UUID, symbol: str, since: datetime
                     ) -> Quote | None:
    row = await _one(cur, _QUOTES, "account_id = %s AND symbol = %s",
                     (account_id, symbol, since))
    return None if row is None else Quote.of((row[2], row[3], row[0], row[12], *row[4:12]),
                                             "database")


async def read_snapshot(cur: Any, account_id: uuid.UUID, since: datetime) -> Snapshot | None:
    row = await _one(cur, _BALANCE, "account_id = %s", (account_id, since))
    return None if row is None else Snapshot.of((row[2], row[0], row[10], *row[3:10]),
                                                "database")


async def read_status(cur: Any, account_id: uuid.UUID, since: datetime) -> EAStatus | None:
    row = await _one(cur, _HEARTBEAT, "account_id = %s", (account_id, since))
    return None if row is None else EAStatus.of((row[2], row[3], row[0], row[9], *row[4:9]),
                                                "database")


_REFERENCES: Final = """SELECT DISTINCT ON (q.account_id, q.symbol) q.account_id, q.symbol,
  q.time, q.sequence, q.polygon_bid, q.polygon_ask, a.broker_name
FROM {quotes} q JOIN {accounts} a ON a.account_id = q.account_id
WHERE q.time > %s AND q.polygon_bid IS NOT NULL AND q.polygon_ask IS NOT NULL
ORDER BY q.account_id, q.symbol, q.time DESC, q.sequence DESC NULLS LAST"""


async def read_references(cur: Any, since: datetime) -> list[tuple[Any, ...]]:
    """The tenant's latest reconciled quote per account and broker symbol:
    ``(account_id, symbol, time, sequence, polygon_bid, polygon_ask, broker_name)``."""
    await cur.execute(sql.SQL(_REFERENCES).format(
        quotes=_table(TENANT_SCHEMA, _QUOTES),
        accounts=_table(TENANT_SCHEMA, "mt5_user_accounts")), (since,))
    return list(await cur.fetchall())


def newest_reference(rows: Sequence[tuple[Any, ...]], symbol: str,
                     canonical: Any) -> MarketReference | None:
    """Of :func:`read_references` rows, the newest whose broker symbol maps to ``symbol``."""
    best = None
    for _account, broker_symbol, time, seq, bid, ask, broker in rows:
        if canonical(broker_symbol, broker) != symbol:
            continue
        order = (time, -1 if seq is None else seq)
        if best is None or order > best[0]:
            best = (order, MarketReference(symbol, time, bid, ask, source="database"))
    return None if best is None else best[1]


_SIGNALS: Final = """SELECT s.signal_id, s.account_id, s.time, s.status, s.symbol, s.action,
  s.volume, s.entry_price, s.stop_loss, s.take_profit, s.executed_at, e.ticket,
  coalesce(e.trade_closed, false), e.closed_at, s.tenant_id
FROM {signals} s
LEFT JOIN LATERAL (
  SELECT x.ticket, x.trade_closed, x.closed_at FROM {executions} x
  WHERE x.tenant_id = s.tenant_id AND x.account_id = s.account_id AND x.signal_id = s.signal_id
  ORDER BY x.time, x.sequence NULLS LAST LIMIT 1
) e ON true"""


def signal_state(row: Sequence[Any]) -> SignalState:
    return SignalState.of((row[0], row[1], row[2], row[3], *row[4:11], row[11] or None,
                           bool(row[12]), row[13] if row[12] else None), "database")


async def read_signals(cur: Any, account_id: uuid.UUID, since: datetime, limit: int
                       ) -> list[SignalState]:
    query = sql.SQL(_SIGNALS + " WHERE s.account_id = %s AND s.time > %s"
                    " ORDER BY s.time DESC LIMIT %s").format(
        signals=_table(TENANT_SCHEMA, "mt5_trading_signals"),
        executions=_table(TENANT_SCHEMA, "mt5_signal_executions"))
    await cur.execute(query, (account_id, since, limit))
    return [signal_state(r) for r in await cur.fetchall()]


# ------------------------------------------------------------------ every key (rebuild)

async def latest_rows(cur: Any, table: str, since: datetime, tenant_id: str | None,
                      reconciled: bool = False) -> list[tuple[Any, ...]]:
    """The latest row per key of ``table`` (``public``, every tenant or one), in
    :data:`~suho_mt5.ingest.rows.TABLE_COLUMNS` order; with ``reconciled`` only quotes whose
    reference prices are known."""
    key = sql.SQL(", ").join(map(sql.Identifier, ("tenant_id", *KEY_COLUMNS[table])))
    where: sql.Composable = sql.SQL("time > %s")
    params: list[Any] = [since]
    if tenant_id is not None:
        where += sql.SQL(" AND tenant_id = %s")
        params.append(tenant_id)
    if reconciled:
        where += sql.SQL(" AND polygon_bid IS NOT NULL AND polygon_ask IS NOT NULL")
    await cur.execute(sql.SQL(
        "SELECT DISTINCT ON ({key}) {cols} FROM {table} WHERE {where} ORDER BY {key}, {order}"
    ).format(key=key, cols=_columns(table), table=_table("public", table), where=where,
             order=_ORDER), params)
    return list(await cur.fetchall())


async def signal_rows(cur: Any, since: datetime, tenant_id: str | None, limit: int
                      ) -> list[tuple[str, SignalState]]:
    """Every account's last ``limit`` signals: ``(tenant_id, signal)``."""
    where = "s.time > %s" + (" AND s.tenant_id = %s" if tenant_id is not None else "")
    params: list[Any] = [since] + ([tenant_id] if tenant_id is not None else [])
    inner = sql.SQL(_SIGNALS + " WHERE " + where).format(
        signals=_table("public", "mt5_trading_signals"),
        executions=_table("public", "mt5_signal_executions"))
    query = sql.SQL("SELECT * FROM (SELECT r.*, row_number() OVER (PARTITION BY r.tenant_id,"
                    " r.account_id ORDER BY r.time DESC) AS n FROM ({}) r) ranked"
                    " WHERE n <= %s").format(inner)
    await cur.execute(query, [*params, limit])
    return [(row[14], signal_state(row)) for row in await cur.fetchall()]
