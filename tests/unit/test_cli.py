"""The command line without a server: help, version, offline output, and every error as one
clear line with a non-zero exit status and no traceback."""

from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner, Result

from suho_mt5 import __version__
from suho_mt5.cli import main
from suho_mt5.commands import db as commands
from suho_mt5.errors import ConfigError, DatabaseError, MigrationError

DB_COMMANDS = ["upgrade", "downgrade", "current", "history", "sql", "check", "maintain",
               "health", "info"]
#: The commands that talk to a server, with the arguments they need besides the URL.
SERVER_COMMANDS = [["upgrade"], ["downgrade", "base"], ["current"], ["check"], ["maintain"],
                   ["health"], ["info"]]


@pytest.fixture(autouse=True)
def _no_url_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUHO_DATABASE_URL", raising=False)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def one_error_line(result: Result, text: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], lines
    assert "Traceback" not in result.output


def refused_url() -> str:
    """A URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/suho"


def test_version_and_help() -> None:
    assert __version__ in run("--version").output
    result = run("db", "--help")
    assert result.exit_code == 0
    for name in DB_COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("name", DB_COMMANDS)
def test_every_db_command_has_help(name: str) -> None:
    result = run("db", name, "--help")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: main db {name}")
    if [name] in SERVER_COMMANDS or name == "downgrade":
        assert "SUHO_DATABASE_URL" in result.output


@pytest.mark.parametrize("args", SERVER_COMMANDS)
def test_a_missing_url_is_one_clear_error(args: list[str]) -> None:
    one_error_line(run("db", *args), "no database URL: set SUHO_DATABASE_URL")


@pytest.mark.parametrize("args", SERVER_COMMANDS)
def test_a_url_that_is_not_postgresql_is_one_clear_error(args: list[str]) -> None:
    one_error_line(run("db", *args, "--url", "mysql://u@h/db"), "needs PostgreSQL")


@pytest.mark.parametrize("args", SERVER_COMMANDS)
def test_a_server_that_is_down_is_one_clear_error(args: list[str]) -> None:
    one_error_line(run("db", *args, "--url", refused_url()),
                   "cannot connect to the database: connection failed")


def test_the_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUHO_DATABASE_URL", "mysql://u@h/db")
    one_error_line(run("db", "current"), "needs PostgreSQL")


def test_the_commands_raise_suho_errors() -> None:
    with pytest.raises(ConfigError):
        commands.upgrade("mysql://u@h/db")
    with pytest.raises(DatabaseError, match="cannot connect"):
        commands.current(refused_url())
    with pytest.raises(MigrationError, match="Can't locate revision"):
        commands.render_sql("postgresql", "nope")
    with pytest.raises(ConfigError, match="unknown edition"):
        commands.render_sql("enterprise")


def test_an_unknown_edition_is_a_usage_error() -> None:
    result = run("db", "upgrade", "--edition", "enterprise")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "'enterprise' is not one of 'timescale', 'apache', 'postgresql'" in result.output


def test_sql_needs_an_edition_and_knows_the_revisions() -> None:
    assert run("db", "sql").exit_code == 2
    one_error_line(run("db", "sql", "--edition", "postgresql", "nope"), "Can't locate revision")


def test_sql_prints_the_offline_migration() -> None:
    result = run("db", "sql", "--edition", "postgresql", "0001")
    assert result.exit_code == 0, result.output
    assert "CREATE TABLE alembic_version" in result.output
    assert "CREATE FUNCTION health_check()" in result.output
    assert "CREATE EXTENSION IF NOT EXISTS timescaledb" not in result.output


def test_history_lists_the_shipped_migrations() -> None:
    revisions = commands.history()
    assert revisions[-1].revision == "0001" and revisions[-1].down_revision is None
    assert [r.revision for r in revisions if r.is_head] == [revisions[0].revision]
    text = run("db", "history").output
    assert "<base> -> 0001, init:" in text and f"{revisions[0].revision} (head)" in text
    as_json = json.loads(run("db", "history", "--json").output)
    assert as_json[-1] == {"revision": "0001", "down_revision": None,
                           "doc": revisions[-1].doc, "is_head": False}
