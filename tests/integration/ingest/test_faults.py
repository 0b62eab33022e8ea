"""Faults the bridge must ride out with nothing lost (docs/security.md, "Faults"): a database
that answers slower than the consumer's AckWait for a whole minute."""

from __future__ import annotations

import asyncio
import os

import psycopg
import pytest

from suho_mt5.ingest import DEFAULT_CONTRACT
from tests.integration.ingest._support import (
    Feed,
    IngestDb,
    assert_exactly_once,
    consumer_state,
    frames_for,
    jetstream,
    libpq,
    publish_all,
    quick_settings,
    running_bridge,
    wait_until_drained,
)
from tests.support.servers import NatsServer

# The acceptance asks for a minute; SUHO_TEST_SLOW_DB_SECONDS shortens it for a local run.
SLOW_SECONDS = max(5, int(os.environ.get("SUHO_TEST_SLOW_DB_SECONDS", "60")))


@pytest.mark.timeout(SLOW_SECONDS + 180)
def test_a_database_slower_than_ack_wait_for_a_minute_loses_and_duplicates_nothing(
    ingest_db: IngestDb, nats: NatsServer
) -> None:
    """AckWait 1 s; a transaction holds a lock on the quotes table for a minute, so every
    batch of the bridge waits 60 AckWaits; the server redelivers meanwhile. When the lock
    goes, every packet is stored exactly once and the consumer is drained."""
    ingest_db.add_accounts(2)
    frames, published = frames_for(Feed(ingest_db.accounts), 2_000, 50, kinds=("quote",))
    contract = DEFAULT_CONTRACT.with_bridge(ack_wait_seconds=1)

    async def scenario() -> int:
        async with jetstream(nats.url, contract) as (_nc, js):
            lock = await psycopg.AsyncConnection.connect(libpq(ingest_db.admin_url))
            await lock.execute("LOCK TABLE mt5_broker_quotes IN SHARE MODE")
            await publish_all(js, frames)
            settings = quick_settings(ingest_db, nats.url, contract=contract, batch_size=200)
            async with running_bridge(settings):
                redelivered = 0
                for _ in range(SLOW_SECONDS):
                    await asyncio.sleep(1)
                    redelivered = max(redelivered,
                                      (await consumer_state(js, contract)).num_redelivered)
                await lock.commit()
                await lock.close()
                await wait_until_drained(js, ingest_db, published.rows, contract)
            return redelivered

    redelivered = asyncio.run(scenario())
    assert redelivered > 0, "the server redelivered while the database was slow"
    assert_exactly_once(ingest_db, published)
