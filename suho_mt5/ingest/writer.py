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

:meth:`Writer.transaction` writes a batch and leaves its transaction open for the caller's
own statements (the bridge's risk events) until the commit; :meth:`Writer.write` is the
same with nothing added.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from suho_mt5.db import psycopg_conninfo
from suho_mt5.errors import BatchWriteError, DatabaseUnavailableError
from suho_mt5.ingest._sql import (
    AUDIT_CHAIN_LOCK,
    AUDITED_TABLES,
    DEAD_LETTER_TABLE,
    LOCK_CHAINS,
    PGLITE_MESSAGE_BYTES,
    SNAPSHOT_COLUMNS,
    SNAPSHOT_INDEX,
    WRITE_ORDER,
    chunks,
    copy_into,
    insert_dead_letters,
    insert_select,
    insert_values,
    sort_rows,
    stage_ddl,
)
from suho_mt5.ingest.batch import Batch, DeadLetterRecord, MessageContext, Origin, WriteResult
from suho_mt5.ingest.rows import TABLE_COLUMNS, Row
from suho_mt5.protocol import PACKET_SIZE

__all__ = [
    "AUDITED_TABLES",
    "AUDIT_CHAIN_LOCK",
    "DEAD_LETTER_TABLE",
    "PGLITE_MESSAGE_BYTES",
    "SNAPSHOT_COLUMNS",
    "WRITE_ORDER",
    "Batch",
    "DeadLetterRecord",
    "MessageContext",
    "Origin",
    "Transaction",
    "WriteResult",
    "Writer",
    "sort_rows",
]

_BALANCE: Final = "mt5_account_balance_history"
#: Batches written the staged way after a redelivered row aborted a direct COPY.
_STAGED_AFTER_CONFLICT: Final = 20
_OUTAGE: Final = (psycopg.OperationalError,)


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


@dataclass(frozen=True, slots=True)
class Transaction:
    """A batch written and not committed yet: the body of :meth:`Writer.transaction`."""

    conn: psycopg.AsyncConnection[Any]
    result: WriteResult


class Writer:
    """One database connection writing batches. Not safe for concurrent use: one per worker.

    ``url`` is a SQLAlchemy or libpq URL of a login in ``mt5_ingest``. On the PGlite engine
    (``single_backend``) the connection is opened for each batch (and account lookup) and
    closed after its commit, so other clients of the engine get their turn between batches.
    """

    def __init__(self, url: str) -> None:
        self.conninfo, self.single_backend = psycopg_conninfo(url)
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
                        await cur.execute(stage_ddl(table))
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

    @contextlib.asynccontextmanager
    async def connected(self, refused: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The connection for one piece of work (a transaction the body ends).

        An outage raises :class:`DatabaseUnavailableError` (retry later, do not ack); any
        other database error rolls back and raises :class:`BatchWriteError` (``refused``:
        what could not be done). On the PGlite engine the connection is closed after.
        """
        conn = await self.connection()
        try:
            yield conn
        except _OUTAGE as exc:
            raise await self._lost(exc) from exc
        except psycopg.Error as exc:
            await conn.rollback()
            raise BatchWriteError(f"{refused}: {exc}") from exc
        except Exception:
            with contextlib.suppress(Exception):
                await conn.rollback()
            raise
        finally:
            await self._release()

    @contextlib.asynccontextmanager
    async def transaction(self, batch: Batch, *,
                          audits_snapshots: bool = False) -> AsyncIterator[Transaction]:
        """Write ``batch`` in one transaction, run the body in it, and commit.

        The rows and dead letters are written on entry (a redelivered or a refused row makes
        the writer write the batch again, staged or row by row, before the body runs); the
        body adds its own statements on ``tx.conn``, and the commit follows it. With
        ``audits_snapshots`` the body writes audited rows for the tenants of the batch's new
        snapshots (risk events): their audit-chain locks are taken with the batch's, in one
        order. Raises like :meth:`connected`.
        """
        async with self.connected("the database refused the batch") as conn:
            result = await self._write_rows(conn, batch, audits_snapshots)
            yield Transaction(conn, result)
            await conn.commit()

    async def write(self, batch: Batch) -> WriteResult:
        """Write ``batch`` in one transaction and commit; return what was written.

        Raises :class:`DatabaseUnavailableError` (retry later, do not ack) or
        :class:`BatchWriteError` (the batch cannot be written as this role).
        """
        async with self.transaction(batch) as tx:
            pass
        return tx.result

    async def _write_rows(self, conn: psycopg.AsyncConnection[Any], batch: Batch,
                          audits_snapshots: bool) -> WriteResult:
        mode = ("values" if self.single_backend
                else "direct" if self.direct and not self._staged_batches else "staged")
        self._staged_batches = max(0, self._staged_batches - 1)
        try:
            try:
                return await self._write(conn, batch, mode, audits_snapshots)
            except psycopg.errors.UniqueViolation:
                if mode != "direct":
                    raise
                # A redelivered row: write this batch (and the next few) the staged way.
                await conn.rollback()
                self._staged_batches = _STAGED_AFTER_CONFLICT
                return await self._write(conn, batch, "staged", audits_snapshots)
        except psycopg.errors.IntegrityError:
            await conn.rollback()
            return await self._write(conn, batch, "careful", audits_snapshots)

    async def _write(self, conn: psycopg.AsyncConnection[Any], batch: Batch, mode: str,
                     audits_snapshots: bool) -> WriteResult:
        self.last_mode = mode
        result = WriteResult(dead=list(batch.dead))
        tables = [t for t in WRITE_ORDER if batch.rows.get(t)]
        tables += [t for t in batch.rows if t not in WRITE_ORDER and batch.rows[t]]
        locked = False
        async with conn.cursor() as cur:
            for table in tables:
                rows, origins = sort_rows(batch.rows[table], batch.origins[table])
                if table in AUDITED_TABLES and not locked:
                    await _lock_chains(cur, batch, result, audits_snapshots)
                    locked = True
                returning = table == _BALANCE
                refused = 0
                if mode == "careful":
                    inserted, refused = await _careful(cur, table, rows, origins, result, returning)
                elif mode == "values":
                    inserted = await _insert_values(cur, table, rows, result, returning)
                elif mode == "direct":
                    inserted = await _copy_direct(cur, table, rows, result, returning)
                else:
                    inserted = await _copy(cur, table, rows, result, returning)
                result.written[table] = inserted
                # Rows the server refused are dead letters, neither written nor duplicates.
                result.duplicates[table] = len(rows) - inserted - refused
            if result.dead:
                # After the tables (the careful way adds the refused rows), in key order.
                await _dead_letters(cur, sorted(
                    result.dead, key=lambda d: (d.stream, d.stream_seq, d.byte_offset)),
                    self.single_backend)
            if audits_snapshots and result.new_snapshots and not locked:
                await _lock_chains(cur, batch, result, audits_snapshots)
        return result


async def _lock_chains(cur: psycopg.AsyncCursor[Any], batch: Batch, result: WriteResult,
                       audits_snapshots: bool) -> None:
    """Take, in sorted order, the audit-chain lock of every tenant this batch may audit:
    those of its audited rows and, when risk checks follow, of its new snapshots. The
    audit triggers take the same locks row by row; taken here first, in one order, they
    cannot deadlock two workers whose batches hold the tenants in different orders."""
    tenants = {row[1] for t in AUDITED_TABLES for row in batch.rows.get(t, ())}
    if audits_snapshots:
        tenants.update(s[0] for s in result.new_snapshots)
    if tenants:
        await cur.execute(LOCK_CHAINS, (AUDIT_CHAIN_LOCK, sorted(tenants)))  # type: ignore[type-var]


async def _copy_direct(cur: psycopg.AsyncCursor[Any], table: str, rows: list[Row],
                       result: WriteResult, returning: bool) -> int:
    async with cur.copy(copy_into(table, staged=False)) as cp:
        for row in rows:
            await cp.write_row(row)
    if returning:  # every row is new (a duplicate would have aborted the COPY)
        result.new_snapshots.extend(tuple(row[i] for i in SNAPSHOT_INDEX) for row in rows)
    return len(rows)


async def _copy(cur: psycopg.AsyncCursor[Any], table: str, rows: list[Row],
                result: WriteResult, returning: bool) -> int:
    async with cur.copy(copy_into(table, staged=True)) as cp:
        for row in rows:
            await cp.write_row(row)
    # A temporary table is never scanned in parallel: the INSERT reads the stage in the
    # order it was written, so the sorted order holds.
    await cur.execute(insert_select(table, returning))
    # ON COMMIT DELETE ROWS empties the stage at commit; a table staged twice in one
    # batch never happens (one entry per table), so no TRUNCATE is needed here.
    return await _count_inserted(cur, result, returning)


async def _insert_values(cur: psycopg.AsyncCursor[Any], table: str, rows: list[Row],
                         result: WriteResult, returning: bool) -> int:
    inserted = 0
    for chunk in chunks(rows):
        params = [v for row in chunk for v in row]
        await cur.execute(insert_values(table, len(chunk), returning), params)
        inserted += await _count_inserted(cur, result, returning)
    return inserted


async def _careful(cur: psycopg.AsyncCursor[Any], table: str, rows: list[Row],
                   origins: list[Origin], result: WriteResult,
                   returning: bool) -> tuple[int, int]:
    """Insert row by row under savepoints: ``(inserted, refused)``."""
    inserted = refused = 0
    stmt = insert_values(table, 1, returning)
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
                offset, PACKET_SIZE,
            ))
            continue
        inserted += await _count_inserted(cur, result, returning)
        await cur.execute("RELEASE SAVEPOINT suho_row")
    return inserted, refused


async def _dead_letters(cur: psycopg.AsyncCursor[Any], dead: list[DeadLetterRecord],
                        single_backend: bool) -> None:
    if single_backend:
        for record in dead:  # rare; each below the engine's cap (raw is one message)
            await cur.execute(insert_dead_letters(), record.values())
        return
    await cur.executemany(insert_dead_letters(), [d.values() for d in dead])
