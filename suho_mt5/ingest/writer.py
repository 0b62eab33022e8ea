"""The batched, idempotent writer: rows of one batch committed in one transaction.

Every time-series table has a unique idempotency key that includes the time column
(docs/schema.md, trap 8), so a packet delivered twice is one row. Three ways in, cheapest
first:

* **direct** (a login that bypasses row-level security, as docs/ingest.md recommends):
  ``COPY`` straight into the tables, as fast as a raw COPY. A redelivered row breaks the
  key and aborts the transaction; the batch is then written again the staged way (and the
  next few batches too, since redeliveries come in runs).
* **staged** (any ``mt5_ingest`` login; PostgreSQL refuses COPY FROM into a table under
  row-level security to the others): ``COPY`` into a temporary staging table (no indexes,
  no checks), then ``INSERT INTO t SELECT ... FROM stage ON CONFLICT DO NOTHING``; rows
  staged minus rows inserted are the duplicates.
* **values**, on the PGlite engine (``single_backend=true`` in the URL), which cannot take
  COPY or a large message: multi-row ``INSERT ... VALUES`` statements below its message cap,
  on a connection held only for the batch's transaction (the engine serves one client at a
  time; the gateway queues behind it).

Lock order: every batch writes its tables in :data:`WRITE_ORDER` and each table's rows
sorted by tenant, account, time and sequence (:func:`sort_rows`), and takes the audit-chain
locks of the tenants it may audit in sorted order before its first audited row. Two workers
therefore take row, key and audit-chain locks in the same order and cannot deadlock.

If the database refuses the batch because of a row (a CHECK the Python checks missed, a
trigger's foreign-key check), the batch is written again row by row under savepoints in a
new transaction: the refused rows become dead letters with the server's message, the rest is
written. Anything else (the server went away, a privilege is missing) raises, and the
caller retries without acknowledging.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import psycopg
from psycopg import sql
from sqlalchemy.dialects import postgresql

from suho_mt5.db import psycopg_conninfo
from suho_mt5.errors import BatchWriteError, DatabaseUnavailableError
from suho_mt5.ingest.rows import TABLE_COLUMNS, Row

__all__ = [
    "AUDITED_TABLES",
    "AUDIT_CHAIN_LOCK",
    "DEAD_LETTER_TABLE",
    "PGLITE_MESSAGE_BYTES",
    "SNAPSHOT_COLUMNS",
    "WRITE_ORDER",
    "AccountInfo",
    "Batch",
    "DeadLetterRecord",
    "MessageContext",
    "Origin",
    "WriteResult",
    "Writer",
    "sort_rows",
]

DEAD_LETTER_TABLE: Final = "mt5_ingest_dead_letters"
#: Largest statement sent to the PGlite engine: it crashes on a message over about 60 KB.
PGLITE_MESSAGE_BYTES: Final = 48 * 1024

_DEAD_COLUMNS: Final = ("stream", "stream_seq", "byte_offset", "subject", "tenant_id",
                        "account_id", "reason", "detail", "raw", "packet_count", "deliveries")
#: Columns of a new balance row the risk checks read (RETURNING).
SNAPSHOT_COLUMNS: Final = ("tenant_id", "account_id", "time", "balance", "equity",
                           "margin", "margin_level", "sequence")
_SNAPSHOT_INDEX: Final = tuple(TABLE_COLUMNS["mt5_account_balance_history"].index(c)
                               for c in SNAPSHOT_COLUMNS)
_BALANCE: Final = "mt5_account_balance_history"
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
_LOCK_CHAINS: Final = (
    "SELECT count(pg_advisory_xact_lock(hashtextextended(%s || t, 0)))"
    " FROM unnest(%s::text[]) AS t"  # a function scan: the array's (sorted) order
)
#: Batches written the staged way after a redelivered row aborted a direct COPY.
_STAGED_AFTER_CONFLICT: Final = 20


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Where a message came from: enough to dead-letter it or any packet of it."""

    stream: str
    stream_seq: int
    subject: str
    data: bytes
    deliveries: int
    tenant_id: str | None = None
    account_id: uuid.UUID | None = None


