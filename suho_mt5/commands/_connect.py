"""Connecting from a command, one way for all of them: the database URL, a database
connection, NATS, and the one-line message of whatever fails.

* :func:`database_url`: the ``--url`` value (click has read ``SUHO_DATABASE_URL`` for it), or
  one :class:`~suho_mt5.errors.ConfigError` saying how to give one;
* :func:`check_database_url`: a URL that is not PostgreSQL's is refused without connecting
  (:func:`suho_mt5.db.psycopg_conninfo`, :func:`~suho_mt5.db.normalize_url`: no engine is
  built to check it);
* :func:`connection` (SQLAlchemy, for the commands that run SQL through it),
  :func:`connect_database` (psycopg, async) and :func:`check_database`: a server that is
  not there is one :class:`~suho_mt5.errors.DatabaseError` line;
* :func:`connect_nats`, :func:`check_nats`: one attempt, bounded, one line;
* :func:`one_line`, :func:`cause`: how every command and the CLI put a failure on one line.

The services (bridge, gateway) reconnect forever once they run; a command that starts
against a server that is down must instead say so and exit. nats-py's ``connect`` with
``allow_reconnect=False`` waits forever for a server that refuses, so :func:`connect_nats`
asks for one reconnect attempt and bounds the whole call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from suho_mt5._nats import nats_servers
from suho_mt5.errors import ConfigError, DatabaseError, StreamSetupError, SuhoError, redact

if TYPE_CHECKING:
    import psycopg
    from sqlalchemy.engine import Connection

__all__ = [
    "CONNECT_TIMEOUT",
    "cause",
    "check_database",
    "check_database_url",
    "check_nats",
    "connect_database",
    "connect_nats",
    "connection",
    "database_url",
    "one_line",
]

#: Seconds for one connection attempt; a NATS connect is bounded by three of them.
CONNECT_TIMEOUT = 5.0


def one_line(failure: object) -> str:
    """``failure`` (an exception or a message) on one line: driver and Alembic messages span
    several (a hint, the SQL, a link to a help page); their lines are joined with ``; ``,
    SQLAlchemy's "Background on this error" pointer left out. An exception with no message
    is its type's name.

    >>> one_line(ValueError("connection refused\\n\\tIs the server running?"))
    'connection refused; Is the server running?'
    >>> one_line(TimeoutError())
    'TimeoutError'
    """
    lines = [line.strip() for line in redact(str(failure)).splitlines()]
    text = "; ".join(line for line in lines if line and not line.startswith("(Background"))
    if not text and isinstance(failure, BaseException):
        return type(failure).__name__
    return text


def cause(exc: BaseException) -> str:
    """The driver's own message of a SQLAlchemy error (not SQLAlchemy's wrapping), on one
    line."""
    orig = getattr(exc, "orig", None)
    return one_line(orig if isinstance(orig, BaseException) else exc)


def database_url(url: str | None) -> str:
    """``url`` (``--url``, or ``SUHO_DATABASE_URL`` as click read it), or a
    :class:`ConfigError` saying how to give one."""
    if url is not None and url.strip():
        return url.strip()
    from suho_mt5.db import DATABASE_URL_ENV

    raise ConfigError(
        f"no database URL: set {DATABASE_URL_ENV}, e.g. "
        f"{DATABASE_URL_ENV}=postgresql://user:password@localhost:5432/suho (or give --url)")


def check_database_url(url: str) -> str:
    """The libpq URI of ``url``; a :class:`ConfigError` for a URL that is not PostgreSQL's,
    without connecting (for a service that rides out a database that is down) and without
    building an engine."""
    from suho_mt5.db import normalize_url, psycopg_conninfo

    conninfo, _ = psycopg_conninfo(url)  # "not a database URL: ..."
    normalize_url(url)  # "suho-mt5 needs PostgreSQL, got a 'mysql' URL"
    return conninfo


@contextmanager
def connection(url: str, *, autocommit: bool = False, failure: type[SuhoError] = DatabaseError,
               prefix: str = "") -> Iterator[Connection]:
    """A SQLAlchemy connection to ``url``; driver errors come out as one-line SuhoErrors:
    connecting as :class:`DatabaseError`, later ones as ``failure`` (``prefix`` first)."""
    from sqlalchemy.exc import SQLAlchemyError

    from suho_mt5.db import make_engine

    engine = make_engine(url)
    try:
        try:
            conn = engine.connect()
        except SQLAlchemyError as exc:
            raise DatabaseError(f"cannot connect to the database: {cause(exc)}") from exc
        with conn:
            try:
                yield conn.execution_options(isolation_level="AUTOCOMMIT") if autocommit else conn
            except SQLAlchemyError as exc:
                raise failure(prefix + cause(exc)) from exc
    finally:
        engine.dispose()


async def connect_database(url: str, *, autocommit: bool = False
                           ) -> psycopg.AsyncConnection[Any]:
    """An async psycopg connection to ``url``, or one :class:`DatabaseError` line."""
    import psycopg

    conninfo = check_database_url(url)
    try:
        return await psycopg.AsyncConnection.connect(
            conninfo, connect_timeout=int(CONNECT_TIMEOUT), autocommit=autocommit)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to the database: {one_line(exc)}") from exc


def check_database(url: str) -> None:
    """``SELECT 1`` at ``url``: a :class:`ConfigError` for a URL that is not PostgreSQL's,
    a :class:`DatabaseError` for a server that is not there, before a long-running command
    starts."""

    async def probe() -> None:
        # Autocommit: on the PGlite engine every client shares one backend, and a
        # transaction left open by a closed connection stays open for the next client.
        conn = await connect_database(url, autocommit=True)
        try:
            await conn.execute("SELECT 1")
        finally:
            await conn.close()

    asyncio.run(probe())


async def connect_nats(nats_url: str, what: str = "this command") -> Any:
    """A connected nats-py client, or a :class:`StreamSetupError` saying why not."""
    try:
        import nats
    except ImportError as exc:  # the `nats` extra
        raise ConfigError(f"{what} needs nats-py: pip install 'suho-mt5[nats]'") from exc

    async def quiet(_: Exception) -> None:  # the failure is raised; no log line besides
        return None

    try:
        return await asyncio.wait_for(
            nats.connect(servers=nats_servers(nats_url), connect_timeout=CONNECT_TIMEOUT,
                         max_reconnect_attempts=1, error_cb=quiet),
            3 * CONNECT_TIMEOUT)
    except Exception as exc:
        raise StreamSetupError(f"cannot connect to NATS at {redact(nats_url)}: {one_line(exc)}") \
            from exc


def check_nats(nats_url: str, what: str = "this command") -> None:
    """Connect once and close: the check a long-running command makes before it starts."""

    async def probe() -> None:
        client = await connect_nats(nats_url, what)
        await client.close()

    asyncio.run(probe())
