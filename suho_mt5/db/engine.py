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
from suho_mt5.errors import ConfigError, redact

__all__ = [
    "DATABASE_URL_ENV",
    "database_url_from_env",
    "is_single_backend",
    "make_engine",
    "normalize_url",
    "prepare_threshold",
    "psycopg_conninfo",
    "register_timescaledb_dialect",
]

#: Environment variable every entry point reads the database URL from.
DATABASE_URL_ENV = "SUHO_DATABASE_URL"

_TRUE = {"1", "true", "yes", "on"}
_DEFAULT_PORT = "5432"


def _parse(url: str) -> URL:
    """``url`` as a SQLAlchemy URL; a libpq multi-host URI or keyword/value string too."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    several_hosts = bool(sep) and "," in rest.split("/", 1)[0].rpartition("@")[2]
    keywords = not sep and "=" in text
    if not (several_hosts or keywords):
        return make_url(text)
    if sep and scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ConfigError(f"suho-mt5 needs PostgreSQL, got a {scheme!r} URL")
    try:
        params = psycopg.conninfo.conninfo_to_dict(f"postgresql://{rest}" if sep else text)
    except psycopg.Error as exc:
        raise ConfigError(f"not a database URL: {redact(repr(url))} "
                          f"({redact(_first_line(exc))})") from exc
    return _url_of(params, url)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _url_of(params: dict[str, Any], original: str) -> URL:
    """The SQLAlchemy URL of libpq connection parameters. Several hosts become repeated
    ``host=h:p`` query parameters, which SQLAlchemy's psycopg dialect hands back to libpq
    as ``host=h1,h2 port=p1,p2``."""
    query = {k: str(v) for k, v in params.items()
             if k not in ("host", "port", "user", "password", "dbname")}
    hosts = str(params.get("host") or "").split(",")
    ports = str(params.get("port") or "").split(",")
    if len(ports) == 1:
        ports *= len(hosts)
    if len(ports) != len(hosts):
        raise ConfigError(f"{len(hosts)} hosts but {len(ports)} ports in {original!r}")
    if any(p and not p.isdigit() for p in ports):
        raise ConfigError(f"not a database URL: {original!r} (port {params.get('port')!r})")
    user, password, dbname = (params.get(k) for k in ("user", "password", "dbname"))
    if len(hosts) == 1:
        return URL.create("postgresql", username=user, password=password,
                          host=hosts[0] or None, port=int(ports[0]) if ports[0] else None,
                          database=dbname, query=query)
    pairs = tuple(f"{h}:{p or _DEFAULT_PORT}" for h, p in zip(hosts, ports, strict=True))
    return URL.create("postgresql", username=user, password=password, database=dbname,
                      query={"host": pairs, **query})



def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and pin the psycopg 3 driver.

    ``postgresql://`` and ``postgres://`` URLs are accepted as they come from ``psql``
    and most hosting dashboards, and so are libpq's multi-host forms, for a primary and
    its standbys (Patroni): ``postgresql://u:p@h1:5432,h2:5432/db?target_session_attrs=
    read-write``, or the keyword/value string ``host=h1,h2 port=5432 dbname=db ...``.
    libpq then tries the hosts in turn and keeps the first that has what
    ``target_session_attrs`` asks for (``read-write``: the primary; ``prefer-standby``:
    a replica if one answers).

    >>> normalize_url("postgres://u@localhost/db").drivername
    'postgresql+psycopg'
    >>> normalize_url("postgresql://u@h1:5432,h2:5433/db").query["host"]
    ('h1:5432', 'h2:5433')
    """
    try:
        parsed = _parse(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise ConfigError(f"not a database URL: {redact(repr(url))}") from exc
    backend = parsed.get_backend_name()
    if backend not in ("postgresql", "postgres"):
        raise ConfigError(f"suho-mt5 needs PostgreSQL, got a {backend!r} URL")
    return parsed.set(drivername="postgresql+psycopg")


def psycopg_conninfo(url: str) -> tuple[str, bool]:
    """``(libpq URI, single_backend)`` of a SQLAlchemy or libpq database URL.

    ``prepare_threshold`` (a setting of psycopg's connections that libpq does not know) is
    dropped: the Data Bridge, which connects this way, needs a session of its own anyway
    (PgBouncer in session mode, or no pooler), where prepared statements work.

    >>> psycopg_conninfo("postgresql+psycopg://u:p@h:5/db?single_backend=true")
    ('postgresql://u:p@h:5/db', True)
    >>> psycopg_conninfo("host=h1,h2 port=5432 dbname=db target_session_attrs=read-write")
    ('postgresql://h1:5432,h2:5432/db?target_session_attrs=read-write', False)
    """
    parsed = normalize_url(url)
    flag = str(parsed.query.get("single_backend", "")).lower() in _TRUE
    if "prepare_threshold" in parsed.query:  # psycopg's, not libpq's: checked, then dropped
        prepare_threshold(parsed.query["prepare_threshold"])
    parsed = parsed.difference_update_query(["single_backend", "prepare_threshold"]).set(
        drivername="postgresql")
    hosts = parsed.query.get("host")
    if not isinstance(hosts, tuple):
        return parsed.render_as_string(hide_password=False), flag
    # Several hosts: libpq wants them in the authority, not as repeated query parameters.
    one_host = parsed.difference_update_query(["host"]).set(host="@HOSTS@")
    rendered = one_host.render_as_string(hide_password=False)
    return rendered.replace("@HOSTS@", ",".join(hosts), 1), flag


def prepare_threshold(value: str | tuple[str, ...]) -> int | None:
    """The ``prepare_threshold`` URL parameter as psycopg takes it: an int, or None.

    >>> prepare_threshold("none"), prepare_threshold("0")
    (None, 0)
    """
    text = value[-1] if isinstance(value, tuple) else value
    if text.strip().lower() in ("none", "off", "never", "false"):
        return None
    if not text.strip().isdigit():
        raise ConfigError(f"prepare_threshold must be a number of executions or 'none', "
                          f"got {text!r}")
    return int(text)


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

    ``prepare_threshold`` in the URL's query is psycopg's setting of that name: after how
    many executions a statement is prepared on the server (5), or ``none`` for never. Behind
    PgBouncer in transaction mode say ``prepare_threshold=none``: consecutive transactions
    run on different server connections, and a statement prepared on one is missing on the
    next (docs/operations.md).

    Extra keyword arguments go to :func:`sqlalchemy.create_engine`.
    """
    parsed = normalize_url(url)
    flag = parsed.query.get("single_backend")
    if flag is not None:
        parsed = parsed.difference_update_query(["single_backend"])
        if single_backend is None:
            single_backend = str(flag).lower() in _TRUE
    if "prepare_threshold" in parsed.query:
        threshold = prepare_threshold(parsed.query["prepare_threshold"])
        parsed = parsed.difference_update_query(["prepare_threshold"])
        if not single_backend:
            kwargs["connect_args"] = {"prepare_threshold": threshold,
                                      **kwargs.get("connect_args", {})}
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
