"""The gateway against a NATS server whose streams are not declared: a HELLO that
authenticates cannot start its outbound consumers, the session ends with
BACKEND_UNAVAILABLE, and the gauge of connected EAs never counted it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from suho_mt5.gateway import Gateway, GatewayConfig, StaticAuthenticator, open_connection
from suho_mt5.protocol import CloseCode
from tests.integration.ingest._support import nats_server as own_nats_server


def test_a_session_whose_bus_start_fails_is_never_counted_connected() -> None:
    account = uuid.uuid4()

    async def scenario(nats_url: str) -> tuple[int | None, float | None, float | None]:
        gateway = Gateway(GatewayConfig(host="127.0.0.1", ws_port=None, tcp_port=0),
                          nats_url=nats_url,
                          authenticator=StaticAuthenticator({account: ("acme", "key")}))
        await gateway.start()
        try:
            conn = await open_connection(f"tcp://127.0.0.1:{gateway.tcp_port}")
            with contextlib.suppress(Exception):  # a GOODBYE comes instead of the WELCOME
                await conn.hello(account, "key")
            code = await conn.wait_closed()
            for _ in range(100):  # the session's end is handled after the socket closes
                if not gateway.sessions:
                    break
                await asyncio.sleep(0.02)
            registry = gateway.metrics.registry
            connected = registry.get_sample_value("suho_gateway_connected_eas",
                                                  {"transport": "tcp"})
            closes = registry.get_sample_value(
                "suho_gateway_closes_total", {"code": str(int(CloseCode.BACKEND_UNAVAILABLE))})
            return code, connected, closes
        finally:
            await gateway.stop()

    with own_nats_server() as nats:  # its own server: no test declared streams on it
        code, connected, closes = asyncio.run(scenario(nats.url))
    assert code == CloseCode.BACKEND_UNAVAILABLE
    assert closes == 1
    assert not connected  # 0 (or never set), not -1
