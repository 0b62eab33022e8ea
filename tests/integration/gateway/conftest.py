"""Gateway test fixtures: one migrated database per module (plain PostgreSQL until the native
TimescaleDB fixture lands: switch ``make_pg_database`` below), fresh streams per test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest

from tests.support.servers import NatsServer

from ._support import GatewayDb, create_streams, delete_streams, prepare_database

N_ACCOUNTS = 60


@pytest.fixture(scope="module")
def gw_db(make_pg_database: Callable[[], str]) -> GatewayDb:
    return prepare_database(make_pg_database(), N_ACCOUNTS)


@pytest.fixture
def nats_url(nats_server: NatsServer) -> Iterator[str]:
    """The session's nats-server with the three streams created fresh for this test."""
    asyncio.run(create_streams(nats_server.url))
    try:
        yield nats_server.url
    finally:
        asyncio.run(delete_streams(nats_server.url))
