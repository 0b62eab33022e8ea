"""Pytest fixtures for the three real servers. Loaded by ``tests/conftest.py`` as a plugin.

* ``pg_server`` / ``pg_url`` / ``make_pg_database``: native PostgreSQL 15, started by
  pytest-postgresql as the ``postgres`` system user (or an external server named by
  ``$SUHO_TEST_PG_URL``); every test gets a fresh empty database.
* ``ts_server`` / ``ts_url`` / ``make_ts_database``: native TimescaleDB 2.28 on PostgreSQL 15
  (``make setup`` builds it), a cluster of its own that preloads the extension and runs its
  background workers, or an external server named by ``$SUHO_TEST_TIMESCALE_URL``.
* ``start_timescale_engine`` / ``timescale_engine``: the PGlite TimescaleDB engine.
* ``nats_server``: nats-server with JetStream.
* ``nats_cluster``: three nats-server processes as one JetStream cluster (per test: tests
  kill and restart nodes).
* ``patroni_cluster``: two PostgreSQL 15 + TimescaleDB servers managed by Patroni over one
  etcd, a primary and a synchronous streaming replica (per module: the last test of a
  module may kill the primary).
* ``_outage_pg_proc`` / ``_outage_ts_proc``: a PostgreSQL 15 and a TimescaleDB server of
  their own for the tests that stop and restart the database (pytest-postgresql executors:
  ``.stop()`` is ``pg_ctl stop -m fast``, ``.start()``); the session's servers are shared
  by every other test and must never go down under them.
* ``start_pgbouncer`` / ``start_haproxy``: factories for PgBouncer in front of a server and
  HAProxy in front of services; all are stopped at the end of the test.
* ``redis_server`` / ``redis_cache`` / ``make_redis_server``: redis-server 7 (the cache
  tier), its default user off and an admin user (``RedisServer.admin_url``).

Every server is stopped at the end of its scope, also when tests fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from pytest_postgresql import factories
from sqlalchemy.engine import make_url

from tests.support.servers import (
    HAProxy,
    NatsCluster,
    NatsServer,
    PatroniCluster,
    PgBouncer,
    ProxiedService,
    RedisServer,
    ServerError,
    TimescaleEngine,
    make_workdir,
    serving,
)

_S = TypeVar("_S")

EXTERNAL_PG_ENV = "SUHO_TEST_PG_URL"
EXTERNAL_TIMESCALE_ENV = "SUHO_TEST_TIMESCALE_URL"
PG_CTL_WRAPPER = Path(__file__).with_name("pg_ctl_as_postgres")

_FAST = "-c fsync=off -c full_page_writes=off -c synchronous_commit=off"
_TIMESCALE = (" -c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off"
              " -c max_connections=200")

# port=None: any free port. The wrapper runs pg_ctl as `postgres` when we are root.
_pg_proc = factories.postgresql_proc(
    executable=str(PG_CTL_WRAPPER),
    port=None,
    user="postgres",
    password="postgres",
    postgres_options=_FAST,
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

# Servers of their own for the tests that stop and restart the database (the ingest outage
# test, the gateway's restart test), started only when one of them runs.
_outage_pg_proc = factories.postgresql_proc(
    executable=str(PG_CTL_WRAPPER), port=None, user="postgres", password="postgres",
    postgres_options=_FAST,
)
_outage_ts_proc = factories.postgresql_proc(
    executable=str(PG_CTL_WRAPPER), port=None, user="postgres", password="postgres",
    postgres_options=_FAST + _TIMESCALE,
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

    @classmethod
    def of(cls, executor: Any) -> PgServer:
        """The server a pytest-postgresql executor started."""
        return cls(host=executor.host, port=int(executor.port), user=executor.user,
                   password=executor.password or "")

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
    with serving(NatsServer, "nats") as server:
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """redis-server for the session: loopback, a free port, the default user off, DEBUG
    allowed from loopback (so that the ACL, not the server's default, refuses it)."""
    with serving(lambda w: RedisServer(w, debug_command=True), "redis") as server:
        yield server


@pytest.fixture
def redis_cache(redis_server: RedisServer) -> RedisServer:
    """The session's redis-server, emptied: no keys, no users but its admin."""
    import redis

    client = redis.Redis.from_url(redis_server.admin_url)
    try:
        client.flushall()
        for user in client.acl_users():
            name = user.decode() if isinstance(user, bytes) else user
            if name not in ("default", RedisServer.ADMIN):
                client.acl_deluser(name)
    finally:
        client.close()
    return redis_server


@pytest.fixture
def make_redis_server() -> Iterator[Callable[[], RedisServer]]:
    """Factory: a redis-server of the test's own (to kill and restart); all stopped after."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(
            serving(lambda w: RedisServer(w, debug_command=True), "redis"))


@pytest.fixture
def nats_cluster() -> Iterator[NatsCluster]:
    """Three nats-server processes as one JetStream cluster, each with its own store;
    ``.url`` is the comma-separated list of their client URLs."""
    workdir = make_workdir("nats-cluster")
    cluster = NatsCluster(workdir, size=3)
    try:
        yield cluster.start()
        cluster.check()  # a node died during the test that the test did not kill: say so
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def patroni_cluster() -> Iterator[PatroniCluster]:
    """A primary and a synchronous streaming replica of PostgreSQL 15 + TimescaleDB,
    managed by Patroni over one etcd; ``.url(...)`` is a libpq multi-host URL. One per
    module (it takes about ten seconds): a test that kills a node comes last in it."""
    workdir = make_workdir("patroni")
    cluster = PatroniCluster(workdir, size=2)
    try:
        yield cluster.start()
        cluster.check()
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


class _Started:
    """The servers a factory fixture started, each in a work directory of its own; all
    stopped, and their directories removed, by :meth:`stop_all`."""

    def __init__(self) -> None:
        self._started: list[tuple[Any, Path]] = []

    def add(self, prefix: str, build: Callable[[Path], _S]) -> _S:
        workdir = make_workdir(prefix)
        server = build(workdir)
        self._started.append((server, workdir))
        return server

    def stop_all(self) -> None:
        for server, workdir in self._started:
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def start_pgbouncer() -> Iterator[Callable[..., PgBouncer]]:
    """Factory: ``start(server_port, users, **options)`` -> a running :class:`PgBouncer`
    (transaction pooling unless ``pool_mode`` says otherwise)."""
    started = _Started()

    def start(server_port: int, users: dict[str, str], **options: Any) -> PgBouncer:
        return started.add("pgbouncer", lambda workdir: PgBouncer(
            workdir, server_port, users, **options)).start()

    yield start
    started.stop_all()


@pytest.fixture
def start_haproxy() -> Iterator[Callable[..., HAProxy]]:
    """Factory: ``start([ProxiedService, ...], check_ms=...)`` -> a running :class:`HAProxy`."""
    started = _Started()

    def start(services: list[ProxiedService], check_ms: int = 250) -> HAProxy:
        return started.add("haproxy", lambda workdir: HAProxy(
            workdir, services, check_ms=check_ms)).start()

    yield start
    started.stop_all()


@pytest.fixture(autouse=True)
def _servers_still_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail loudly, naming the server and its log, when a server died during a test."""
    yield
    for name in ("timescale_engine", "nats_server", "redis_server"):
        if name in request.fixturenames:
            server = request.getfixturevalue(name)
            try:
                server.check()
            except ServerError as exc:
                pytest.fail(str(exc), pytrace=False)
