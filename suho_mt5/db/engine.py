"""Creating SQLAlchemy engines for suho-mt5 databases.

One function, :func:`make_engine`, so that every entry point (Alembic's ``env.py``, the
CLI, the ingest layer, tests) gets the same driver, URL handling and engine guards.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from suho_mt5.db._single_backend import SingleBackendConnection
from suho_mt5.errors import ConfigError

__all__ = [
    "DATABASE_URL_ENV",
    "database_url_from_env",
    "is_single_backend",
    "make_engine",
    "normalize_url",
    "psycopg_conninfo",
    "register_timescaledb_dialect",
]

#: Environment variable every entry point reads the database URL from.
DATABASE_URL_ENV = "SUHO_DATABASE_URL"

_TRUE = {"1", "true", "yes", "on"}


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and pin the psycopg 3 driver.

    ``postgresql://`` and ``postgres://`` URLs are accepted as they come from ``psql``
    and most hosting dashboards.

    >>> normalize_url("postgres://u@localhost/db").drivername
    'postgresql+psycopg'
    """
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except ArgumentError as exc:
        raise ConfigError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend not in ("postgresql", "postgres"):
        raise ConfigError(f"suho-mt5 needs PostgreSQL, got a {backend!r} URL")
    return parsed.set(drivername="postgresql+psycopg")


def psycopg_conninfo(url: str) -> tuple[str, bool]:
    """``(libpq URI, single_backend)`` of a SQLAlchemy or libpq database URL.

    >>> psycopg_conninfo("postgresql+psycopg://u:p@h:5/db?single_backend=true")
    ('postgresql://u:p@h:5/db', True)
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # ArgumentError, and ValueError for a bad port
        raise ConfigError(f"not a database URL: {url!r}") from exc
    flag = str(parsed.query.get("single_backend", "")).lower() in _TRUE
    parsed = parsed.difference_update_query(["single_backend"]).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False), flag


def register_timescaledb_dialect() -> None:
    """Make ``timescaledb+psycopg://`` URLs resolve (sqlalchemy-timescaledb's dialect for
    psycopg 3); the models call it, so that their ``timescaledb_hypertable`` option is
    known without the package's entry point (a source checkout never pip-installed)."""
    from suho_mt5.db._timescaledb_dialect import register

    register()


def database_url_from_env() -> str:
    """Return ``$SUHO_DATABASE_URL`` or raise a :class:`ConfigError` saying how to set it."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    if not url:
        raise ConfigError(
            f"no database URL: set {DATABASE_URL_ENV}, e.g. "
            f"{DATABASE_URL_ENV}=postgresql://user:password@localhost:5432/suho"
        )
    return url


_SINGLE = "suho_single_backend"


def make_engine(url: str | URL, *, single_backend: bool | None = None, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with the psycopg 3 driver.

    ``single_backend`` marks a server that runs one backend for every client (the PGlite
    TimescaleDB engine). It defaults to the URL's ``single_backend=true`` query parameter
    so a plain URL in ``$SUHO_DATABASE_URL`` can say it. Such an engine opens at most one
    connection at a time, closes it when it is returned, and refuses ``COPY`` and oversized
    statements with :class:`~suho_mt5.errors.EngineLimitError` before sending them.

    Extra keyword arguments go to :func:`sqlalchemy.create_engine`.
    """
    parsed = normalize_url(url)
    flag = parsed.query.get("single_backend")
    if flag is not None:
        parsed = parsed.difference_update_query(["single_backend"])
        if single_backend is None:
            single_backend = str(flag).lower() in _TRUE
    if not single_backend:
        return sa.create_engine(parsed, **kwargs)

    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}))
    connect_args.setdefault("sslmode", "disable")

    def creator() -> psycopg.Connection[Any]:
        # SQLAlchemy passes no arguments to a creator: rebuild the conninfo from the URL.
        conninfo = psycopg.conninfo.make_conninfo(
            host=parsed.host or "127.0.0.1",
            port=str(parsed.port or 5432),
            user=parsed.username or "postgres",
            password=parsed.password or "postgres",
            dbname=parsed.database or "postgres",
            **connect_args,
        )
        return SingleBackendConnection.connect(conninfo)

    kwargs.setdefault("poolclass", NullPool)
    # Keep multi-row INSERT statements well under the engine's message-size limit.
    kwargs.setdefault("insertmanyvalues_page_size", 100)
    # The URL's flag is consumed above; remember it where is_single_backend() can see it.
    kwargs["execution_options"] = {**kwargs.get("execution_options", {}), _SINGLE: True}
    return sa.create_engine(parsed, creator=creator, **kwargs)


def is_single_backend(engine: Engine) -> bool:
    """Whether ``engine`` was made by :func:`make_engine` for a single-backend server
    (one connection at a time, no logins of its own: the PGlite TimescaleDB engine)."""
    return bool(engine.get_execution_options().get(_SINGLE, False))
