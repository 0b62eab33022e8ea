"""nats-server is real: JetStream creates a stream, a durable consumer receives and acks."""

from __future__ import annotations

import asyncio

import nats
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from tests.support.servers import NatsServer


async def _roundtrip(url: str) -> tuple[list[bytes], int, int]:
    nc = await nats.connect(url, connect_timeout=5)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="SMOKE", subjects=["smoke.>"]))
        for i in range(3):
            ack = await js.publish(f"smoke.account.{i}", f"packet-{i}".encode())
            assert ack.stream == "SMOKE"
        sub = await js.pull_subscribe(
            "smoke.>", durable="bridge", config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
        )
        msgs = await sub.fetch(3, timeout=5)
        for msg in msgs:
            await msg.ack_sync()
        info = await js.consumer_info("SMOKE", "bridge")
        stream = await js.stream_info("SMOKE")
        await js.delete_stream("SMOKE")
        return [m.data for m in msgs], info.num_ack_pending, stream.state.messages
    finally:
        await nc.close()


def test_jetstream_durable_consumer_receives_and_acks(nats_server: NatsServer) -> None:
    data, ack_pending, stored = asyncio.run(_roundtrip(nats_server.url))
    assert data == [b"packet-0", b"packet-1", b"packet-2"]
    assert ack_pending == 0
    assert stored == 3
