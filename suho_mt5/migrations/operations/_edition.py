"""Which edition a migration builds for, and how revisions send SQL verbatim.

The edition is chosen once, by the init revision, and recorded in the database as the
function ``mt5_schema_edition()``; every later revision (and every downgrade) reads it back,
so a schema built as ``apache`` on a TimescaleDB server is not "upgraded" half-way into a
``timescale`` one. Offline (``--sql``) runs cannot ask a server: they take the edition from
``-x edition=...`` (``config.attributes["suho_edition"]``).
"""

from __future__ import annotations

import weakref
from typing import Any

from alembic import op
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import ExecutableDDLElement

from suho_mt5.db import Edition, inspect_server, parse_edition
from suho_mt5.errors import EditionError, MigrationError, TimescaleNotPreloadedError

__all__ = [
    "EDITION_ATTRIBUTE",
    "RawSQL",
    "choose_install_edition",
    "execute_sql",
    "migration_edition",
    "remember_edition",
]

#: ``config.attributes`` key that env.py fills from ``-x edition=...``.
EDITION_ATTRIBUTE = "suho_edition"

_EDITIONS: weakref.WeakKeyDictionary[MigrationContext, Edition] = weakref.WeakKeyDictionary()


class RawSQL(ExecutableDDLElement):
    """SQL text sent exactly as written.

    ``op.execute("...")`` wraps strings in :func:`sqlalchemy.text`, which reads ``:name`` as
    a bind parameter (``'{"a":1}'`` would lose its ``:1``) and doubles ``%`` in offline
    scripts (``format('%I', ...)`` would become ``format('%%I', ...)``). Function bodies
    and DO blocks need neither.
    """

    inherit_cache = False

    def __init__(self, sql: str) -> None:
        self.sql = sql


@compiles(RawSQL)
def _compile_raw(element: RawSQL, compiler: Any, **kw: Any) -> str:
    return element.sql


def execute_sql(sql: str, operations: Operations | None = None) -> None:
    """Run (or, offline, print) ``sql`` verbatim, without parameter processing."""
    target: Any = operations if operations is not None else op
    target.execute(RawSQL(sql), execution_options={"no_parameters": True})


def _explicit(ctx: MigrationContext) -> Edition | None:
    value: object = None
    env = ctx.environment_context
    if env is not None:
        value = env.config.attributes.get(EDITION_ATTRIBUTE)
    if value is None:
        value = ctx.opts.get(EDITION_ATTRIBUTE)
    if value is None:
        return None
    return value if isinstance(value, Edition) else parse_edition(str(value))


def _stored(conn: Connection) -> Edition | None:
    exists = conn.execute(
        text("SELECT to_regprocedure('public.mt5_schema_edition()') IS NOT NULL")
    ).scalar_one()
    if not exists:
        return None
    return parse_edition(str(conn.execute(text("SELECT public.mt5_schema_edition()")).scalar_one()))


def _check_schema(conn: Connection) -> None:
    schema = conn.execute(text("SELECT current_schema()")).scalar()
    if schema != "public":
        raise MigrationError(
            f"suho-mt5 builds its schema in 'public', but objects would be created in {schema!r}"
            " (search_path is "
            f"{conn.execute(text('SHOW search_path')).scalar()!r}): set search_path to public."
            " On the PGlite engine, DISCARD ALL resets it to pg_catalog."
        )


def remember_edition(edition: Edition, context: MigrationContext | None = None) -> None:
    """Record the edition for the rest of this migration run (the init revision calls it)."""
    _EDITIONS[context or op.get_context()] = edition


def migration_edition(context: MigrationContext | None = None) -> Edition:
    """The edition the running migration builds for.

    Order: what this run already decided; offline, ``-x edition``; online, the edition
    recorded by the init revision (an explicit ``-x edition`` must agree with it); then the
    server's own (:func:`suho_mt5.db.inspect_server`).
    """
    ctx = context or op.get_context()
    known = _EDITIONS.get(ctx)
    if known is not None:
        return known
    explicit = _explicit(ctx)
    if ctx.as_sql:
        if explicit is None:
            raise MigrationError(
                "offline (--sql) migrations need the edition: "
                "-x edition=timescale|apache|postgresql"
            )
        edition = explicit
    else:
        conn = ctx.bind
        assert conn is not None
        _check_schema(conn)
        stored = _stored(conn)
        if stored is not None and explicit is not None and stored is not explicit:
            raise MigrationError(
                f"this database was built for the {stored.value!r} edition; "
                f"-x edition={explicit.value} cannot change that"
            )
        edition = stored or explicit or inspect_server(conn).edition
    _EDITIONS[ctx] = edition
    return edition


#: One line naming both ways forward (docs/schema.md, "Editions").
NOT_PRELOADED = (
    "TimescaleDB is installed on this server but not preloaded: add timescaledb to "
    "shared_preload_libraries in postgresql.conf and restart the server, or build the plain "
    "PostgreSQL edition with -x edition=postgresql (suho-mt5 db upgrade --edition postgresql)"
)


def choose_install_edition(context: MigrationContext | None = None) -> Edition:
    """The init revision's choice: install TimescaleDB when the server offers it.

    Online without ``-x edition``: TimescaleDB is created if available, and the license then
    decides between ``timescale`` and ``apache``. With ``-x edition`` (or offline) the given
    edition is built, and TimescaleDB is created when that edition needs it.
    """
    ctx = context or op.get_context()
    explicit = _explicit(ctx)
    if ctx.as_sql:
        edition = migration_edition(ctx)
        if edition.has_hypertables:
            execute_sql("CREATE EXTENSION IF NOT EXISTS timescaledb")
        return edition
    conn = ctx.bind
    assert conn is not None
    _check_schema(conn)
    stored = _stored(conn)
    if stored is not None:
        return migration_edition(ctx)
    info = inspect_server(conn)
    wants_timescaledb = explicit.has_hypertables if explicit else info.timescaledb_available
    if wants_timescaledb:
        if not info.timescaledb_available:
            raise EditionError(
                f"the {explicit.value if explicit else 'requested'} edition needs TimescaleDB, "
                "which this server does not offer"
            )
        if not info.timescaledb_loadable:
            raise TimescaleNotPreloadedError(NOT_PRELOADED)
        if info.timescaledb_version is None:
            execute_sql("CREATE EXTENSION IF NOT EXISTS timescaledb")
        info = inspect_server(conn)
    edition = explicit or info.edition
    if edition is Edition.TIMESCALE and info.timescaledb_license != "timescale":
        raise EditionError(
            "the timescale edition needs TimescaleDB's Timescale license "
            f"(timescaledb.license = {info.timescaledb_license!r})"
        )
    remember_edition(edition, ctx)
    return edition
