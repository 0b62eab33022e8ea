"""The Data Bridge end to end: JetStream -> bridge -> database, exactly once in effect."""

from __future__ import annotations

import asyncio

from tests.integration.ingest._support import (
    Feed,
    IngestDb,
    assert_exactly_once,
    frames_for,
    jetstream,
    make_ingest_login,
    publish_all,
    quick_settings,
    running_bridge,
    wait_until_drained,
)
from tests.support.servers import NatsServer


def test_100k_packets_3_tenants_30_accounts_exactly_once(ingest_db: IngestDb,
                                                         nats: NatsServer) -> None:
    # As deployed (docs/ingest.md): a login with BYPASSRLS, so the writer COPYs directly.
    ingest_db.ingest_url = make_ingest_login(ingest_db.admin_url, bypassrls=True)
    ingest_db.add_accounts(10)
    frames, published = frames_for(Feed(ingest_db.accounts), 100_000, 100)
    assert published.packets == 100_000 and len({t for t in ingest_db.accounts.values()}) == 3

    async def scenario() -> None:
        async with jetstream(nats.url) as (_nc, js):
            await publish_all(js, frames)
            async with running_bridge(quick_settings(ingest_db, nats.url, workers=2)):
                await wait_until_drained(js, ingest_db, published.rows)

    asyncio.run(scenario())
    assert_exactly_once(ingest_db, published)
    assert sum(ingest_db.counts().values()) == 100_000
    assert ingest_db.count("mt5_ingest_dead_letters") == 0