#: A row's message and the byte offset of its packet in that message.
Origin = tuple[MessageContext, int]


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One row of ``mt5_ingest_dead_letters``."""

    stream: str
    stream_seq: int
    byte_offset: int
    subject: str
    tenant_id: str | None
    account_id: uuid.UUID | None
    reason: str
    detail: str
    raw: bytes
    packet_count: int
    deliveries: int

    @classmethod
    def of(cls, ctx: MessageContext, reason: str, detail: str, offset: int = 0,
           size: int | None = None) -> DeadLetterRecord:
        """The dead letter of ``ctx``'s bytes ``[offset, offset + size)`` (None: to the end)."""
        raw = ctx.data[offset:] if size is None else ctx.data[offset : offset + size]
        return cls(ctx.stream, ctx.stream_seq, offset, ctx.subject, ctx.tenant_id,
                   ctx.account_id, reason, detail, raw, -(-len(raw) // 144), ctx.deliveries)

    def values(self) -> tuple[object, ...]:
        return (self.stream, self.stream_seq, self.byte_offset, self.subject, self.tenant_id,
                self.account_id, self.reason, self.detail, self.raw, self.packet_count,
                self.deliveries)


@dataclass
class Batch:
    """Rows per table (each with its origin) and the dead letters found before writing."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    origins: dict[str, list[Origin]] = field(default_factory=dict)
    dead: list[DeadLetterRecord] = field(default_factory=list)

    def add(self, table: str, row: Row, origin: Origin) -> None:
        rows = self.rows.get(table)
        if rows is None:
            rows = self.rows[table] = []
            self.origins[table] = []
        rows.append(row)
        self.origins[table].append(origin)

    @property
    def row_count(self) -> int:
        return sum(len(r) for r in self.rows.values())


@dataclass
class WriteResult:
    """What one committed batch did."""

    written: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    dead: list[DeadLetterRecord] = field(default_factory=list)
    #: New balance rows (not duplicates), as :data:`SNAPSHOT_COLUMNS` tuples.
    new_snapshots: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """What the bridge needs to know about an account."""

    account_id: uuid.UUID
    tenant_id: str
    is_active: bool
    margin_mode: str | None
    broker_name: str


def _stage_name(table: str) -> str:
    return f"_suho_stage_{table.removeprefix('mt5_')}"


def _stage_ddl(table: str) -> sql.Composed:
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


def _insert_select(table: str, returning: bool) -> sql.Composed:
    cols = sql.SQL(", ").join(map(sql.Identifier, TABLE_COLUMNS[table]))
    stmt = sql.SQL("INSERT INTO public.{} ({}) SELECT {} FROM pg_temp.{} ON CONFLICT DO NOTHING")
    q = stmt.format(sql.Identifier(table), cols, cols, sql.Identifier(_stage_name(table)))
    if returning:
        q += sql.SQL(" RETURNING ") + sql.SQL(", ").join(map(sql.Identifier, SNAPSHOT_COLUMNS))
    return q


def _insert_values(table: str, n: int, returning: bool) -> sql.Composed:
    columns = TABLE_COLUMNS.get(table, _DEAD_COLUMNS)
    one = sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(columns)))
    q = sql.SQL("INSERT INTO public.{} ({}) VALUES {} ON CONFLICT DO NOTHING").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join([one] * n),
    )
    if returning:
        q += sql.SQL(" RETURNING ") + sql.SQL(", ").join(map(sql.Identifier, SNAPSHOT_COLUMNS))
    return q


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


def _chunks(rows: Sequence[Row], row_bytes: int) -> list[Sequence[Row]]:
    per = max(1, PGLITE_MESSAGE_BYTES // max(row_bytes, 1))
    return [rows[i : i + per] for i in range(0, len(rows), per)]


async def _count_inserted(
    cur: psycopg.AsyncCursor[Any], result: WriteResult, returning: bool
) -> int:
    """Rows the statement just run on ``cur`` inserted; with ``returning`` its returned rows
    (new balance snapshots, which the risk checks read) are kept on ``result``."""
    if returning:
        got = await cur.fetchall()
        result.new_snapshots.extend(got)
        return len(got)
    return max(cur.rowcount, 0)


#: An estimate of one row's bytes in a PGlite INSERT message (text values plus framing).
def _row_bytes(row: Row) -> int:
    return sum(len(str(v)) + 8 for v in row) + 8


_OUTAGE: Final = (psycopg.OperationalError,)

#: Extra work inside the batch's transaction, before the commit (risk checks).
InTransaction = Callable[[psycopg.AsyncConnection[Any], WriteResult], Awaitable[None]]


class Writer:
    """One database connection writing batches. Not safe for concurrent use: one per worker.

    ``url`` is a SQLAlchemy or libpq URL of a login in ``mt5_ingest``. On the PGlite engine
    (``single_backend``) the connection is opened for each batch (and account lookup) and
    closed after its commit, so other clients of the engine get their turn between batches.
    """

    def __init__(self, url: str, *, in_transaction: InTransaction | None = None) -> None:
        self.conninfo, self.single_backend = psycopg_conninfo(url)
        self.in_transaction = in_transaction
        self._conn: psycopg.AsyncConnection[Any] | None = None
        #: Whether the login may COPY straight into the tables (it bypasses row security).
        self.direct = False
        self._staged_batches = 0
        #: How the last batch went in: direct, staged, values or careful (for tests, logs).
        self.last_mode = ""

    async def connection(self) -> psycopg.AsyncConnection[Any]:
        """The open connection, (re)connecting and preparing the staging tables if needed."""
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            conn = await psycopg.AsyncConnection.connect(self.conninfo, connect_timeout=5)
            if not self.single_backend:
                async with conn.cursor() as cur:
                    for table in TABLE_COLUMNS:
                        await cur.execute(_stage_ddl(table))
                    await cur.execute("SELECT rolbypassrls OR rolsuper FROM pg_catalog.pg_roles"
                                      " WHERE rolname = current_user")
                    row = await cur.fetchone()
                    self.direct = bool(row and row[0])
                await conn.commit()
        except _OUTAGE as exc:
            raise DatabaseUnavailableError(f"cannot connect to the database: {exc}") from exc
        self._conn = conn
        return conn

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _release(self) -> None:
        """On the PGlite engine, give the engine back to its other clients."""
        if self.single_backend:
            with contextlib.suppress(Exception):
                await self.close()

    async def _lost(self, exc: BaseException) -> DatabaseUnavailableError:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken: closing is best effort
                await conn.close()
        return DatabaseUnavailableError(f"the database went away: {exc}")

    async def accounts(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, AccountInfo]:
        """The registered accounts among ``ids``."""
        conn = await self.connection()
        try:
            async with conn.cursor() as cur:
                await cur.execute(
                    "SELECT account_id, tenant_id, is_active, margin_mode, broker_name"
                    " FROM public.mt5_user_accounts WHERE account_id = ANY(%s)", (list(ids),)
                )
                found = {r[0]: AccountInfo(*r) for r in await cur.fetchall()}
            await conn.rollback()
        except _OUTAGE as exc:
            raise await self._lost(exc) from exc
        except psycopg.Error as exc:
            await conn.rollback()
            raise BatchWriteError(f"cannot read mt5_user_accounts: {exc}") from exc
        finally:
            await self._release()
        return found

    async def write(self, batch: Batch) -> WriteResult:
        """Write ``batch`` in one transaction and commit; return what was written.

        Raises :class:`DatabaseUnavailableError` (retry later, do not ack) or
        :class:`BatchWriteError` (the batch cannot be written as this role).
        """
        conn = await self.connection()
        mode = ("values" if self.single_backend
                else "direct" if self.direct and not self._staged_batches else "staged")
        self._staged_batches = max(0, self._staged_batches - 1)
        try:
            try:
                try:
                    return await self._write(conn, batch, mode)
                except psycopg.errors.UniqueViolation:
                    if mode != "direct":
                        raise
                    # A redelivered row: write this batch (and the next few) the staged way.
                    await conn.rollback()
                    self._staged_batches = _STAGED_AFTER_CONFLICT
                    return await self._write(conn, batch, "staged")
            except psycopg.errors.IntegrityError:
                await conn.rollback()
                return await self._write(conn, batch, "careful")
        except _OUTAGE as exc:
            raise await self._lost(exc) from exc
        except psycopg.Error as exc:
            await conn.rollback()
            raise BatchWriteError(f"the database refused the batch: {exc}") from exc
        finally:
            await self._release()

    async def _write(self, conn: psycopg.AsyncConnection[Any], batch: Batch,
                     mode: str) -> WriteResult:
        self.last_mode = mode
        result = WriteResult(dead=list(batch.dead))
        tables = [t for t in WRITE_ORDER if batch.rows.get(t)]
        tables += [t for t in batch.rows if t not in WRITE_ORDER and batch.rows[t]]
        locked = False
        async with conn.cursor() as cur:
            for table in tables:
                rows, origins = sort_rows(batch.rows[table], batch.origins[table])
                if table in AUDITED_TABLES and not locked:
                    await self._lock_chains(cur, batch, result)
                    locked = True
                returning = table == _BALANCE
                refused = 0
                if mode == "careful":
                    inserted, refused = await self._careful(cur, table, rows, origins, result,
                                                            returning)
                elif mode == "values":
                    inserted = await self._insert_values(cur, table, rows, result, returning)
                elif mode == "direct":
                    inserted = await self._copy_direct(cur, table, rows, result, returning)
                else:
                    inserted = await self._copy(cur, table, rows, result, returning)
                result.written[table] = inserted
                # Rows the server refused are dead letters, neither written nor duplicates.
                result.duplicates[table] = len(rows) - inserted - refused
            if result.dead:
                # After the tables (the careful way adds the refused rows), in key order.
                await self._dead_letters(cur, sorted(
                    result.dead, key=lambda d: (d.stream, d.stream_seq, d.byte_offset)))
            if self.in_transaction is not None:
                if result.new_snapshots and not locked:
                    await self._lock_chains(cur, batch, result)
                await self.in_transaction(conn, result)
        await conn.commit()
        return result

    async def _lock_chains(self, cur: psycopg.AsyncCursor[Any], batch: Batch,
                           result: WriteResult) -> None:
        """Take, in sorted order, the audit-chain lock of every tenant this batch may audit:
        those of its audited rows and, when risk checks follow, of its new snapshots. The
        audit triggers take the same locks row by row; taken here first, in one order, they
        cannot deadlock two workers whose batches hold the tenants in different orders."""
        tenants = {row[1] for t in AUDITED_TABLES for row in batch.rows.get(t, ())}
        if self.in_transaction is not None:
            tenants.update(s[0] for s in result.new_snapshots)
        if tenants:
            await cur.execute(_LOCK_CHAINS, (AUDIT_CHAIN_LOCK, sorted(tenants)))  # type: ignore[type-var]

    async def _copy_direct(self, cur: psycopg.AsyncCursor[Any], table: str, rows: list[Row],
                           result: WriteResult, returning: bool) -> int:
        cols = sql.SQL(", ").join(map(sql.Identifier, TABLE_COLUMNS[table]))
        stmt = sql.SQL("COPY public.{} ({}) FROM STDIN").format(sql.Identifier(table), cols)
        async with cur.copy(stmt) as cp:
            for row in rows:
                await cp.write_row(row)
        if returning:  # every row is new (a duplicate would have aborted the COPY)
            result.new_snapshots.extend(tuple(row[i] for i in _SNAPSHOT_INDEX) for row in rows)
        return len(rows)

    async def _copy(self, cur: psycopg.AsyncCursor[Any], table: str, rows: list[Row],
                    result: WriteResult, returning: bool) -> int:
        stage = sql.Identifier(_stage_name(table))
        cols = sql.SQL(", ").join(map(sql.Identifier, TABLE_COLUMNS[table]))
        async with cur.copy(sql.SQL("COPY pg_temp.{} ({}) FROM STDIN").format(stage, cols)) as cp:
            for row in rows:
                await cp.write_row(row)
        # A temporary table is never scanned in parallel: the INSERT reads the stage in the
        # order it was written, so the sorted order holds.
        await cur.execute(_insert_select(table, returning))
        inserted = await _count_inserted(cur, result, returning)
        # ON COMMIT DELETE ROWS empties the stage at commit; a table staged twice in one
        # batch never happens (one entry per table), so no TRUNCATE is needed here.
        return inserted

    async def _insert_values(self, cur: psycopg.AsyncCursor[Any], table: str,
                             rows: list[Row], result: WriteResult, returning: bool) -> int:
        inserted = 0
        for chunk in _chunks(rows, max(_row_bytes(r) for r in rows[:16])):
            params = [v for row in chunk for v in row]
            await cur.execute(_insert_values(table, len(chunk), returning), params)
            inserted += await _count_inserted(cur, result, returning)
        return inserted

    async def _careful(self, cur: psycopg.AsyncCursor[Any], table: str, rows: list[Row],
                       origins: list[Origin], result: WriteResult,
                       returning: bool) -> tuple[int, int]:
        """Insert row by row under savepoints: ``(inserted, refused)``."""
        inserted = refused = 0
        stmt = _insert_values(table, 1, returning)
        for row, (ctx, offset) in zip(rows, origins, strict=True):
            await cur.execute("SAVEPOINT suho_row")
            try:
                await cur.execute(stmt, row)
            except psycopg.errors.IntegrityError as exc:
                await cur.execute("ROLLBACK TO SAVEPOINT suho_row")
                refused += 1
                what = exc.diag.constraint_name or type(exc).__name__
                result.dead.append(DeadLetterRecord.of(
                    ctx, "refused", f"{table}: {what}: {exc.diag.message_primary or exc}",
                    offset, 144,
                ))
                continue
            inserted += await _count_inserted(cur, result, returning)
            await cur.execute("RELEASE SAVEPOINT suho_row")
        return inserted, refused

    async def _dead_letters(self, cur: psycopg.AsyncCursor[Any],
                            dead: list[DeadLetterRecord]) -> None:
        if self.single_backend:
            for record in dead:  # rare; each below the engine's cap (raw is one message)
                await cur.execute(_insert_values(DEAD_LETTER_TABLE, 1, False), record.values())
            return
        cols = sql.SQL(", ").join(map(sql.Identifier, _DEAD_COLUMNS))
        await cur.executemany(
            sql.SQL("INSERT INTO public.{} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
                sql.Identifier(DEAD_LETTER_TABLE), cols,
                sql.SQL(", ").join(sql.Placeholder() * len(_DEAD_COLUMNS)),
            ),
            [d.values() for d in dead],
        )
