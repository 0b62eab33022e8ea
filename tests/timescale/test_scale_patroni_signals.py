"""Patroni's primary SIGKILLed during signal delivery (docs/scaling.md, "When a part fails"):
EAs stream through a gateway process while the backend publishes signals (each stored in
``mt5_trading_signals``, then published) and the EAs execute them; the Data Bridge writes
their packets and execution reports. Everything reaches the database through libpq
multi-host URLs. The primary's node is SIGKILLed in the middle; Patroni promotes the
replica; the backend retries its signals against the new primary, the gateway and the
bridge carry on, and in the end every packet is in the database once and every signal the
backend published was executed once (one execution row, status ``executed``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from suho_mt5.commands.signal import publish_signal
from suho_mt5.db import Edition
from suho_mt5.gateway.simulator import Rates, SimulatedEA
from tests.integration.ingest._support import (
    INGEST_PASSWORD,
    libpq,
    make_ingest_login,
    nats_server,
)
from tests.support.servers import PatroniCluster
from tests.timescale.gateway._support import (
    TENANT,
    GatewayProcess,
    assert_in_database_once,
    bus_and_bridge,
    consumers_settled,
    create_streams,
    prepare_database,
    stored_executions,
    wait_for,
)

DATABASE = "suho_ha_signals"
N_EAS = 10


@pytest.mark.timeout(300)
def test_the_primary_killed_during_signal_delivery_loses_and_doubles_nothing(
    patroni_cluster: PatroniCluster, tmp_path: Path
) -> None:
    cluster = patroni_cluster
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    old = cluster.primary()
    assert old is not None
    single = cluster.node_url(old, DATABASE)  # roles and accounts: once, on the primary
    gw_db = prepare_database(single, N_EAS, Edition.TIMESCALE, cheap_from=0)
    gateway_login = sa.make_url(gw_db.gateway_url)
    gw_db.gateway_url = cluster.url(DATABASE, user=gateway_login.username or "",
                                    password=gateway_login.password or "")
    login = sa.make_url(make_ingest_login(single)).username or ""
    ingest_url = cluster.url(DATABASE, user=login, password=INGEST_PASSWORD)
    accounts = gw_db.accounts[:N_EAS]

    with nats_server() as nats:
        asyncio.run(create_streams(nats.url))
        gateway = GatewayProcess(gw_db, nats.url, tmp_path / "gateway.log").start()

        async def scenario() -> tuple[float, float, int, int]:
            async with bus_and_bridge(nats.url, ingest_url) as (js, _db):
                backend: list[psycopg.AsyncConnection[tuple[object, ...]]] = []
                retried = 0

                async def signal(account: uuid.UUID) -> uuid.UUID:
                    """As a careful backend sends one: stored, then published; a failed
                    attempt (the primary died under it) is retried on a new connection
                    (a new signal: the failed one was never published)."""
                    nonlocal retried
                    deadline = time.monotonic() + 120
                    while True:
                        try:
                            if not backend:
                                backend.append(await psycopg.AsyncConnection.connect(
                                    libpq(ingest_url), autocommit=True))
                            return (await publish_signal(
                                backend[0], js, tenant_id=TENANT, account_id=account,
                                symbol="EURUSD", action="BUY", volume=Decimal("0.10"),
                                entry_price=Decimal("1.09530"))).signal_id
                        except (psycopg.Error, OSError):
                            if time.monotonic() > deadline:
                                raise
                            retried += 1
                            if backend:
                                await backend.pop().close()
                            await asyncio.sleep(0.5)

                eas = [SimulatedEA(a, gateway.url("ws" if i % 2 else "tcp"), Rates(speed=10))
                       for i, a in enumerate(accounts)]
                run = asyncio.gather(*(ea.run(30.0, drain_s=60.0) for ea in eas))
                published: set[uuid.UUID] = set()
                try:
                    assert await wait_for(lambda: all(ea.stats.sessions for ea in eas), 60)
                    for ea in eas:
                        published.add(await signal(ea.account.account_id))
                    killed = time.monotonic()
                    old.kill()
                    promoting = asyncio.create_task(asyncio.to_thread(
                        cluster.wait_primary, other_than=old, timeout=120))
                    # Signals go on during the failover: each waits for the new primary.
                    while not promoting.done():
                        for ea in eas:
                            published.add(await signal(ea.account.account_id))
                    await promoting
                    promoted = time.monotonic() - killed
                    for ea in eas:
                        published.add(await signal(ea.account.account_id))
                    resumed = time.monotonic() - killed
                    assert await wait_for(lambda: consumers_settled(
                        js, [a.account_id for a in accounts]), 90, 0.2)
                    await run
                finally:
                    run.cancel()
                    await asyncio.gather(run, return_exceptions=True)
                    for conn in backend:
                        await conn.close()
                assert all(not ea.outbox for ea in eas)
                executions = await stored_executions(js)
                assert set(executions) == published
                assert set(executions.values()) == {1}, "a signal executed twice on the bus"
                assert sum(ea.stats.duplicate_signals for ea in eas) == 0

                await assert_in_database_once(js, cluster.url(DATABASE), eas, published, 120)
                async with await psycopg.AsyncConnection.connect(
                        libpq(cluster.url(DATABASE))) as conn, conn.cursor() as cur:
                    await cur.execute("SELECT count(*), count(DISTINCT signal_id)"
                                      " FROM mt5_signal_executions WHERE signal_id = ANY(%s)",
                                      (list(published),))
                    assert await cur.fetchone() == (len(published), len(published))
                return promoted, resumed, len(published), retried

        try:
            promoted, resumed, signals, retried = asyncio.run(scenario())
        finally:
            gateway.stop()
    print(f"\nPatroni during signal delivery: {old.member} SIGKILLed, replica promoted "
          f"{promoted:.1f} s later, the backend's signals went through again at "
          f"{resumed:.1f} s ({retried} attempts retried); {signals} signals, each executed "
          f"once; every packet of {N_EAS} EAs once")
