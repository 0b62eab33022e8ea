"""Pytest fixtures for the three real servers. Loaded by ``tests/conftest.py`` as a plugin.

* ``pg_server`` / ``pg_url`` / ``make_pg_database``: native PostgreSQL 15, started by
  pytest-postgresql as the ``postgres`` system user (or an external server named by
  ``$SUHO_TEST_PG_URL``); every test gets a fresh empty database.
* ``ts_server`` / ``ts_url`` / ``make_ts_database``: native TimescaleDB 2.28 on PostgreSQL 15
  (``make setup`` builds it), a cluster of its own that preloads the extension and runs its
  background workers, or an external server named by ``$SUHO_TEST_TIMESCALE_URL``.
* ``start_timescale_engine`` / ``timescale_engine``: the PGlite TimescaleDB engine.
* ``nats_server``: nats-server with JetStream.

Every server is stopped at the end of its scope, also when tests fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from pytest_postgresql import factories
from sqlalchemy.engine import make_url

from tests.support.servers import NatsServer, ServerError, TimescaleEngine, make_workdir

EXTERNAL_PG_ENV = "SUHO_TEST_PG_URL"
EXTERNAL_TIMESCALE_ENV = "SUHO_TEST_TIMESCALE_URL"
PG_CTL_WRAPPER = Path(__file__).with_name("pg_ctl_as_postgres")

# port=None: any free port. The wrapper runs pg_ctl as `postgres` when we are root.
_pg_proc = factories.postgresql_proc(
    executable=str(PG_CTL_WRAPPER),
    port=None,
    user="postgres",
    password="postgres",
    postgres_options="-c fsync=off -c full_page_writes=off -c synchronous_commit=off",
)

# The same, preloading TimescaleDB: what users run. Its scheduler runs policies in the
# background (the tests wait for it); telemetry stays off.
_ts_proc = factories.postgresql_proc(
    executable=str(PG_CTL_WRAPPER),
    port=None,
    user="postgres",
    password="postgres",
    postgres_options=(
        "-c fsync=off -c full_page_writes=off -c synchronous_commit=off "
        "-c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off "
        # Every database with the extension gets a scheduler of its own, a background worker
        # for as long as the database exists, and a test session creates dozens: room for
        # them, or the jobs of the scheduler test find no worker to run in.
        "-c max_connections=300 -c max_worker_processes=160 "
        "-c timescaledb.max_background_workers=150"
    ),
)


@dataclass(frozen=True)
class PgServer:
    """Where a native PostgreSQL server listens, and how to reach it as a superuser."""

    host: str
    port: int
    user: str
    password: str
    maintenance_db: str = "postgres"
    #: postmaster pid when we started the server ourselves
    pid: int | None = None

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}:{self.password}@{self.host}:{self.port}/{dbname}"

    def admin_connect(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=self.maintenance_db,
            autocommit=True,
        )

    def create_database(self) -> str:
        name = f"suho_test_{uuid.uuid4().hex[:12]}"
        with self.admin_connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        with self.admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _server(request: pytest.FixtureRequest, env: str, proc_fixture: str) -> PgServer:
    external = os.environ.get(env)
    if external:
        url = make_url(external)
        return PgServer(
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            user=url.username or "postgres",
            password=url.password or "",
            maintenance_db=url.database or "postgres",
        )
    executor = request.getfixturevalue(proc_fixture)
    pid_file = Path(executor.datadir) / "postmaster.pid"
    pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
    return PgServer(
        host=executor.host,
        port=int(executor.port),
        user=executor.user,
        password=executor.password or "",
        pid=pid,
    )


@pytest.fixture(scope="session")
def pg_server(request: pytest.FixtureRequest) -> PgServer:
    """Native PostgreSQL: started for the session, or ``$SUHO_TEST_PG_URL`` if set."""
    return _server(request, EXTERNAL_PG_ENV, "_pg_proc")


@pytest.fixture(scope="session")
def ts_server(request: pytest.FixtureRequest) -> PgServer:
    """Native TimescaleDB: started for the session, or ``$SUHO_TEST_TIMESCALE_URL`` if set."""
    return _server(request, EXTERNAL_TIMESCALE_ENV, "_ts_proc")


def _database_factory(
    request: pytest.FixtureRequest, server_fixture: str
) -> Iterator[Callable[[], str]]:
    # The server starts when the first database is asked for, not when the factory is
    # handed out: a lane that never uses this server never starts it.
    created: list[tuple[PgServer, str]] = []

    def make() -> str:
        server: PgServer = request.getfixturevalue(server_fixture)
        name = server.create_database()
        created.append((server, name))
        return server.url(name)

    yield make
    for server, name in created:
        try:
            server.drop_database(name)
        except psycopg.OperationalError:
            # The server went first (session teardown after a parametrised backend): its
            # data directory, and every database in it, is removed with it.
            break


def _fresh_database(server: PgServer) -> Iterator[str]:
    name = server.create_database()
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


@pytest.fixture(scope="session")
def make_pg_database(request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """Factory: a URL to a fresh empty database; every one is dropped at session end."""
    yield from _database_factory(request, "pg_server")


@pytest.fixture(scope="session")
def make_ts_database(request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """Like ``make_pg_database``, on native TimescaleDB."""
    yield from _database_factory(request, "ts_server")


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """URL of a fresh empty database on native PostgreSQL, dropped after the test."""
    yield from _fresh_database(pg_server)


@pytest.fixture
def ts_url(ts_server: PgServer) -> Iterator[str]:
    """URL of a fresh empty database on native TimescaleDB, dropped after the test."""
    yield from _fresh_database(ts_server)


class _EngineRegistry:
    """The PGlite engines a session started, and which of them outlive their module.

    Each engine process holds about 400 MB. Kept until the session ends, the ~30 of the
    pglite lane took 12 GB, and two suites on one machine ran it out of memory (the kernel
    killed processes at random). An engine is stopped when the module that started it is
    done, unless a session-scoped fixture started it (``keep=True``).
    """

    def __init__(self) -> None:
        self.kept: list[tuple[TimescaleEngine, Path]] = []
        self.module: list[tuple[TimescaleEngine, Path]] = []

    def start(self, *, keep: bool = False) -> TimescaleEngine:
        workdir = make_workdir("timescale")
        engine = TimescaleEngine(workdir)
        (self.kept if keep else self.module).append((engine, workdir))
        return engine.start()

    @staticmethod
    def _stop(started: list[tuple[TimescaleEngine, Path]]) -> None:
        while started:
            engine, workdir = started.pop()
            engine.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    def stop_module(self) -> None:
        self._stop(self.module)

    def stop_all(self) -> None:
        self._stop(self.module)
        self._stop(self.kept)


_ENGINES = pytest.StashKey[_EngineRegistry]()


@pytest.fixture(scope="session")
def start_timescale_engine(
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., TimescaleEngine]]:
    """Factory: start a new TimescaleDB engine process, stopped when the module that asked
    for it is done (``keep=True``: at session end).

    Each engine holds exactly one database, so a fresh engine is the way to a fresh
    database there (startup takes about a second).
    """
    registry = _EngineRegistry()
    request.config.stash[_ENGINES] = registry
    try:
        yield registry.start
    finally:
        registry.stop_all()
        del request.config.stash[_ENGINES]


@pytest.fixture(scope="module", autouse=True)
def _stop_module_engines(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    registry = request.config.stash.get(_ENGINES, None)
    if registry is not None:
        registry.stop_module()


@pytest.fixture(scope="session")
def timescale_engine(
    start_timescale_engine: Callable[..., TimescaleEngine],
) -> TimescaleEngine:
    """One TimescaleDB engine shared by the session (its state persists between tests)."""
    return start_timescale_engine(keep=True)


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """nats-server with JetStream for the session, its store in a temporary directory."""
    workdir = make_workdir("nats")
    server = NatsServer(workdir)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(autouse=True)
def _servers_still_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail loudly, naming the server and its log, when a server died during a test."""
    yield
    for name in ("timescale_engine", "nats_server"):
        if name in request.fixturenames:
            server = request.getfixturevalue(name)
            try:
                server.check()
            except ServerError as exc:
                pytest.fail(str(exc), pytrace=False)
