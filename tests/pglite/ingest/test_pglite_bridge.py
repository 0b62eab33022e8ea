"""The real bridge on the PGlite TimescaleDB engine (the demo's `--engine pglite`), with
nats-server: exactly once, and the engine's one backend free between batches, so that another
client (the gateway, in the demo) is served while the bridge runs."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import psycopg

from suho_mt5.db import Edition, psycopg_conninfo
from tests.db.schema._support import migrated_schema
from tests.integration.ingest._support import (
    Feed,
    IngestDb,
    assert_exactly_once,
    frames_for,
    jetstream,
    publish_all,
    quick_settings,
    running_bridge,
    wait_until_drained,
)
from tests.support.servers import NatsServer, TimescaleEngine


def test_bridge_on_the_engine_exactly_once_and_the_engine_free_between_batches(
    start_timescale_engine: Callable[[], TimescaleEngine], nats_server: NatsServer,
) -> None:
    url = start_timescale_engine().url
    with migrated_schema(url, Edition.TIMESCALE):
        pass
    # The engine has no logins of its own: the bridge and the checks use its one superuser.
    db = IngestDb(url, url)
    libpq = psycopg_conninfo(url)[0]
    with psycopg.connect(libpq, autocommit=True) as conn:
        for tenant in ("acme", "globex.eu"):
            for _ in range(3):
                acc = uuid.uuid4()
                conn.execute(
                    "INSERT INTO mt5_user_accounts (account_id, tenant_id, user_id,"
                    " broker_name, broker_server, mt5_login, mt5_account_number, account_type)"
                    " VALUES (%s, %s, 'u', 'B', 'B-Demo', %s, '1', 'demo')",
                    (acc, tenant, acc.int % 2**62 + 1))
                db.accounts[acc] = tenant
    frames, published = frames_for(Feed(db.accounts), 3_000, 20)

    async def other_client_query_seconds() -> float:
        def query() -> float:
            start = time.monotonic()
            # The engine queues a second client while one is connected: a bridge that kept
            # its connection between batches would hold this one up to the engine's 30 s.
            with psycopg.connect(libpq, connect_timeout=20) as conn:
                conn.execute("SELECT count(*) FROM mt5_user_accounts").fetchone()
            return time.monotonic() - start

        return await asyncio.to_thread(query)

    async def scenario() -> list[float]:
        async with jetstream(nats_server.url) as (_nc, js):
            await js.purge_stream("MT5_ACCOUNTS")
            await publish_all(js, frames)
            settings = quick_settings(db, nats_server.url, batch_size=25, fetch_timeout=0.2)
            async with running_bridge(settings):
                during = [await other_client_query_seconds()]
                await wait_until_drained(js, db, published.rows, timeout=180)
                # Idle now: fetches time out every 0.2 s, and no connection is held.
                during += [await other_client_query_seconds() for _ in range(3)]
        return during

    waits = asyncio.run(scenario())
    assert_exactly_once(db, published)
    assert sum(db.counts().values()) == 3_000
    assert max(waits[1:]) < 10, waits
