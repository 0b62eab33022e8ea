"""`suho-mt5 db ...` against a real server: migrate, inspect, check, maintain, and the errors
a DBA meets (a migration the server refuses, an edition that contradicts the database)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from suho_mt5.cli import main
from suho_mt5.commands import db as commands
from suho_mt5.db import Edition, make_engine
from suho_mt5.errors import MigrationError

#: The edition the plain PostgreSQL server builds (TimescaleDB is installed on the machine
#: but not preloaded by the test server, so it must not be auto-detected).
EDITION = Edition.POSTGRESQL


@pytest.fixture
def url(pg_url: str) -> str:
    """A fresh empty database (switch to another server's fixture here)."""
    return pg_url


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def one_error_line(result: Result) -> str:
    """The error, on one line after alembic's progress lines ("Running upgrade ...")."""
    assert result.exit_code == 1, result.output
    *progress, last = result.output.strip().splitlines()
    assert last.startswith("error: "), result.output
    assert all(line.startswith("Running ") for line in progress), progress
    assert "Traceback" not in result.output
    return last


def execute(url: str, sql: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


def test_upgrade_check_maintain_health_and_downgrade(url: str) -> None:
    head = next(r.revision for r in commands.history() if r.is_head)
    result = run("db", "upgrade", "--url", url, "--edition", EDITION.value)
    assert result.exit_code == 0, result.output
    assert "Running upgrade  -> 0001" in result.output  # alembic's progress, on stderr
    assert result.output.strip().endswith(f"at {head} (head)")
    assert json.loads(run("db", "current", "--url", url, "--json").output) == {
        "revisions": [head], "heads": [head], "at_head": True}
    assert run("db", "info", "--url", url, "--json").exit_code == 0

    result = run("db", "check", "--url", url)
    assert result.exit_code == 0 and "no drift" in result.output, result.output
    result = run("db", "maintain", "--url", url, "--role", "mt5_maintenance")
    assert result.exit_code == 0, result.output
    health = json.loads(run("db", "health", "--url", url, "--json").output)
    assert {row["component"]: row["status"] for row in health}["row_level_security"] == "ok"
    assert run("db", "health", "--url", url).exit_code == 0

    execute(url, "ALTER TABLE mt5_trade_orders DROP COLUMN comment")
    result = run("db", "check", "--url", url, "--json")
    assert result.exit_code == 1
    assert [d["kind"] for d in json.loads(result.output)] == ["add_column"]

    result = run("db", "downgrade", "--url", url, "-q", "base")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "at base (not migrated)"
    assert commands.current(url) == []


def test_a_migration_the_server_refuses_is_one_line(url: str) -> None:
    # The timescale edition needs TimescaleDB loaded, which this server does not do.
    message = one_error_line(run("db", "upgrade", "--url", url, "--edition", "timescale"))
    assert "timescale" in message.lower()
    assert commands.current(url) == []  # rolled back


def test_an_edition_that_contradicts_the_database_is_refused(url: str) -> None:
    assert commands.upgrade(url, "0001", edition=EDITION) == ["0001"]
    with pytest.raises(MigrationError, match="built for the 'postgresql' edition"):
        commands.upgrade(url, edition="apache")
    message = one_error_line(run("db", "downgrade", "--url", url, "nope"))
    assert "Can't locate revision" in message
    assert commands.downgrade(url, "base") == []
