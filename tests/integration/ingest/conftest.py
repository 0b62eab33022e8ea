"""Ingest fixtures. Every database test here runs twice: on native PostgreSQL
(edition ``postgresql``) and on native TimescaleDB 2.28 (edition ``timescale``), through the
``db_lane`` parameter, whose values carry the ``integration`` / ``timescale`` markers
(``pytest -m timescale`` selects the second); nats-server is started per test. They need
logins and several connections, so the PGlite engine is not a lane here (its writer path is
tested in ``tests/pglite/ingest``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from suho_mt5.db import Edition, make_engine
from tests.db.schema._support import alembic
from tests.integration.ingest._support import IngestDb, make_ingest_login, nats_server
from tests.support.fixtures import PgServer
from tests.support.servers import NatsServer

LANES = {"postgresql": ("pg_server", Edition.POSTGRESQL),
         "timescaledb": ("ts_server", Edition.TIMESCALE)}


@dataclass
class OutageDb(IngestDb):
    """An :class:`IngestDb` whose server the test stops (``executor.stop()``) and starts."""

    executor: Any = None


@pytest.fixture(scope="session", params=[
    pytest.param("postgresql", marks=pytest.mark.integration),
    pytest.param("timescaledb", marks=pytest.mark.timescale),
])
def db_lane(request: pytest.FixtureRequest, pg_server: PgServer,
            ts_server: PgServer) -> tuple[str, Any, Edition]:
    """``(lane, server, edition)``: native PostgreSQL, then native TimescaleDB.

    Both servers are plain arguments, not getfixturevalue() calls: a session fixture fetched
    dynamically is finalized with this parametrised one, stopping a server under later tests.
    """
    server = pg_server if request.param == "postgresql" else ts_server
    return request.param, server, LANES[request.param][1]


def _migrate(server: Any, name: str, edition: Edition) -> None:
    engine = make_engine(server.url(name))
    try:
        alembic(engine, "upgrade", "head", edition=edition)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def ingest_template(db_lane: tuple[str, Any, Edition]) -> Iterator[str]:
    """A database migrated to head, copied for every test (migrating takes seconds)."""
    _, server, edition = db_lane
    name = server.create_database()
    _migrate(server, name, edition)
    with server.admin_connect() as conn:
        # TimescaleDB's scheduler stays connected to every database with the extension, and
        # a template must have no sessions: lock it out, then end the one it has.
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
    yield name
    server.drop_database(name)


@pytest.fixture
def ingest_db(db_lane: tuple[str, Any, Edition], ingest_template: str) -> Iterator[IngestDb]:
    _, server, _ = db_lane
    name = f"suho_ingest_{uuid.uuid4().hex[:12]}"
    with server.admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{ingest_template}"')
    admin = server.url(name)
    try:
        yield IngestDb(admin, make_ingest_login(admin))
    finally:
        server.drop_database(name)


@pytest.fixture
def nats() -> Iterator[NatsServer]:
    """A nats-server of this test's own (tests restart it, fill its streams)."""
    with nats_server() as server:
        yield server


@pytest.fixture
def outage_db(db_lane: tuple[str, Any, Edition], _outage_pg_proc: Any,
              _outage_ts_proc: Any) -> Iterator[OutageDb]:
    """An :class:`IngestDb` on a server the test may stop and start (``.executor``; the
    servers are ``tests/support/fixtures.py``'s ``_outage_*_proc``).
    (Both servers as plain arguments, for the reason given at :func:`db_lane`.)"""
    lane, _, edition = db_lane
    executor = _outage_pg_proc if lane == "postgresql" else _outage_ts_proc
    server = PgServer.of(executor)
    name = server.create_database()
    _migrate(server, name, edition)
    admin = server.url(name)
    try:
        yield OutageDb(admin, make_ingest_login(admin), executor=executor)
    finally:
        if not executor.running():
            executor.start()
        server.drop_database(name)
