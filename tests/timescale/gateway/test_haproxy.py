"""Two gateway processes behind HAProxy (docs/operations.md, "HAProxy"), the acceptance's
scale: 200 simulated EAs, half over WebSocket and half over the raw TCP transport, each
through its HAProxy frontend (TCP mode, health-checked on each gateway's metrics port); a
signal for a fifth of them before, during and after the crash; the Data Bridge writing to
TimescaleDB. One gateway is SIGKILLed mid-stream: HAProxy takes it out of rotation, its EAs
reconnect through HAProxy to the other and resume (protocol §9). Every packet is on the bus
and in the database once, every signal executed once. Then the killed gateway comes back,
and a connection for an account on one gateway supersedes the account's connection on the
other (the session owned cluster-wide, docs/gateway.md): the time from the new HELLO to the
old connection's close is measured and printed."""

from __future__ import annotations

import asyncio
import statistics
import time
import urllib.request
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from suho_mt5.commands.signal import publish_signal
from suho_mt5.gateway.client import open_connection
from suho_mt5.gateway.simulator import Rates, SimulatedEA
from suho_mt5.protocol import CloseCode
from tests.integration.ingest._support import make_ingest_login
from tests.support.servers import HAProxy, ProxiedService, ProxyServer

from ._support import (
    TENANT,
    GatewayDb,
    GatewayProcess,
    assert_in_database_once,
    bus_and_bridge,
    consumers_settled,
    stored_executions,
    stored_packets,
    wait_for,
)

N_EAS = 200


@pytest.mark.timeout(240)
def test_200_eas_behind_haproxy_through_a_gateway_crash(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path,
    start_haproxy: Callable[..., HAProxy],
) -> None:
    accounts = gw_db.accounts[560:560 + N_EAS]  # bcrypt cost 4 (prepare_database)
    movers = gw_db.accounts[560 + N_EAS:565 + N_EAS]
    ingest_url = make_ingest_login(gw_db.owner_url)
    gateways = [GatewayProcess(gw_db, nats_url, tmp_path / f"gateway-{i}.log")
                for i in range(2)]
    try:
        for gw in gateways:
            gw.start()
        proxy = start_haproxy([
            ProxiedService(transport, tuple(
                ProxyServer(f"gw{i}", gw.ws_port if transport == "ws" else gw.tcp_port,
                            check_port=gw.metrics_port) for i, gw in enumerate(gateways)),
                http_check="/metrics")
            for transport in ("ws", "tcp")])
        for transport in ("ws", "tcp"):
            for i in range(2):
                proxy.wait_state(transport, f"gw{i}", "UP")

        async def scenario() -> tuple[list[int], float, int, list[float]]:
            async with bus_and_bridge(nats_url, ingest_url) as (js, db):
                async def signals(phase: int) -> set[uuid.UUID]:
                    """One signal for each of a fifth of the EAs (a different fifth each
                    phase), as the backend sends it: stored, then published."""
                    return {(await publish_signal(
                        db, js, tenant_id=TENANT, account_id=a.account_id, symbol="EURUSD",
                        action="BUY", volume=Decimal("0.10"), entry_price=Decimal("1.09530"),
                    )).signal_id for a in accounts[phase::5]}

                eas = [SimulatedEA(a, f"{t}://127.0.0.1:{proxy.port(t)}", Rates(speed=5))
                       for a, t in zip(accounts, ["ws", "tcp"] * (N_EAS // 2), strict=True)]
                run = asyncio.gather(*(ea.run(30.0, drain_s=40.0) for ea in eas))
                try:
                    assert await wait_for(lambda: all(ea.stats.sessions for ea in eas), 60)
                    per_gateway = [await asyncio.to_thread(_sessions, gw) for gw in gateways]
                    assert all(per_gateway), per_gateway  # round robin used both
                    published = await signals(0)
                    await asyncio.sleep(2.0)
                    killed = time.monotonic()
                    gateways[0].kill()  # a crash: no GOODBYE, nothing flushed
                    published |= await signals(1)  # while its EAs are away
                    await asyncio.to_thread(proxy.wait_state, "ws", "gw0", "DOWN")
                    down_after = time.monotonic() - killed

                    async def all_on_gw1() -> bool:
                        return await asyncio.to_thread(_sessions, gateways[1]) == N_EAS

                    if not await wait_for(all_on_gw1, 90, 0.5):
                        away = [(ea.url, ea.stats.sessions, dict(ea.stats.close_codes),
                                 dict(ea.stats.errors), ea.connected.is_set())
                                for ea in eas if ea.stats.sessions < 2][:10]
                        pytest.fail(f"EAs not back: {away}")
                    published |= await signals(2)
                    assert await wait_for(lambda: consumers_settled(
                        js, [a.account_id for a in accounts]), 60)
                    await run
                finally:
                    run.cancel()
                    await asyncio.gather(run, return_exceptions=True)
                assert proxy.states()[("tcp", "gw0")] == "DOWN"
                moved = sum(ea.stats.sessions >= 2 for ea in eas)
                assert moved >= per_gateway[0], "an EA of the killed gateway did not resume"
                assert all(not ea.outbox for ea in eas), "an EA has unacknowledged packets"
                counts, _ = await stored_packets(js)
                expected = {(str(ea.account.account_id), seq) for ea in eas
                            for seq in ea.stats.data_sent}
                assert set(counts) == expected
                assert set(counts.values()) == {1}, "a packet is stored twice"
                executions = await stored_executions(js)
                assert set(executions) == published
                assert set(executions.values()) == {1}, "a signal executed twice"
                assert sum(ea.stats.duplicate_signals for ea in eas) == 0

                await assert_in_database_once(js, gw_db.owner_url, eas, published)

            # The killed gateway back: an account's connection on one gateway is
            # superseded by a connection on the other, whichever way round.
            await asyncio.to_thread(gateways[0].start)
            bounds = []
            for i, me in enumerate(movers):
                old, new = gateways[i % 2], gateways[1 - i % 2]
                first = await open_connection(old.url("tcp" if i % 2 else "ws"))
                await first.hello(me.account_id, me.api_key)
                closing = asyncio.create_task(first.wait_closed(10))
                second = await open_connection(new.url("ws" if i % 2 else "tcp"))
                sent = time.monotonic()
                await second.hello(me.account_id, me.api_key)
                assert await closing == CloseCode.SUPERSEDED
                bounds.append(time.monotonic() - sent)
                await second.close()
            return per_gateway, down_after, moved, bounds

        per_gateway, down_after, moved, bounds = asyncio.run(scenario())
        print(f"\nHAProxy, {N_EAS} EAs: sessions per gateway before the kill {per_gateway}; "
              f"gw0 out of rotation {down_after:.2f} s after its SIGKILL; {moved} EAs "
              f"resumed on gw1. Supersede across gateways, HELLO -> old connection closed: "
              f"median {statistics.median(bounds) * 1000:.0f} ms, max "
              f"{max(bounds) * 1000:.0f} ms ({len(bounds)} accounts)")
    finally:
        for gw in gateways:
            gw.stop()


def _sessions(gw: GatewayProcess) -> int:
    """EAs connected to the gateway (its ``/metrics``)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.metrics_port}/metrics",
                                timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("suho_gateway_connected_eas{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
