"""What the connected server can do: plain PostgreSQL, TimescaleDB Apache, or full TimescaleDB.

Migrations build the best schema the server supports (docs/schema.md, "Editions"), so
they ask this module first. Offline (``--sql``) runs cannot ask a server and name the
edition with ``-x edition=...`` instead (:func:`parse_edition`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from suho_mt5.errors import ConfigError

__all__ = ["Edition", "ServerInfo", "detect_edition", "inspect_server", "parse_edition"]


class Edition(enum.StrEnum):
    """The three schema flavours the migrations know how to build."""

    #: TimescaleDB with the Timescale (TSL) license: continuous aggregates, policies, jobs.
    TIMESCALE = "timescale"
    #: TimescaleDB Apache-2 only: hypertables, but no continuous aggregates nor policies.
    APACHE = "apache"
    #: No TimescaleDB: regular tables, materialized views, ``suho-mt5 db maintain``.
    POSTGRESQL = "postgresql"

    @property
    def has_hypertables(self) -> bool:
        return self is not Edition.POSTGRESQL

    @property
    def has_continuous_aggregates(self) -> bool:
        """Continuous aggregates and background policies need the TSL license."""
        return self is Edition.TIMESCALE

    @property
    def has_columnstore(self) -> bool:
        """Columnstore (compression) and its policies need the TSL license too."""
        return self is Edition.TIMESCALE


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Facts about a live server, read once by :func:`inspect_server`."""

    server_version_num: int
    #: Installed TimescaleDB version in this database, or ``None``.
    timescaledb_version: str | None
    #: Whether this server offers the TimescaleDB extension (its files are installed).
    timescaledb_available: bool
    #: ``SHOW timescaledb.license`` when TimescaleDB is installed, else ``None``.
    timescaledb_license: str | None
    pgcrypto_available: bool
    #: PGlite (PostgreSQL compiled to WebAssembly) serves one backend to every client.
    single_backend: bool
    #: ``timescaledb`` is in ``shared_preload_libraries`` (or already loaded).
    timescaledb_preloaded: bool = False

    @property
    def timescaledb_loadable(self) -> bool:
        """Whether ``CREATE EXTENSION timescaledb`` can succeed here.

        Once its package is installed, every PostgreSQL server on a machine *offers*
        TimescaleDB, but one that does not preload the library refuses to create it
        ("must be preloaded"). PGlite loads it as a bundle and needs no preloading.
        """
        return self.timescaledb_available and (
            self.timescaledb_preloaded
            or self.single_backend
            or self.timescaledb_version is not None
        )

    @property
    def edition(self) -> Edition:
        """The edition the schema is (or will be) built for.

        TimescaleDB that is available but not yet installed counts as what the license
        setting says once it loads; the init migration installs it and asks again.
        """
        if self.timescaledb_license is None:
            return Edition.POSTGRESQL
        return Edition.TIMESCALE if self.timescaledb_license == "timescale" else Edition.APACHE


def inspect_server(conn: Connection) -> ServerInfo:
    """Read what the server behind ``conn`` offers. Runs only catalog queries."""
    row = conn.execute(
        text(
            """
            SELECT current_setting('server_version_num')::int AS version_num,
                   (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')
                       AS ts_version,
                   EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
                       AS ts_available,
                   EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgcrypto')
                       AS pgcrypto_available,
                   version() ILIKE '%emscripten%' AS single_backend,
                   'timescaledb' = ANY (string_to_array(
                       replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
                       OR current_setting('timescaledb.license', true) IS NOT NULL
                       AS ts_preloaded
            """
        )
    ).one()
    license_: str | None = None
    if row.ts_version is not None:
        # The GUC exists only once the TimescaleDB library is loaded; missing_ok=true keeps
        # a half-installed server from raising here, and an unknown license is treated as
        # the one without TSL features so nothing is attempted that the server may refuse.
        license_ = (
            conn.execute(text("SELECT current_setting('timescaledb.license', true)")).scalar()
            or "apache"
        )
    return ServerInfo(
        server_version_num=int(row.version_num),
        timescaledb_version=row.ts_version,
        timescaledb_available=bool(row.ts_available),
        timescaledb_license=license_,
        pgcrypto_available=bool(row.pgcrypto_available),
        single_backend=bool(row.single_backend),
        timescaledb_preloaded=bool(row.ts_preloaded),
    )


def detect_edition(conn: Connection) -> Edition:
    """Return the :class:`Edition` of the database behind ``conn``.

    Only an *installed* TimescaleDB counts; see :func:`inspect_server` for availability.
    """
    return inspect_server(conn).edition


def parse_edition(value: str) -> Edition:
    """Parse an edition name as given to ``-x edition=...``; raise :class:`ConfigError`.

    >>> parse_edition("timescale")
    <Edition.TIMESCALE: 'timescale'>
    """
    try:
        return Edition(value.strip().lower())
    except ValueError:
        names = ", ".join(e.value for e in Edition)
        raise ConfigError(f"unknown edition {value!r}: expected one of {names}") from None
