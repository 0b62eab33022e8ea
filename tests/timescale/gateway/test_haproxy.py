"""Two gateway processes behind HAProxy (docs/operations.md, "HAProxy"): one TCP frontend
for the raw transport and one for WebSocket (HAProxy passes WebSocket through as TCP),
health-checked on each gateway's metrics port. A gateway SIGKILLed mid-stream: HAProxy
takes it out of rotation, its EAs reconnect through HAProxy to the other and resume
(protocol §9), and the bus holds every packet exactly once.

What this does not cover yet is an account's session held cluster-wide (a second
connection on the *other* gateway superseding the first): docs/scaling.md."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import nats
import pytest

from suho_mt5.gateway.simulator import Rates, SimulatedEA
from tests.support.servers import HAProxy, ProxiedService, ProxyServer

from ._support import GatewayDb, GatewayProcess, stored_packets, wait_for


@pytest.mark.timeout(180)
def test_a_gateway_killed_behind_haproxy_its_eas_resume_on_the_other(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path,
    start_haproxy: Callable[..., HAProxy],
) -> None:
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
        accounts = gw_db.accounts[40:50]
        eas = [SimulatedEA(a, f"{t}://127.0.0.1:{proxy.port(t)}", Rates(speed=20))
               for a, t in zip(accounts, ["ws", "tcp"] * 5, strict=True)]

        async def scenario() -> tuple[list[int], float]:
            run = asyncio.gather(*(ea.run(8.0, drain_s=30.0) for ea in eas))
            try:
                assert await wait_for(lambda: all(ea.stats.sessions for ea in eas), 60)
                # Round robin spread the EAs over both gateways.
                per_gateway = [_sessions(gw) for gw in gateways]
                assert all(per_gateway), per_gateway
                await asyncio.sleep(2.0)
                killed = time.monotonic()
                gateways[0].kill()
                await asyncio.to_thread(proxy.wait_state, "ws", "gw0", "DOWN")
                down_after = time.monotonic() - killed
                await run
            finally:
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
            return per_gateway, down_after

        per_gateway, down_after = asyncio.run(scenario())
        assert proxy.states()[("tcp", "gw0")] == "DOWN"
        moved = [ea for ea in eas if ea.stats.sessions >= 2]
        assert moved, "no EA was on the killed gateway"
        assert all(not ea.outbox for ea in eas), "an EA still has unacknowledged packets"

        async def bus() -> None:
            nc = await nats.connect(nats_url)
            try:
                counts, _ = await stored_packets(nc.jetstream())
            finally:
                await nc.close()
            expected = {(str(ea.account.account_id), seq) for ea in eas
                        for seq in ea.stats.data_sent}
            assert set(counts) == expected
            assert set(counts.values()) == {1}, "a packet is stored twice"

        asyncio.run(bus())
        print(f"\nHAProxy: sessions per gateway before the kill {per_gateway}; gw0 out of "
              f"rotation {down_after:.2f} s after its SIGKILL; {len(moved)} EAs resumed on "
              "gw1")
    finally:
        for gw in gateways:
            gw.stop()


def _sessions(gw: GatewayProcess) -> int:
    """EAs connected to the gateway (its ``/metrics``)."""
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{gw.metrics_port}/metrics",
                                timeout=5) as response:
        text = response.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("suho_gateway_connected_eas{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)
