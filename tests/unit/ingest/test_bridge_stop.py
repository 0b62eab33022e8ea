"""``ingest run`` stops on SIGTERM (Bridge.stop) even while its first connection to NATS
is still being made: nats-py retries that connection forever."""

from __future__ import annotations

import asyncio
import socket
import time

from suho_mt5.ingest.bridge import Bridge
from suho_mt5.ingest.settings import BridgeSettings


def test_the_bridge_stops_while_it_connects_to_a_nats_server_that_does_not_answer() -> None:
    with socket.socket() as silent:  # accepts connections, never says INFO
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        bridge = Bridge(BridgeSettings(url="postgresql://nobody@127.0.0.1:1/none",
                                       nats_url=f"nats://127.0.0.1:{port}"))

        async def scenario() -> float:
            run = asyncio.ensure_future(bridge.run())
            await asyncio.sleep(1.0)
            assert not run.done()
            stopped = time.monotonic()
            bridge.stop()
            await asyncio.wait_for(run, 10)
            return time.monotonic() - stopped

        assert asyncio.run(scenario()) < 10
