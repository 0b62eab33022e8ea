"""Alembic environment for suho-mt5.

Where the database comes from, in order:

1. a Connection or Engine handed over in ``config.attributes["connection"]`` (tests,
   pytest-alembic, the CLI);
2. ``-x url=...`` on the alembic command line;
3. ``$SUHO_DATABASE_URL``.

Offline runs (``--sql``) need ``-x edition=timescale|apache|postgresql``: the revisions build
a different schema per edition and cannot ask a server which one applies.

Revisions never import ORM models; the models are only ``target_metadata`` here, for
autogenerate and the model/DDL comparison tests.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from alembic.util import CommandError
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, Engine

from suho_mt5.db import Edition, database_url_from_env, make_engine, parse_edition
from suho_mt5.errors import ConfigError, SuhoError
from suho_mt5.migrations.drift import comparison_options

config = context.config
x_args = context.get_x_argument(as_dictionary=True)

# From the command line, log progress ("Running upgrade 0001 -> 0002 ...") as alembic.ini
# says. Callers that hand over a connection (tests, the CLI) keep their own logging.
if config.config_file_name is not None and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


class EnvConfigError(ConfigError, CommandError):
    """A :class:`ConfigError` that alembic's command line prints as one ``FAILED:`` line
    instead of a traceback."""


def _target_metadata() -> MetaData | None:
    try:
        from suho_mt5.models import metadata
    except ImportError:  # the models package arrives after the first migrations
        return None
    return metadata


def _edition() -> Edition:
    try:
        return parse_edition(x_args["edition"])
    except ConfigError as exc:
        raise EnvConfigError(str(exc)) from None


def _url() -> str:
    try:
        return x_args.get("url") or database_url_from_env()
    except ConfigError as exc:
        raise EnvConfigError(str(exc)) from None


def run_migrations_offline() -> None:
    if "edition" not in x_args:
        raise EnvConfigError(
            "offline (--sql) runs must name the edition to generate for: "
            "-x edition=timescale|apache|postgresql"
        )
    config.attributes["suho_edition"] = _edition()
    context.configure(
        url=x_args.get("url", "postgresql+psycopg://"),
        dialect_name="postgresql",
        target_metadata=_target_metadata(),
        literal_binds=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_with(connection: Connection) -> None:
    if "edition" in x_args:
        config.attributes["suho_edition"] = _edition()
    context.configure(
        connection=connection,
        target_metadata=_target_metadata(),
        transaction_per_migration=True,
        # Autogenerate and pytest-alembic compare the models the way `check_drift` does.
        **comparison_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Engine):  # pytest-alembic hands over an Engine
        with connection.connect() as conn:
            _run_with(conn)
            conn.commit()
        return
    if isinstance(connection, Connection):
        _run_with(connection)
        return
    if connection is not None:
        raise EnvConfigError(
            "config.attributes['connection'] must be a Connection or Engine, "
            f"not {type(connection)!r}"
        )
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _run_with(conn)
            conn.commit()
    finally:
        engine.dispose()


class EnvFailure(CommandError):
    """A :class:`SuhoError` raised by a revision, for alembic's command line: one line."""


def _run() -> None:
    if context.is_offline_mode():
        run_migrations_offline()
    else:
        run_migrations_online()


if config.config_file_name is not None and "connection" not in config.attributes:
    # From the command line a refusal is one "FAILED: ..." line, not a traceback; callers that
    # hand over a connection (tests, suho_mt5.commands) get the SuhoError itself.
    try:
        _run()
    except CommandError:
        raise
    except SuhoError as exc:
        raise EnvFailure(str(exc)) from None
else:
    _run()
