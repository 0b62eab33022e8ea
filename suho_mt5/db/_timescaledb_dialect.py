"""sqlalchemy-timescaledb for psycopg 3.

sqlalchemy-timescaledb ships psycopg2 and asyncpg dialects only; this adds
``timescaledb+psycopg://`` so the models' ``timescaledb_hypertable`` table option works with
the driver suho-mt5 uses. The migrations, not ``create_all``, own the real DDL.
"""

from __future__ import annotations

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy_timescaledb.dialect import TimescaledbDialect

__all__ = ["TimescaledbPsycopgDialect", "register"]


class TimescaledbPsycopgDialect(TimescaledbDialect, PGDialect_psycopg):  # type: ignore[misc]
    driver = "psycopg"
    supports_statement_cache = True


def register() -> None:
    """Make ``timescaledb+psycopg://`` URLs resolve to :class:`TimescaledbPsycopgDialect`."""
    registry.register("timescaledb.psycopg", __name__, "TimescaledbPsycopgDialect")
