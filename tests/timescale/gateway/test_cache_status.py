"""The gateway tells the latest-state cache which EAs it serves: an EA's cached status
names the gateway while its session lasts, and no gateway after it ended."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from suho_mt5.cache import CacheReader, CacheWriter, acl
from suho_mt5.gateway import DatabaseAuthenticator, Gateway, open_connection
from suho_mt5.gateway._metrics import GatewayMetrics
from tests.support.servers import RedisServer

from ._support import TENANT, GatewayDb, gateway_config, wait_for

pytestmark = pytest.mark.timeout(120)


def test_an_ea_status_names_the_gateway_serving_it(gw_db: GatewayDb, nats_url: str,
                                                   redis_cache: RedisServer) -> None:
    account = gw_db.accounts[7]
    writer_url = asyncio.run(acl.grant_writer(redis_cache.admin_url)).url
    grant = asyncio.run(acl.grant_tenant(redis_cache.admin_url, TENANT))

    async def scenario() -> list[Any]:
        writer = CacheWriter(writer_url, name="gateway@test")
        gw = Gateway(gateway_config(), nats_url=nats_url, metrics=GatewayMetrics(),
                     authenticator=DatabaseAuthenticator(gw_db.gateway_url, workers=1),
                     sessions=writer)
        await gw.start()
        seen = []
        try:
            async with CacheReader(grant.url) as reader:
                async def status() -> Any:
                    await writer.flush()
                    return await reader.ea_status(TENANT, account.account_id)

                conn = await open_connection(f"tcp://127.0.0.1:{gw.tcp_port}")
                await conn.hello(account.account_id, account.api_key)
                assert await wait_for(lambda: account.account_id in gw.sessions)
                seen.append(await status())
                await conn.close()
                assert await wait_for(lambda: account.account_id not in gw.sessions)
                seen.append(await status())
        finally:
            await gw.stop()
            await writer.close()
        return seen

    during, after = asyncio.run(scenario())
    assert during is not None and during.gateway == "gateway@test"
    assert during.gateway_since is not None
    assert after is not None and after.gateway is None
