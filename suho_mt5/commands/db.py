"""Database commands: migrate, inspect, check and maintain a suho-mt5 database.

Plain typed functions (the way alembic's ``command.py`` sits under its command line): the
``suho-mt5 db ...`` commands call them and only format what they return; applications and
tests call them directly. They need no ``alembic.ini``: the migrations are found in the
installed package (:func:`suho_mt5.migrations._config.alembic_config`), so a DBA who
installed the wheel can migrate a database with nothing else.

Every failure is a :class:`~suho_mt5.errors.SuhoError` with a one-line message: a URL that
is not PostgreSQL (:class:`ConfigError`), a server that cannot be reached
(:class:`DatabaseError`), a migration that fails or a revision that does not exist
(:class:`MigrationError`).

With a server at hand::

    upgrade("postgresql://postgres@db/suho", edition="postgresql")
    downgrade("postgresql://postgres@db/suho", "base")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text

from suho_mt5.commands._connect import connection, one_line
from suho_mt5.db import Edition, ServerInfo, inspect_server, parse_edition
from suho_mt5.errors import DatabaseError, MigrationError, SuhoError
from suho_mt5.migrations._config import alembic_config
from suho_mt5.migrations.drift import Drift, check_drift
from suho_mt5.migrations.operations import EDITION_ATTRIBUTE
from suho_mt5.migrations.operations import render_sql as _render_sql

__all__ = [
    "HealthRow",
    "Revision",
    "check",
    "current",
    "downgrade",
    "health",
    "history",
    "info",
    "maintain",
    "render_sql",
    "server_info",
    "upgrade",
]

@dataclass(frozen=True, slots=True)
class Revision:
    """One migration of the package, as :func:`history` lists them."""

    revision: str
    down_revision: str | None
    #: The first line of the revision's docstring.
    doc: str
    is_head: bool


@dataclass(frozen=True, slots=True)
class HealthRow:
    """One row of ``health_check()``; ``status`` is ``ok``, ``warning`` or ``error``."""

    component: str
    status: str
    detail: str


def _edition(edition: Edition | str | None) -> Edition | None:
    if edition is None or isinstance(edition, Edition):
        return edition
    return parse_edition(edition)


def _migrate(url: str, edition: Edition | str | None, run: Callable[[Config], None]) -> None:
    config = alembic_config()
    chosen = _edition(edition)
    if chosen is not None:
        config.attributes[EDITION_ATTRIBUTE] = chosen
    try:
        with connection(url, failure=MigrationError, prefix="migration failed: ") as conn:
            config.attributes["connection"] = conn
            run(config)
            conn.commit()
    except SuhoError:
        raise
    except CommandError as exc:  # an unknown revision, a bad range
        raise MigrationError(one_line(exc)) from exc


def upgrade(url: str, revision: str = "head", edition: Edition | str | None = None) -> list[str]:
    """Migrate the database at ``url`` up to ``revision``; return its revisions afterwards.

    ``edition`` (``timescale``, ``apache`` or ``postgresql``) forces the schema flavour;
    without it the server decides (see :mod:`suho_mt5.db.edition`). A database already
    built for another edition refuses a different one (:class:`MigrationError`).
    """
    _migrate(url, edition, lambda config: command.upgrade(config, revision))
    return current(url)


def downgrade(url: str, revision: str) -> list[str]:
    """Migrate the database at ``url`` down to ``revision`` (``base``: remove everything);
    return its revisions afterwards."""
    _migrate(url, None, lambda config: command.downgrade(config, revision))
    return current(url)


def current(url: str) -> list[str]:
    """The revisions the database at ``url`` is at (empty: not migrated)."""
    with connection(url) as conn:
        return list(MigrationContext.configure(conn).get_current_heads())


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def history() -> list[Revision]:
    """Every migration of the package, newest first."""
    scripts = _scripts()
    heads = set(scripts.get_heads())
    out: list[Revision] = []
    for script in scripts.walk_revisions():
        down = script.down_revision
        if isinstance(down, tuple | list):  # a merge point; the package has none today
            down = ", ".join(down)
        out.append(Revision(script.revision, down, (script.doc or "").strip(),
                            script.revision in heads))
    return out


def render_sql(edition: Edition | str, revisions: str = "head") -> str:
    """The SQL that ``upgrade`` would run for ``edition``, as a psql script (offline:
    no server is asked). ``revisions`` is ``head`` or a range such as ``0001:0003``."""
    chosen = _edition(edition)
    assert chosen is not None
    try:
        return _render_sql(None, revisions, chosen)
    except CommandError as exc:
        raise MigrationError(one_line(exc)) from exc


def check(url: str) -> list[Drift]:
    """Differences between the models and the database at ``url`` (empty: none), see
    :func:`suho_mt5.check_drift`."""
    with connection(url) as conn:
        return check_drift(conn)


def server_info(url: str) -> ServerInfo:
    """What the server at ``url`` offers (see :func:`suho_mt5.db.inspect_server`)."""
    with connection(url) as conn:
        return inspect_server(conn)


#: ``suho-mt5 db info`` under its command name.
info = server_info


#: SQLSTATE of "could not refresh continuous aggregate ... due to a concurrent refresh".
_LOCK_NOT_AVAILABLE = "55P03"


def maintain(
    url: str,
    *,
    batch_size: int | None = None,
    role: str | None = None,
    attempts: int = 50,
    pause: float = 0.2,
) -> None:
    """``CALL mt5_maintain()``: refresh the aggregates and apply retention (docs/schema.md,
    "Maintenance"). It commits between steps, so it runs outside a transaction block;
    ``role`` (e.g. ``mt5_maintenance``) is set for the session first.

    On the timescale edition TimescaleDB's scheduler runs the same refresh jobs; one that
    finds a refresh of its window in progress fails with SQLSTATE 55P03 and is tried again
    after ``pause`` seconds, up to ``attempts`` times (the steps before it were committed and
    are cheap to run again)."""
    for attempt in range(1, attempts + 1):
        try:
            with connection(url, autocommit=True) as conn:
                if role is not None:
                    conn.exec_driver_sql("SET ROLE " + '"' + role.replace('"', '""') + '"')
                if batch_size is None:
                    conn.execute(text("CALL mt5_maintain()"))
                else:
                    conn.execute(text("CALL mt5_maintain(batch_size => :n)"), {"n": batch_size})
            return
        except DatabaseError as exc:
            orig = getattr(exc.__cause__, "orig", None)
            if getattr(orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE or attempt == attempts:
                raise
            time.sleep(pause)


def health(url: str) -> list[HealthRow]:
    """The rows of ``SELECT * FROM health_check()`` at ``url``."""
    with connection(url) as conn:
        rows = conn.execute(text("SELECT component, status, detail FROM health_check()"))
        return [HealthRow(str(r.component), str(r.status), str(r.detail or "")) for r in rows]
