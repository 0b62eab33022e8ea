"""The Data Bridge on a 3-node NATS JetStream cluster with R3 streams (docs/scaling.md):
a node SIGKILLed in the middle of ingesting 100,000 packets into native TimescaleDB, and
restarted later; every packet is in TimescaleDB exactly once."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
import sqlalchemy as sa

from suho_mt5.db import Edition
from suho_mt5.ingest import DEFAULT_CONTRACT, setup_streams
from suho_mt5.protocol import decode_frame
from tests.db.schema._support import migrated_schema
from tests.integration.ingest._support import (
    TABLE_OF,
    Feed,
    IngestDb,
    assert_exactly_once,
    bridge_process,
    consumer_state,
    frames_for,
    jetstream,
    make_ingest_login,
    publish_all,
    stop_process,
    wait_until_drained,
)
from tests.support.fixtures import PgServer
from tests.support.servers import NatsCluster, wait_until

PACKETS = 100_000
# A killed node's unacked deliveries come back after AckWait: short, for a test.
CONTRACT = DEFAULT_CONTRACT.with_bridge(ack_wait_seconds=5)


@pytest.fixture
def ingest_db(ts_server: PgServer) -> Iterator[IngestDb]:
    name = ts_server.create_database()
    admin = ts_server.url(name)
    try:
        with migrated_schema(admin, Edition.TIMESCALE):
            pass
        # The login docs/ingest.md recommends: it bypasses row-level security (direct COPY).
        yield IngestDb(admin, make_ingest_login(admin, bypassrls=True))
    finally:
        ts_server.drop_database(name)


def _keys_published(frames: list[tuple[str, bytes, str]]) -> dict[str, set[tuple[str, int]]]:
    """``{table: {(account_id, sequence)}}`` of every packet in ``frames``."""
    keys: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for subject, payload, _ in frames:
        table = TABLE_OF[subject.rsplit(".", 1)[1]]
        for packet in decode_frame(payload):
            keys[table].add((str(uuid.UUID(bytes=packet.account_id)), packet.sequence))
    return keys


def _keys_stored(db: IngestDb, tables: set[str]) -> dict[str, set[tuple[str, int]]]:
    engine = sa.create_engine(sa.make_url(db.admin_url))
    try:
        with engine.connect() as conn:
            return {t: {(str(a), int(s)) for a, s in conn.execute(
                sa.text(f"SELECT account_id, sequence FROM {t}"))} for t in tables}
    finally:
        engine.dispose()


def _rows(db: IngestDb) -> int:
    return sum(db.counts().values())


def _wait_rows(db: IngestDb, at_least: int) -> None:
    wait_until(f"{at_least} rows", lambda: _rows(db) >= at_least, 120, every=0.05)


def test_a_node_killed_mid_ingest_loses_and_doubles_nothing(
    ingest_db: IngestDb, nats_cluster: NatsCluster, tmp_path: Path
) -> None:
    ingest_db.add_accounts(4)
    frames, published = frames_for(Feed(ingest_db.accounts), PACKETS, 100)
    assert published.packets == PACKETS

    async def declare_and_publish() -> tuple[int, str]:
        async with jetstream(nats_cluster.url, setup=False) as (_nc, js):
            declared = await setup_streams(js, CONTRACT)
            await publish_all(js, frames)
            info = await consumer_state(js, CONTRACT)
            return min(d.replicas for d in declared), info.cluster.leader

    replicas, consumer_leader = asyncio.run(declare_and_publish())
    assert replicas == 3, "a 3-node cluster gets 3 copies of everything by default"

    log = tmp_path / "bridge.log"
    bridge = bridge_process(ingest_db.ingest_url, nats_cluster.url, "--workers", "2",
                            "--batch-size", "50", log=log)
    try:
        started = time.monotonic()
        _wait_rows(ingest_db, PACKETS // 5)
        # Kill the node that leads the bridge's consumer: the worst one to lose.
        victim = nats_cluster.node_named(consumer_leader)
        rows_at_kill = _rows(ingest_db)
        killed = time.monotonic()
        nats_cluster.kill(victim)
        assert rows_at_kill < PACKETS * 6 // 10, "killed too late to prove anything"
        killed_at = datetime.now(UTC)
        _wait_rows(ingest_db, PACKETS * 6 // 10)  # the bridge goes on with one node down
        nats_cluster.restart(victim)
        restarted = time.monotonic()

        async def drain() -> None:
            async with jetstream(nats_cluster.url, setup=False) as (_nc, js):
                await wait_until_drained(js, ingest_db, published.rows, CONTRACT,
                                         timeout=180)

        asyncio.run(drain())
        done = time.monotonic()
    finally:
        code = stop_process(bridge)
    assert code == 0, log.read_text()[-3000:]
    assert_exactly_once(ingest_db, published)
    expected = _keys_published(frames)
    assert _keys_stored(ingest_db, set(expected)) == expected
    # The figures docs/scaling.md quotes (pytest -s shows them).
    text = log.read_text()
    duplicates = sum(int(m) for m in re.findall(r"written, (\d+) duplicate", text))
    commits = [datetime.strptime(m, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC)
               for m in re.findall(r"^(\S+ \S+) INFO .*batch committed", text, re.M)]
    after = [killed_at, *(t for t in commits if t > killed_at)]
    stall = max((b - a).total_seconds() for a, b in pairwise(after))
    print(f"\nNATS node {victim.server_name} (the consumer's leader) SIGKILLed at "
          f"{rows_at_kill:,} of {PACKETS:,} rows; longest pause between committed batches "
          f"after the kill {stall:.1f} s; node restarted after {restarted - killed:.1f} s; "
          f"all rows {done - started:.1f} s after the bridge started; {duplicates:,} "
          f"redelivered rows found already stored; {text.count('not confirmed')} batches "
          "with unconfirmed acks")
