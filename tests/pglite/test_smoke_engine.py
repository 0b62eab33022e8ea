"""The TimescaleDB engine is real, and its limits cannot be tripped by accident."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import psycopg
import pytest
import sqlalchemy as sa

from suho_mt5.db import MAX_MESSAGE_BYTES, Edition, inspect_server, make_engine
from suho_mt5.errors import EngineLimitError
from tests.support.servers import ServerError, TimescaleEngine


def test_timescaledb_is_installed_with_the_timescale_license(
    timescale_engine: TimescaleEngine,
) -> None:
    engine = make_engine(timescale_engine.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS timescaledb"))
        with engine.connect() as conn:
            extensions = set(conn.execute(sa.text("SELECT extname FROM pg_extension")).scalars())
            license_ = conn.execute(sa.text("SHOW timescaledb.license")).scalar_one()
            info = inspect_server(conn)
    finally:
        engine.dispose()
    assert "timescaledb" in extensions
    assert license_ == "timescale"
    assert info.edition is Edition.TIMESCALE
    assert info.single_backend


def test_a_second_connection_is_refused_instead_of_deadlocking(
    timescale_engine: TimescaleEngine,
) -> None:
    engine = make_engine(timescale_engine.url)
    try:
        with engine.connect() as first:
            first.execute(sa.text("SELECT 1"))
            with pytest.raises(EngineLimitError, match="already open"), engine.connect():
                pass
        with engine.connect() as again:  # released on close: the next one is fine
            assert again.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_session_state_does_not_leak_to_the_next_client(
    timescale_engine: TimescaleEngine,
) -> None:
    engine = make_engine(timescale_engine.url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SET application_name = 'leaky'"))
            conn.exec_driver_sql("BEGIN")  # left open on purpose
        with engine.connect() as conn:
            name = conn.execute(sa.text("SHOW application_name")).scalar_one()
    finally:
        engine.dispose()
    assert name != "leaky"


def test_copy_and_oversized_statements_are_refused_before_sending(
    timescale_engine: TimescaleEngine,
) -> None:
    engine = make_engine(timescale_engine.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE IF NOT EXISTS guard_probe (v text)"))
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert isinstance(raw, psycopg.Connection)
            with pytest.raises(EngineLimitError, match="COPY"), raw.cursor() as cur:
                cur.copy("COPY guard_probe FROM STDIN")
            big = "x" * (MAX_MESSAGE_BYTES + 1)
            with pytest.raises(EngineLimitError, match="smaller batches"):
                conn.execute(sa.text("INSERT INTO guard_probe VALUES (:v)"), {"v": big})
            # Many rows in one call still work: they are sent in small pieces.
            rows = [{"v": "y" * 500} for _ in range(400)]
            conn.execute(sa.text("INSERT INTO guard_probe VALUES (:v)"), rows)
            count = conn.execute(sa.text("SELECT count(*) FROM guard_probe")).scalar_one()
            conn.rollback()
        # ... and the engine survived all of it.
        timescale_engine.check()
    finally:
        engine.dispose()
    assert count == 400


def test_a_dead_engine_is_reported_loudly(
    start_timescale_engine: Callable[[], TimescaleEngine],
) -> None:
    engine = start_timescale_engine()
    engine.check()
    os.kill(engine.pid, signal.SIGKILL)
    assert engine.proc is not None
    engine.proc.wait(10)
    with pytest.raises(ServerError, match=r"died .*exit code"):
        engine.check()


def test_every_new_client_gets_the_default_search_path(
    timescale_engine: TimescaleEngine,
) -> None:
    engine = make_engine(timescale_engine.url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SET search_path TO pg_catalog"))
        with engine.connect() as conn:
            path = conn.execute(sa.text("SHOW search_path")).scalar_one()
            schema = conn.execute(sa.text("SELECT current_schema()")).scalar_one()
    finally:
        engine.dispose()
    assert path == '"$user", public'
    assert schema == "public"
