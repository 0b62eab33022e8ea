"""Outages and races: the database down for 30 s, nats-server restarted, a redelivery racing
the original. Exactly once every time, and no ack for a batch that was not committed."""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

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
    make_ingest_login,
    publish_all,
    quick_settings,
    running_bridge,
    wait_until_drained,
)
from tests.integration.ingest.conftest import OutageDb
from tests.support.servers import NatsServer

# The acceptance asks for 30 s; SUHO_TEST_OUTAGE_SECONDS shortens it for a quick local run.
OUTAGE_SECONDS = max(4, int(os.environ.get("SUHO_TEST_OUTAGE_SECONDS", "30")))
CONTRACT = DEFAULT_CONTRACT.with_bridge(ack_wait_seconds=3)


async def _rows(db: IngestDb) -> int:
    def count() -> int:
        with contextlib.suppress(psycopg.OperationalError):
            return sum(db.counts().values())
        return -1

    return await asyncio.to_thread(count)


def test_database_down_30s_mid_run_no_ack_without_commit_then_exactly_once(
    outage_db: OutageDb, nats: NatsServer
) -> None:
    outage_db.add_accounts(2)
    frames, published = frames_for(Feed(outage_db.accounts), 10_000, 50)

    async def scenario() -> tuple[Any, Any, float]:
        async with jetstream(nats.url, CONTRACT) as (_nc, js):
            await publish_all(js, frames)
            settings = quick_settings(outage_db, nats.url, contract=CONTRACT, batch_size=5,
                                      retry_max=2.0)
            async with running_bridge(settings) as bridge:
                while await _rows(outage_db) <= 0:
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(outage_db.executor.stop)
                await asyncio.sleep(2)  # the batch in flight fails; nothing commits now
                during = await consumer_state(js, CONTRACT)
                await asyncio.sleep(OUTAGE_SECONDS - 2)
                after = await consumer_state(js, CONTRACT)
                retries = bridge.metrics.db_retries._value.get()
                await asyncio.to_thread(outage_db.executor.start)
                await wait_until_drained(js, outage_db, published.rows, CONTRACT)
                return during, after, retries

    during, after, retries = asyncio.run(scenario())
    # While the database was down the ack floor did not move, the fetched batch stayed
    # delivered-but-unacked, and in_progress kept the server from redelivering it.
    assert after.ack_floor.stream_seq == during.ack_floor.stream_seq
    assert after.num_ack_pending > 0
    assert after.delivered.stream_seq > after.ack_floor.stream_seq
    assert after.num_redelivered == 0
    assert retries >= 3
    assert_exactly_once(outage_db, published)


def test_database_restarted_while_the_bridge_is_idle_then_exactly_once(
    outage_db: OutageDb, nats: NatsServer
) -> None:
    """A quick restart (``pg_ctl stop -m fast``, start) between two batches: no batch saw
    the outage, so the bridge learns of it on its next write, on a connection the restart
    killed. That write fails as an outage (retried, not acked, not dead-lettered), the
    bridge reconnects, and every row is written once."""
    outage_db.add_accounts(2)
    frames, published = frames_for(Feed(outage_db.accounts), 2_000, 50)
    half = len(frames) // 2

    async def scenario() -> float:
        async with jetstream(nats.url, CONTRACT) as (_nc, js):
            await publish_all(js, frames[:half])
            settings = quick_settings(outage_db, nats.url, contract=CONTRACT, batch_size=5,
                                      retry_max=1.0)
            async with running_bridge(settings) as bridge:
                while True:  # the first half written and acked: the bridge is idle
                    state = await consumer_state(js, CONTRACT)
                    if state.ack_floor.stream_seq == half and not state.num_ack_pending:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.to_thread(outage_db.executor.stop)
                await asyncio.to_thread(outage_db.executor.start)
                await publish_all(js, frames[half:])
                await wait_until_drained(js, outage_db, published.rows, CONTRACT)
                return float(bridge.metrics.db_retries._value.get())

    retries = asyncio.run(scenario())
    assert retries >= 1  # the write on the dead connection failed as an outage
    assert_exactly_once(outage_db, published)


def test_nats_server_restarted_mid_run_exactly_once(ingest_db: IngestDb,
                                                     nats: NatsServer) -> None:
    ingest_db.add_accounts(2)
    frames, published = frames_for(Feed(ingest_db.accounts), 10_000, 50)
    half = len(frames) // 2

    async def scenario() -> None:
        async with jetstream(nats.url, CONTRACT) as (_nc, js):
            await publish_all(js, frames[:half])
            async with running_bridge(quick_settings(ingest_db, nats.url, contract=CONTRACT,
                                                     batch_size=5)):
                while await _rows(ingest_db) <= 0:
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(nats.restart)
                await asyncio.sleep(1.0)  # clients reconnect
                await publish_all(js, frames[half:])
                await wait_until_drained(js, ingest_db, published.rows, CONTRACT)

    asyncio.run(scenario())
    assert_exactly_once(ingest_db, published)


