"""The writer's statements and the order it takes locks in (see :mod:`~suho_mt5.ingest.writer`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Final, TypeVar

from psycopg import sql
from sqlalchemy.dialects import postgresql

from suho_mt5.ingest.rows import TABLE_COLUMNS, Row

__all__ = [
    "AUDITED_TABLES",
    "AUDIT_CHAIN_LOCK",
    "DEAD_LETTER_TABLE",
    "LOCK_CHAINS",
    "PGLITE_MESSAGE_BYTES",
    "SNAPSHOT_COLUMNS",
    "SNAPSHOT_INDEX",
    "WRITE_ORDER",
    "chunks",
    "copy_into",
    "insert_dead_letters",
    "insert_select",
    "insert_values",
    "sort_rows",
    "stage_ddl",
]

DEAD_LETTER_TABLE: Final = "mt5_ingest_dead_letters"
#: Largest statement sent to the PGlite engine: it crashes on a message over about 60 KB.
PGLITE_MESSAGE_BYTES: Final = 48 * 1024

_DEAD_COLUMNS: Final = ("stream", "stream_seq", "byte_offset", "subject", "tenant_id",
                        "account_id", "reason", "detail", "raw", "packet_count", "deliveries")
_BALANCE: Final = "mt5_account_balance_history"
#: Columns of a new balance row the risk checks read (RETURNING).
SNAPSHOT_COLUMNS: Final = ("tenant_id", "account_id", "time", "balance", "equity",
                           "margin", "margin_level", "sequence")
SNAPSHOT_INDEX: Final = tuple(TABLE_COLUMNS[_BALANCE].index(c) for c in SNAPSHOT_COLUMNS)
_ORDERS: Final = "mt5_trade_orders"
_EXECUTIONS: Final = "mt5_signal_executions"
#: Tables whose inserts revision 0011's audit triggers record, taking the tenant's
#: audit-chain lock until the commit (risk events, written after them, too).
AUDITED_TABLES: Final = frozenset({_ORDERS, _EXECUTIONS})
#: The order a batch writes its tables: the audited ones last, so their locks are held for
#: the shortest time, and always the same order, so two workers lock in the same order.
WRITE_ORDER: Final = ("mt5_broker_quotes", _BALANCE, "mt5_ea_heartbeat", _ORDERS, _EXECUTIONS)
#: The advisory-lock key prefix of revision 0011's audit chain trigger
#: (``pg_advisory_xact_lock(hashtextextended('mt5_audit_log:' || tenant_id, 0))``); a test
#: checks the trigger still uses it.
AUDIT_CHAIN_LOCK: Final = "mt5_audit_log:"
LOCK_CHAINS: Final = (
    "SELECT count(pg_advisory_xact_lock(hashtextextended(%s || t, 0)))"
    " FROM unnest(%s::text[]) AS t"  # a function scan: the array's (sorted) order
)


def _stage_name(table: str) -> str:
    return f"_suho_stage_{table.removeprefix('mt5_')}"


def _columns(table: str) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, TABLE_COLUMNS.get(table, _DEAD_COLUMNS)))


def _returning(q: sql.Composed, returning: bool) -> sql.Composed:
    if returning:
        q += sql.SQL(" RETURNING ") + sql.SQL(", ").join(map(sql.Identifier, SNAPSHOT_COLUMNS))
    return q


def stage_ddl(table: str) -> sql.Composed:
    """The temporary staging table of ``table`` (no indexes, no checks, emptied at commit)."""
    from suho_mt5.models import metadata  # the column types of the schema contract

    t = metadata.tables[table]
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    cols = [
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t.c[c].type.compile(dialect=dialect)))
        for c in TABLE_COLUMNS[table]
    ]
    return sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS").format(
        sql.Identifier(_stage_name(table)), sql.SQL(", ").join(cols)
    )


def copy_into(table: str, *, staged: bool) -> sql.Composed:
    """``COPY`` into ``table`` itself or into its staging table."""
    if staged:
        return sql.SQL("COPY pg_temp.{} ({}) FROM STDIN").format(
            sql.Identifier(_stage_name(table)), _columns(table))
    return sql.SQL("COPY public.{} ({}) FROM STDIN").format(sql.Identifier(table),
                                                            _columns(table))


def insert_select(table: str, returning: bool) -> sql.Composed:
    """The staging table's rows into ``table``, skipping those already there."""
    cols = _columns(table)
    stmt = sql.SQL("INSERT INTO public.{} ({}) SELECT {} FROM pg_temp.{} ON CONFLICT DO NOTHING")
    return _returning(stmt.format(sql.Identifier(table), cols, cols,
                                  sql.Identifier(_stage_name(table))), returning)


def insert_values(table: str, n: int, returning: bool) -> sql.Composed:
    """``INSERT ... VALUES`` of ``n`` rows (``ON CONFLICT DO NOTHING``)."""
    width = len(TABLE_COLUMNS.get(table, _DEAD_COLUMNS))
    one = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * width))
    q = sql.SQL("INSERT INTO public.{} ({}) VALUES {} ON CONFLICT DO NOTHING").format(
        sql.Identifier(table), _columns(table), sql.SQL(", ").join([one] * n))
    return _returning(q, returning)


def insert_dead_letters() -> sql.Composed:
    """One dead letter (``executemany``), a redelivered one skipped by its position key."""
    return insert_values(DEAD_LETTER_TABLE, 1, False)


def _sort_key(row: Row) -> tuple[Any, ...]:
    account = row[2]
    return (row[1], account.int if isinstance(account, uuid.UUID) else account, row[0],
            row[-1])


_O = TypeVar("_O")


def sort_rows(rows: list[Row], origins: list[_O]) -> tuple[list[Row], list[_O]]:
    """``rows`` (time-series rows, :data:`TABLE_COLUMNS` order) and their origins, sorted by
    tenant, account, time and sequence: every key of a table is then locked in one global
    order, whichever worker writes it (the sort is stable and cheap on rows that arrive
    grouped by account, as frames are).

    >>> rows = [(2, "t2", 1, 9), (1, "t1", 2, 8), (1, "t1", 1, 7)]
    >>> sort_rows(rows, ["x", "y", "z"])
    ([(1, 't1', 1, 7), (1, 't1', 2, 8), (2, 't2', 1, 9)], ['z', 'y', 'x'])
    """
    order = sorted(range(len(rows)), key=lambda i: _sort_key(rows[i]))
    return [rows[i] for i in order], [origins[i] for i in order]


def _row_bytes(row: Row) -> int:
    """An estimate of one row's bytes in a PGlite INSERT message (text values, framing)."""
    return sum(len(str(v)) + 8 for v in row) + 8


def chunks(rows: Sequence[Row]) -> list[Sequence[Row]]:
    """``rows`` in runs whose ``INSERT ... VALUES`` stays below the PGlite engine's cap."""
    per = max(1, PGLITE_MESSAGE_BYTES // max(max(_row_bytes(r) for r in rows[:16]), 1))
    return [rows[i : i + per] for i in range(0, len(rows), per)]
