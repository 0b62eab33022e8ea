"""Faults the gateway must ride out (docs/security.md, "Faults"): an EA whose clock is 10
minutes off."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from suho_mt5.gateway import open_connection
from suho_mt5.protocol import AckPacket, BrokerQuotePacket, HelloPacket, SessionResult

from ._support import GatewayDb, running_gateway, stored_packets

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("offset_s", [600, -600], ids=["ahead", "behind"])
def test_an_ea_clock_ten_minutes_off_is_served_and_measured(
    gw_db: GatewayDb, nats_url: str, offset_s: int,
) -> None:
    """An EA whose clock is 10 minutes ahead (or behind) is let in, its packets are stored
    with the timestamps it gave (the protocol's times are the EA's; the bridge writes them
    as event times), and the gateway's skew histogram shows it (600 s bucket)."""
    me = gw_db.accounts[32 if offset_s > 0 else 33]

    async def scenario() -> tuple[int, float]:
        async with running_gateway(gw_db, nats_url) as gw:
            conn = await open_connection(f"tcp://127.0.0.1:{gw.tcp_port}")
            skewed = time.time_ns() // 1000 - offset_s * 1_000_000
            await conn.send(HelloPacket(0, skewed, me.account_id.bytes, 0, 0, 0, me.api_key))
            welcome = (await conn.recv(10))[0]
            assert welcome.result is SessionResult.ACCEPTED  # type: ignore[union-attr]
            for seq in (1, 2, 3):
                await conn.send(BrokerQuotePacket(seq, skewed + seq, me.account_id.bytes,
                                                  "EURUSD", 109_531_000, 109_533_000, 0, 0, 2))
            acked = 0
            while acked < 3:
                for packet in await conn.recv(10):
                    if isinstance(packet, AckPacket):
                        acked = max(acked, packet.acked_sequence)
            await conn.close()
            over = gw.metrics.registry.get_sample_value(
                "suho_gateway_clock_skew_seconds_bucket", {"le": "300.0"}) or 0.0
            total = gw.metrics.registry.get_sample_value(
                "suho_gateway_clock_skew_seconds_count") or 0.0
            nc = await nats.connect(nats_url)
            try:
                counts, _ = await stored_packets(nc.jetstream())
            finally:
                await nc.close()
            return sum(1 for (acc, _), n in counts.items() if acc == str(me.account_id)), \
                total - over

    stored, beyond_five_minutes = asyncio.run(scenario())
    assert stored == 3
    assert beyond_five_minutes >= 1  # the HELLO's skew: 600 s, above the 300 s bucket