@pytest.mark.parametrize("bypassrls", [False, True], ids=["staged", "direct"])
def test_processing_slower_than_ack_wait_redelivery_races_no_duplicates(
    ingest_db: IngestDb, nats: NatsServer, bypassrls: bool
) -> None:
    """Staged: the second INSERT ... ON CONFLICT finds the rows. Direct (a BYPASSRLS login):
    the second COPY breaks the key, and the batch is written again the staged way."""
    if bypassrls:
        ingest_db.ingest_url = make_ingest_login(ingest_db.admin_url, bypassrls=True)
    ingest_db.add_accounts(2)
    frames, published = frames_for(Feed(ingest_db.accounts), 3_000, 50, kinds=("quote",))
    contract = DEFAULT_CONTRACT.with_bridge(ack_wait_seconds=1)

    async def scenario() -> tuple[int, float]:
        async with jetstream(nats.url, contract) as (_nc, js):
            # A long-running transaction holds a lock that blocks the bridge's INSERT for
            # four AckWaits. One worker fetches the whole batch and blocks; the server
            # redelivers it to the other worker, which blocks too; then both write it.
            await publish_all(js, frames)
            lock = await psycopg.AsyncConnection.connect(libpq(ingest_db.admin_url))
            await lock.execute("LOCK TABLE mt5_broker_quotes IN SHARE MODE")
            settings = quick_settings(ingest_db, nats.url, contract=contract,
                                      batch_size=len(frames))
            async with running_bridge(settings) as first:
                while (await consumer_state(js, contract)).num_ack_pending < len(frames):
                    await asyncio.sleep(0.05)
                async with running_bridge(settings) as second:
                    redelivered = 0
                    for _ in range(40):
                        await asyncio.sleep(0.1)
                        redelivered = max(redelivered,
                                          (await consumer_state(js, contract)).num_redelivered)
                    await lock.commit()
                    await lock.close()
                    await wait_until_drained(js, ingest_db, published.rows, contract)
                    duplicates = sum(
                        s.value for b in (first, second)
                        for s in b.metrics.duplicates.collect()[0].samples
                        if s.name.endswith("_total"))
            return redelivered, duplicates

    redelivered, duplicates = asyncio.run(scenario())
    assert redelivered > 0, "the server redelivered while the first delivery was in flight"
    assert duplicates > 0, "both deliveries were written; the key absorbed the second"
    assert_exactly_once(ingest_db, published)


def test_a_message_past_max_deliver_is_dead_lettered(ingest_db: IngestDb,
                                                      nats: NatsServer) -> None:
    (acc,) = ingest_db.add_accounts(1, tenants=("acme",))
    contract = DEFAULT_CONTRACT.with_bridge(ack_wait_seconds=1, max_deliver=2)
    frames, _ = frames_for(Feed(ingest_db.accounts), 3, 3, kinds=("quote",))

    async def scenario() -> None:
        async with jetstream(nats.url, contract) as (_nc, js):
            await publish_all(js, frames)
            # A consumer that takes the message and never acks (a bridge crashing on it):
            spec = contract.bridge
            rogue = await js.pull_subscribe_bind(durable=spec.durable, stream=spec.stream)
            await rogue.fetch(1, timeout=5)
            await asyncio.sleep(1.2)
            (again,) = await rogue.fetch(1, timeout=5)
            assert again.metadata.num_delivered == 2
            await rogue.unsubscribe()
            async with running_bridge(quick_settings(ingest_db, nats.url, contract=contract)):
                for _ in range(100):
                    if ingest_db.count("mt5_ingest_dead_letters"):
                        break
                    await asyncio.sleep(0.1)

    asyncio.run(scenario())
    with ingest_db.connect() as conn:
        dead = conn.execute("SELECT reason, detail, raw, packet_count, account_id"
                            " FROM mt5_ingest_dead_letters").fetchall()
    assert len(dead) == 1
    reason, detail, raw, count, account = dead[0]
    assert reason == "max_deliver" and "delivered 2 times" in detail
    assert raw == frames[0][1] and count == 3 and account == acc
    assert ingest_db.count("mt5_broker_quotes") == 0
