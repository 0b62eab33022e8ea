"""The migrations' env.py (suho_mt5/migrations/env.py): where the database comes from."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from suho_mt5.db import make_engine
from suho_mt5.errors import ConfigError

ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def _version(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def test_an_engine_can_be_handed_over(pg_url: str) -> None:
    engine = make_engine(pg_url)
    config = Config(str(ALEMBIC_INI))
    config.attributes["connection"] = engine
    # TimescaleDB is installed on this machine but the plain server does not preload it.
    config.attributes["suho_edition"] = "postgresql"
    try:
        command.upgrade(config, "0001")
    finally:
        engine.dispose()
    assert _version(pg_url) == "0001"


def test_the_url_comes_from_the_environment(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUHO_DATABASE_URL", pg_url)
    config = Config(str(ALEMBIC_INI))
    config.attributes["suho_edition"] = "postgresql"
    command.upgrade(config, "0001")
    assert _version(pg_url) == "0001"


def test_offline_runs_must_name_the_edition() -> None:
    config = Config(str(ALEMBIC_INI))
    with pytest.raises(ConfigError, match="-x edition="):
        command.upgrade(config, "head", sql=True)


def test_the_command_line_reports_a_missing_url_in_one_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "SUHO_DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), "current"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode != 0  # alembic exits 255 on "FAILED:"
    assert "no database URL: set SUHO_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_timescaledb_installed_but_not_preloaded_is_one_line(pg_url: str, tmp_path: Path) -> None:
    """The plain test server has TimescaleDB's files (make setup installs them) but does not
    preload the library: the migration names both ways forward instead of a traceback."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "SUHO_DATABASE_URL": pg_url}
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), "upgrade", "head"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode != 0
    message = (
        "TimescaleDB is installed on this server but not preloaded: add timescaledb "
        "to shared_preload_libraries in postgresql.conf and restart the server, or build the "
        "plain PostgreSQL edition with -x edition=postgresql (suho-mt5 db upgrade --edition "
        "postgresql)"
    )
    # alembic's FAILED: line, which alembic.ini's logging prints as "ERROR [...] <message>"
    failed = [line for line in result.stderr.splitlines() if message in line]
    assert len(failed) == 1
    assert failed[0] in (f"FAILED: {message}", f"ERROR [alembic.util.messaging] {message}")
    assert "Traceback" not in result.stderr
