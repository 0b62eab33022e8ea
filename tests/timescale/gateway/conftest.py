"""Gateway test fixtures: one database on native TimescaleDB for the whole session (the
tests use disjoint accounts), fresh JetStream streams per test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from suho_mt5.db import Edition
from tests.support.servers import NatsServer

from ._support import GatewayDb, create_streams, delete_streams, prepare_database

N_ACCOUNTS = 780  # 60 for the tests, 500 for the 500-EA restart test, 205 for HAProxy, 15 more


@pytest.fixture(scope="session")
def gw_db(make_ts_database: Callable[[], str]) -> GatewayDb:
    """Accounts and a gateway login in mt5_app, on native TimescaleDB (``make_pg_database``
    and ``Edition.POSTGRESQL`` run the same tests on plain PostgreSQL)."""
    return prepare_database(make_ts_database(), N_ACCOUNTS, Edition.TIMESCALE, cheap_from=60)


@pytest.fixture
def nats_url(nats_server: NatsServer) -> Iterator[str]:
    """The session's nats-server with the three streams created fresh for this test."""
    asyncio.run(create_streams(nats_server.url))
    try:
        yield nats_server.url
    finally:
        asyncio.run(delete_streams(nats_server.url))
