"""The writer on the PGlite TimescaleDB engine (the demo's fallback): no COPY, every
statement below the engine's message cap, duplicates absorbed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import psycopg

from suho_mt5.db import Edition
from suho_mt5.db import psycopg_conninfo as conninfo
from suho_mt5.ingest.rows import packet_row
from suho_mt5.ingest.writer import PGLITE_MESSAGE_BYTES, Batch, MessageContext, Writer
from tests.db.schema._support import migrated_schema
from tests.integration.ingest._support import Feed
from tests.support.servers import TimescaleEngine


def test_writer_batches_below_the_engine_cap_and_absorbs_duplicates(
    start_timescale_engine: Callable[[], TimescaleEngine],
) -> None:
    url = start_timescale_engine().url
    with migrated_schema(url, Edition.TIMESCALE):
        pass
    acc = uuid.uuid4()
    with psycopg.connect(conninfo(url)[0], autocommit=True) as conn:
        conn.execute("INSERT INTO mt5_user_accounts (account_id, tenant_id, user_id, broker_name,"
                     " broker_server, mt5_login, mt5_account_number, account_type) VALUES"
                     " (%s, 'acme', 'u', 'B', 'B-Demo', 1, '1', 'demo')", (acc,))
    feed = Feed({acc: "acme"})
    batch = Batch()
    ctx = MessageContext("MT5_ACCOUNTS", 1, "s", b"", 1)
    for i in range(3000):
        table, row = packet_row(feed.packet(acc, ("quote", "snapshot", "heartbeat")[i % 3]),
                                "acme", acc)
        batch.add(table, row, (ctx, 0))
    # Sent as multi-row statements well over the cap in total, each below it.
    assert sum(len(str(v)) for rows in batch.rows.values() for r in rows for v in r) > (
        4 * PGLITE_MESSAGE_BYTES)

    async def write_twice() -> tuple[int, int]:
        writer = Writer(url)
        assert writer.single_backend
        try:
            first = await writer.write(batch)
            second = await writer.write(batch)
        finally:
            await writer.close()
        return sum(first.written.values()), sum(second.duplicates.values())

    written, duplicates = asyncio.run(write_twice())
    assert written == 3000 and duplicates == 3000
    with psycopg.connect(conninfo(url)[0]) as conn:
        counts = [conn.execute(f"SELECT count(*) FROM {t}").fetchone() for t in
                  ("mt5_broker_quotes", "mt5_account_balance_history", "mt5_ea_heartbeat")]
    assert counts == [(1000,), (1000,), (1000,)]
