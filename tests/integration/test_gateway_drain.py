"""The gateway stops (SIGTERM) within seconds when its NATS server no longer answers: the
drain of its connections is bounded (nats-py's drain waits up to 30 s per connection for a
server that may never answer again; here the server is frozen with SIGSTOP, as a host that
vanished from the network without closing its sockets)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import pytest

from suho_mt5.gateway import Gateway, GatewayConfig, StaticAuthenticator, open_connection
from tests.integration.ingest._support import nats_server as own_nats_server
from tests.timescale.gateway._support import create_streams


@pytest.mark.timeout(180)
def test_the_gateway_stops_in_seconds_with_its_nats_server_gone() -> None:
    account = uuid.uuid4()

    async def scenario(server: object) -> float:
        url = server.url  # type: ignore[attr-defined]
        await create_streams(url)
        gateway = Gateway(GatewayConfig(host="127.0.0.1", ws_port=None, tcp_port=0),
                          nats_url=url,
                          authenticator=StaticAuthenticator({account: ("acme", "key")}))
        await gateway.start()
        conn = await open_connection(f"tcp://127.0.0.1:{gateway.tcp_port}")
        await conn.hello(account, "key")
        proc = server.proc  # type: ignore[attr-defined]
        proc.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(0.5)
            started = time.monotonic()
            await asyncio.wait_for(gateway.stop(), 90)
            took = time.monotonic() - started
        finally:
            proc.send_signal(signal.SIGCONT)
        await conn.wait_closed(5)
        await conn.close()
        return took

    with own_nats_server() as server:
        took = asyncio.run(scenario(server))
    # Bounded: 5 s of drain and 2 s of close per connection (two), the session's close; an
    # unbounded drain waits 30 s for the first connection alone.
    assert took < 26, f"the gateway took {took:.1f} s to stop"
