"""A gateway crash in the middle: EAs reconnect, resume and resend; the bus ends up with
every packet exactly once, every signal is executed once and acknowledged, and the Data
Bridge (running all along) has written every packet to TimescaleDB exactly once.

Twice: 10 EAs at 20x the seed's rates for 15 s (a gateway process takes ~5 s to restart
on a loaded machine: the EAs must still be streaming after it), and the acceptance's
scale, 500 EAs at the seed's rates for 60 s (half WebSocket, half TCP). The benchmark
(benchmarks/gateway.py) runs the 500-EA crash too, and times it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from decimal import Decimal
from pathlib import Path

import nats
import psycopg
import pytest

from suho_mt5.commands.signal import publish_signal
from suho_mt5.gateway.simulator import Rates, SimAccount, SimulatedEA
from suho_mt5.ingest.bridge import Bridge, BridgeSettings
from suho_mt5.ingest.streams import DEFAULT_CONTRACT, setup_streams
from tests.integration.ingest._support import libpq, make_ingest_login

from ._support import (
    TENANT,
    GatewayDb,
    assert_in_database_once,
    consumers_settled,
    gateway_process,
    stored_executions,
    stored_packets,
    wait_for,
)


@pytest.mark.timeout(180)
def test_a_gateway_crash_loses_and_duplicates_nothing(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path
) -> None:
    _crash_and_restart(gw_db, nats_url, tmp_path, gw_db.accounts[20:30], stream_s=15.0,
                       rates=Rates(speed=20), signals_per_phase=2)


@pytest.mark.timeout(420)
def test_500_eas_for_60_s_through_a_gateway_crash(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path
) -> None:
    """The acceptance's figure: 500 EAs stay connected for 60 s, the gateway is killed and
    restarted in the middle; every packet is in the database once, every signal acked once.
    Their API keys are hashed with bcrypt cost 4 (``prepare_database``): 1,000 logins at
    cost 12 would take minutes of the database's CPU on two cores."""
    _crash_and_restart(gw_db, nats_url, tmp_path, gw_db.accounts[60:560], stream_s=60.0,
                       rates=Rates(), signals_per_phase=1)


def _crash_and_restart(gw_db: GatewayDb, nats_url: str, tmp_path: Path,
                       accounts: list[SimAccount], *, stream_s: float, rates: Rates,
                       signals_per_phase: int) -> None:
    ingest_url = make_ingest_login(gw_db.owner_url)

    with gateway_process(gw_db, nats_url, tmp_path) as proc:
        async def scenario() -> None:
            nc = await nats.connect(nats_url)
            js = nc.jetstream()
            await setup_streams(js, DEFAULT_CONTRACT)  # the bridge's streams and consumer
            bridge = Bridge(BridgeSettings(url=ingest_url, nats_url=nats_url, fetch_timeout=0.5,
                                           offline_check_every=3600.0,
                                           consumer_poll_every=0.5))
            bridging = asyncio.create_task(bridge.run())
            db = await psycopg.AsyncConnection.connect(libpq(ingest_url))

            async def publish_signals(_js: object, account: uuid.UUID, count: int
                                      ) -> list[uuid.UUID]:
                """Signals as the backend sends them: stored, then published (the bridge
                refuses an EXECUTION_REPORT of a signal that is not in the database)."""
                return [(await publish_signal(
                    db, js, tenant_id=TENANT, account_id=account, symbol="EURUSD",
                    action="BUY", volume=Decimal("0.10"), entry_price=Decimal("1.09530"),
                )).signal_id for _ in range(count)]

            eas = [SimulatedEA(a, proc.url("ws" if i % 2 else "tcp"), rates)
                   for i, a in enumerate(accounts)]
            run = asyncio.gather(*(ea.run(stream_s, drain_s=30.0) for ea in eas))
            try:
                assert await wait_for(lambda: all(ea.stats.sessions for ea in eas), 60)
                published: set[uuid.UUID] = set()
                for ea in eas:
                    published.update(await publish_signals(js, ea.account.account_id,
                                                           signals_per_phase))
                await asyncio.sleep(max(1.0, stream_s / 4))
                proc.kill()  # a crash: no GOODBYE, nothing flushed
                for ea in eas:  # signals published while the gateway is down
                    published.update(await publish_signals(js, ea.account.account_id,
                                                           signals_per_phase))
                await asyncio.sleep(0.5)
                proc.start()
                assert await wait_for(lambda: all(ea.stats.sessions >= 2 for ea in eas), 120)
                for ea in eas:
                    published.update(await publish_signals(js, ea.account.account_id,
                                                           signals_per_phase))
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
                assert sum(ea.stats.duplicate_signals for ea in eas) == 0

                await assert_in_database_once(js, gw_db.owner_url, eas, published, 60)
            finally:
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
                bridge.stop()
                await asyncio.wait_for(bridging, 60)
                await db.close()
                with contextlib.suppress(Exception):
                    await js.delete_stream("MT5_MARKET")
                await nc.close()

        asyncio.run(scenario())
