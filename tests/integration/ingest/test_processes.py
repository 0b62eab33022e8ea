"""The bridge as operators run it (``suho-mt5 ingest run``): killed, stopped, scaled out."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

from suho_mt5.ingest import DEFAULT_CONTRACT
from tests.integration.ingest._support import (
    Feed,
    IngestDb,
    assert_exactly_once,
    bridge_process,
    consumer_state,
    frames_for,
    jetstream,
    publish_all,
    stop_process,
    wait_until_drained,
)
from tests.support.servers import NatsServer

# A killed bridge's unacked messages come back after AckWait: keep it short in tests.
CONTRACT = DEFAULT_CONTRACT.with_bridge(ack_wait_seconds=3)


def _wait_rows(db: IngestDb, at_least: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = sum(db.counts().values())
        if n >= at_least:
            return n
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} rows after {timeout} s")


def test_sigkill_at_a_random_point_then_restart_is_exactly_once(
    ingest_db: IngestDb, nats: NatsServer, tmp_path: Path
) -> None:
    ingest_db.add_accounts(3)
    frames, published = frames_for(Feed(ingest_db.accounts), 30_000, 100)
    asyncio.run(_publish(nats.url, frames))
    args = ("--batch-size", "20", "--workers", "2")
    first = bridge_process(ingest_db.ingest_url, nats.url, *args, log=tmp_path / "first.log")
    try:
        # A random point of the run: somewhere between 5 % and 60 % of the rows written.
        _wait_rows(ingest_db, random.randint(published.rows // 20, published.rows * 6 // 10))
    finally:
        assert stop_process(first, signal.SIGKILL) == -signal.SIGKILL
    killed_at = sum(ingest_db.counts().values())
    assert killed_at < published.rows, "killed too late to prove anything: publish more"
    second = bridge_process(ingest_db.ingest_url, nats.url, *args, log=tmp_path / "second.log")
    try:
        asyncio.run(_drain(nats.url, ingest_db, published.rows))
    finally:
        assert stop_process(second) == 0
    assert_exactly_once(ingest_db, published)


def test_sigterm_finishes_and_acks_the_in_flight_batch_and_exits_0(
    ingest_db: IngestDb, nats: NatsServer, tmp_path: Path
) -> None:
    ingest_db.add_accounts(3)
    frames, _published = frames_for(Feed(ingest_db.accounts), 20_000, 100)
    asyncio.run(_publish(nats.url, frames))
    proc = bridge_process(ingest_db.ingest_url, nats.url, "--batch-size", "10",
                          log=tmp_path / "bridge.log")
    try:
        _wait_rows(ingest_db, 1)
    finally:
        assert stop_process(proc, signal.SIGTERM) == 0
    assert "bridge stopped" in (tmp_path / "bridge.log").read_text()

    async def state() -> tuple[int, int, int]:
        async with jetstream(nats.url, setup=False) as (_nc, js):
            info = await consumer_state(js)
            return info.num_ack_pending, info.num_pending, info.ack_floor.stream_seq

    ack_pending, pending, ack_floor = asyncio.run(state())
    assert ack_pending == 0, "every delivered batch was committed and acked before exit"
    assert 0 < pending < len(frames)
    # Frames went into the stream in order: stream sequence n is frames[n - 1].
    acked_packets = sum(len(payload) // 144 for _, payload, _ in frames[:ack_floor])
    assert sum(ingest_db.counts().values()) == acked_packets


def test_two_bridge_processes_share_one_consumer_exactly_once(
    ingest_db: IngestDb, nats: NatsServer, tmp_path: Path
) -> None:
    ingest_db.add_accounts(3)
    frames, published = frames_for(Feed(ingest_db.accounts), 20_000, 50)
    asyncio.run(_publish(nats.url, []))  # the streams and the consumer, before the bridges
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [bridge_process(ingest_db.ingest_url, nats.url, "--batch-size", "10", log=log)
             for log in logs]
    try:
        time.sleep(1.5)  # both subscribed before the first message
        asyncio.run(_publish(nats.url, frames))
        asyncio.run(_drain(nats.url, ingest_db, published.rows))
    finally:
        codes = [stop_process(p) for p in procs]
    assert codes == [0, 0]
    assert_exactly_once(ingest_db, published)
    for log in logs:
        assert "batch committed" in log.read_text(), f"{log.name} did no work"


def test_three_bridge_processes_one_sigkilled_mid_run_exactly_once(
    ingest_db: IngestDb, nats: NatsServer, tmp_path: Path
) -> None:
    """Three ``suho-mt5 ingest run`` processes share the durable consumer; one is SIGKILLed
    while it holds batches (a random point between 10 % and 50 % of the rows) and is not
    restarted: JetStream redelivers what it held to the other two after AckWait (3 s here),
    and every packet is in the database once."""
    ingest_db.add_accounts(4)
    frames, published = frames_for(Feed(ingest_db.accounts), 30_000, 50)
    asyncio.run(_publish(nats.url, []))  # the streams and the consumer, before the bridges
    logs = [tmp_path / f"bridge-{i}.log" for i in range(3)]
    procs = [bridge_process(ingest_db.ingest_url, nats.url, "--batch-size", "10", log=log)
             for log in logs]
    try:
        time.sleep(1.5)  # all three subscribed before the first message
        asyncio.run(_publish(nats.url, frames))
        _wait_rows(ingest_db, random.randint(published.rows // 10, published.rows // 2))
        assert stop_process(procs[0], signal.SIGKILL) == -signal.SIGKILL
        killed_at = sum(ingest_db.counts().values())
        assert killed_at < published.rows, "killed too late to prove anything: publish more"
        asyncio.run(_drain(nats.url, ingest_db, published.rows))
    finally:
        if procs[0].poll() is None:  # the test failed before the kill
            stop_process(procs[0], signal.SIGKILL)
        codes = [stop_process(p) for p in procs[1:]]
    assert codes == [0, 0]
    assert_exactly_once(ingest_db, published)
    for log in logs:
        assert "batch committed" in log.read_text(), f"{log.name} did no work"
    print(f"\n3 bridge processes: one SIGKILLed at {killed_at} of {published.rows} rows; "
          "the other two finished, every packet once")


async def _publish(url: str, frames: list[tuple[str, bytes, str]]) -> None:
    async with jetstream(url, CONTRACT) as (_nc, js):
        await publish_all(js, frames)


async def _drain(url: str, db: IngestDb, rows: int) -> None:
    async with jetstream(url, setup=False) as (_nc, js):
        await wait_until_drained(js, db, rows)
