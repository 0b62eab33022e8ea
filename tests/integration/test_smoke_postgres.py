"""Native PostgreSQL is real: a server answers, and edition detection sees no TimescaleDB."""

from __future__ import annotations

import psycopg
import sqlalchemy as sa

from suho_mt5.db import Edition, inspect_server, make_engine
from tests.support.fixtures import PgServer


def test_server_reports_its_version(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            num = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
    finally:
        engine.dispose()
    assert num >= 150000, version


def test_edition_of_plain_postgresql(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            info = inspect_server(conn)
    finally:
        engine.dispose()
    assert info.edition is Edition.POSTGRESQL
    assert info.timescaledb_version is None
    assert info.pgcrypto_available
    assert not info.single_backend


def test_each_test_gets_its_own_empty_database(pg_url: str, pg_server: PgServer) -> None:
    dbname = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(
        host=pg_server.host, port=pg_server.port, user=pg_server.user,
        password=pg_server.password, dbname=dbname,
    ) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
    assert tables == (0,)


def test_server_does_not_run_as_root(pg_server: PgServer) -> None:
    with pg_server.admin_connect() as conn:
        row = conn.execute("SELECT current_setting('data_directory')").fetchone()
    assert row is not None and row[0]
    if pg_server.pid is not None:
        with open(f"/proc/{pg_server.pid}/status") as status:
            uid_line = next(line for line in status if line.startswith("Uid:"))
        assert uid_line.split()[1] != "0"
