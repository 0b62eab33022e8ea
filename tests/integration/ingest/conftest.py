"""Ingest fixtures for the native PostgreSQL lane. The tests of this directory use
``db_server`` and ``lane_edition`` only, so another lane runs them by defining those two."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pytest_postgresql import factories

from suho_mt5.db import Edition, make_engine
from tests.integration.ingest._support import IngestDb, make_ingest_login, nats_server
from tests.integration.schema._support import alembic
from tests.support.fixtures import PG_CTL_WRAPPER, PgServer
from tests.support.servers import NatsServer


@dataclass
class OutageDb(IngestDb):
    """An :class:`IngestDb` whose server the test stops (``executor.stop()``) and starts."""

    executor: Any = None


@pytest.fixture(scope="session")
def db_server(pg_server: Any) -> Any:
    return pg_server


@pytest.fixture(scope="session")
def lane_edition() -> Edition:
    return Edition.POSTGRESQL


@pytest.fixture(scope="session")
def ingest_template(db_server: Any, lane_edition: Edition) -> Iterator[str]:
    """A database migrated to head, copied for every test (migrating takes seconds)."""
    name = db_server.create_database()
    engine = make_engine(db_server.url(name))
    try:
        alembic(engine, "upgrade", "head", edition=lane_edition)
    finally:
        engine.dispose()
    yield name
    db_server.drop_database(name)


@pytest.fixture
def ingest_db(db_server: Any, ingest_template: str) -> Iterator[IngestDb]:
    name = f"suho_ingest_{uuid.uuid4().hex[:12]}"
    with db_server.admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{ingest_template}"')
    admin = db_server.url(name)
    try:
        yield IngestDb(admin, make_ingest_login(admin))
    finally:
        db_server.drop_database(name)


@pytest.fixture
def nats() -> Iterator[NatsServer]:
    """A nats-server of this test's own (tests restart it, fill its streams)."""
    with nats_server() as server:
        yield server


# A PostgreSQL server of its own for the outage test, which stops and restarts it.
_outage_pg_proc = factories.postgresql_proc(
    executable=str(PG_CTL_WRAPPER),
    port=None,
    user="postgres",
    password="postgres",
    postgres_options="-c fsync=off -c full_page_writes=off -c synchronous_commit=off",
)


@pytest.fixture
def outage_db(request: pytest.FixtureRequest, lane_edition: Edition) -> Iterator[OutageDb]:
    """An :class:`IngestDb` on a server the test may stop and start (``.server``)."""
    executor = request.getfixturevalue("_outage_pg_proc")
    server = PgServer(host=executor.host, port=int(executor.port), user=executor.user,
                      password=executor.password or "")
    name = server.create_database()
    engine = make_engine(server.url(name))
    try:
        alembic(engine, "upgrade", "head", edition=lane_edition)
    finally:
        engine.dispose()
    admin = server.url(name)
    try:
        yield OutageDb(admin, make_ingest_login(admin), executor=executor)
    finally:
        if not executor.running():
            executor.start()
        server.drop_database(name)
