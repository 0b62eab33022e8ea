"""The writer's ways in and its lock order, on both database lanes: the direct COPY (a login
that bypasses row-level security) and its fallback when a redelivered row breaks a key, rows
inserted sorted by tenant and account, and the audit-chain locks taken in tenant order."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from suho_mt5.ingest.rows import packet_row
from suho_mt5.ingest.writer import AUDIT_CHAIN_LOCK, Batch, MessageContext, Writer
from tests.integration.ingest._support import (
    INGEST_LOGIN,
    Feed,
    IngestDb,
    libpq,
    make_ingest_login,
)

CTX = MessageContext("MT5_ACCOUNTS", 1, "s", b"", 1)


def _batch(feed: Feed, accounts: list[uuid.UUID], kind: str, per_account: int) -> Batch:
    """Rows of ``accounts`` in the given (unsorted) order, ``per_account`` each."""
    batch = Batch()
    for acc in accounts:
        for _ in range(per_account):
            table, row = packet_row(feed.packet(acc, kind), feed.accounts[acc], acc)
            batch.add(table, row, (CTX, 0))
    return batch


async def _write(url: str, *batches: Batch) -> list[tuple[int, int, str]]:
    writer = Writer(url)
    out = []
    try:
        for batch in batches:
            result = await writer.write(batch)
            out.append((sum(result.written.values()), sum(result.duplicates.values()),
                        writer.last_mode))
    finally:
        await writer.close()
    return out


def test_direct_copy_then_staged_when_a_redelivered_row_breaks_the_key(
    ingest_db: IngestDb,
) -> None:
    accounts = ingest_db.add_accounts(2)
    feed = Feed(ingest_db.accounts)
    first = _batch(feed, accounts, "quote", 50)
    second = _batch(feed, accounts, "snapshot", 10)
    bypass = make_ingest_login(ingest_db.admin_url, bypassrls=True)
    results = asyncio.run(_write(bypass, first, first, second))
    n = len(accounts) * 50
    assert results[0] == (n, 0, "direct")
    assert results[1] == (0, n, "staged")  # the COPY broke the key: written the staged way
    assert results[2][:2] == (len(accounts) * 10, 0)
    # Without BYPASSRLS PostgreSQL refuses COPY into a table under row-level security.
    assert asyncio.run(_write(ingest_db.ingest_url, second))[0] == (0, len(accounts) * 10,
                                                                    "staged")
    assert ingest_db.count("mt5_broker_quotes") == n


@pytest.mark.parametrize("bypassrls", [False, True], ids=["staged", "direct"])
def test_rows_are_inserted_sorted_by_tenant_and_account(ingest_db: IngestDb,
                                                        bypassrls: bool) -> None:
    accounts = ingest_db.add_accounts(3)
    feed = Feed(ingest_db.accounts)
    backwards = sorted(accounts, key=lambda a: (ingest_db.accounts[a], a.int), reverse=True)
    url = make_ingest_login(ingest_db.admin_url, bypassrls) if bypassrls else \
        ingest_db.ingest_url
    asyncio.run(_write(url, _batch(feed, backwards, "heartbeat", 5)))
    with ingest_db.connect() as conn:
        # Heap order within each table or chunk is the order the rows were inserted in.
        got = conn.execute("SELECT tableoid, tenant_id, account_id FROM mt5_ea_heartbeat"
                           " ORDER BY tableoid, ctid").fetchall()
    assert len(got) == len(accounts) * 5
    for oid in {r[0] for r in got}:
        keys = [(r[1], r[2].int) for r in got if r[0] == oid]
        assert keys == sorted(keys)


def test_audit_chain_locks_are_taken_in_tenant_order(ingest_db: IngestDb) -> None:
    """A batch holding orders of initech, then of acme: its writer must wait for acme's
    audit-chain lock before it takes initech's. Were the locks taken in row order, it would
    hold initech's while waiting for acme's, and a second writer holding acme's and wanting
    initech's would deadlock with it."""
    accounts = ingest_db.add_accounts(1, tenants=("acme", "initech"))
    by_tenant = sorted(accounts, key=lambda a: ingest_db.accounts[a], reverse=True)
    batch = _batch(Feed(ingest_db.accounts), by_tenant, "order", 3)

    def key(tenant: str) -> str:
        return AUDIT_CHAIN_LOCK + tenant

    async def scenario() -> bool:
        other = await psycopg.AsyncConnection.connect(libpq(ingest_db.admin_url))
        await other.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                            (key("acme"),))
        task = asyncio.create_task(_write(ingest_db.ingest_url, batch))
        while True:  # until the writer waits for a lock
            async with await psycopg.AsyncConnection.connect(
                    libpq(ingest_db.admin_url), autocommit=True) as watch:
                cur = await watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
                    " AND wait_event_type = 'Lock'", (INGEST_LOGIN,))
                row = await cur.fetchone()
            if row and row[0]:
                break
            assert not task.done(), task
            await asyncio.sleep(0.05)
        cur = await other.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))",
                                  (key("initech"),))
        row = await cur.fetchone()
        await other.commit()
        await other.close()
        assert (await task)[0][0] == len(batch.rows["mt5_trade_orders"])
        return bool(row and row[0])

    assert asyncio.run(scenario()), "the writer took initech's lock before acme's"
