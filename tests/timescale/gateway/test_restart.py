"""A gateway restart in the middle: EAs reconnect, resume and resend; the bus ends up with
every packet exactly once and every signal is executed once and acknowledged."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import nats
import pytest

from suho_mt5.gateway.simulator import Rates, SimulatedEA

from ._support import (
    GatewayDb,
    consumers_settled,
    gateway_process,
    publish_signals,
    stored_executions,
    stored_packets,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)
N_EAS = 10


def test_a_gateway_crash_loses_and_duplicates_nothing(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path
) -> None:
    accounts = gw_db.accounts[20:20 + N_EAS]

    with gateway_process(gw_db, nats_url, tmp_path) as proc:
        async def scenario() -> None:
            nc = await nats.connect(nats_url)
            js = nc.jetstream()
            eas = [SimulatedEA(a, proc.url("ws" if i % 2 else "tcp"), Rates(speed=20))
                   for i, a in enumerate(accounts)]
            run = asyncio.gather(*(ea.run(8.0, drain_s=20.0) for ea in eas))
            try:
                assert await wait_for(lambda: all(ea.stats.sessions for ea in eas), 60)
                published: set[uuid.UUID] = set()
                for ea in eas:
                    published.update(await publish_signals(js, ea.account.account_id, 2))
                await asyncio.sleep(1.0)
                proc.kill()  # a crash: no GOODBYE, nothing flushed
                for ea in eas:  # signals published while the gateway is down
                    published.update(await publish_signals(js, ea.account.account_id, 2))
                await asyncio.sleep(0.5)
                proc.start()
                assert await wait_for(lambda: all(ea.stats.sessions >= 2 for ea in eas), 60)
                for ea in eas:
                    published.update(await publish_signals(js, ea.account.account_id, 2))
                assert await wait_for(lambda: consumers_settled(
                    js, [a.account_id for a in accounts]), 60)
                await run
                counts, _ = await stored_packets(js)
                expected = {(str(ea.account.account_id), seq) for ea in eas
                            for seq in ea.stats.data_sent}
                assert set(counts) == expected
                assert set(counts.values()) == {1}, "a packet is stored twice"
                executions = await stored_executions(js)
                assert set(executions) == published
                assert set(executions.values()) == {1}
                assert all(not ea.outbox for ea in eas)
                assert sum(len(ea.stats.signals) for ea in eas) >= len(published)
            finally:
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
                await nc.close()

        asyncio.run(scenario())
