"""Native TimescaleDB 2.28 (built by ``make setup``), started by the ``ts_server`` fixture:
it preloads the extension, runs the TSL features, and the migrations build the timescale
edition on it."""

from __future__ import annotations

import sqlalchemy as sa

from suho_mt5.db import Edition, detect_edition
from tests.db.schema._support import alembic, schema_engine


def test_native_timescaledb_preloads_the_extension_and_migrates(ts_url: str) -> None:
    engine = schema_engine(ts_url)
    try:
        alembic(engine, "upgrade", "head", edition=Edition.TIMESCALE)
        with engine.connect() as conn:
            assert conn.execute(sa.text(
                "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
            )).scalar_one() == "2.28.3"
            assert conn.execute(sa.text("SHOW timescaledb.license")).scalar_one() == "timescale"
            assert detect_edition(conn) is Edition.TIMESCALE
            assert conn.execute(sa.text(
                "SELECT count(*) FROM timescaledb_information.hypertables"
            )).scalar_one() == 8
    finally:
        engine.dispose()
