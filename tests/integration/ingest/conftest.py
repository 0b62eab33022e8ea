"""Ingest fixtures for the native PostgreSQL lane. The tests of this directory use
``db_server`` and ``lane_edition`` only, so another lane runs them by defining those two."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from suho_mt5.db import Edition, make_engine
from tests.integration.ingest._support import IngestDb, make_ingest_login, nats_server
from tests.integration.schema._support import alembic
from tests.support.servers import NatsServer


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
