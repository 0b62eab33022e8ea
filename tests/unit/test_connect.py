"""One way to connect from a command (``suho_mt5.commands._connect``): the URL checked
without an engine, one formatter for every one-line error."""

from __future__ import annotations

import pytest

from suho_mt5.commands import _connect
from suho_mt5.errors import ConfigError

pytestmark = pytest.mark.unit


def test_a_url_is_checked_without_building_an_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("an engine was built to check a URL")

    monkeypatch.setattr(sqlalchemy, "create_engine", refuse)
    assert _connect.check_database_url("postgresql+psycopg://u:p@h:5/db?single_backend=true") \
        == "postgresql://u:p@h:5/db"
    with pytest.raises(ConfigError, match="not a database URL: 'not a url'"):
        _connect.check_database_url("not a url")
    with pytest.raises(ConfigError, match="needs PostgreSQL, got a 'mysql' URL"):
        _connect.check_database_url("mysql://u@h/db")


def test_a_missing_url_says_how_to_give_one() -> None:
    assert _connect.database_url(" postgresql://u@h/db ") == "postgresql://u@h/db"
    for missing in (None, "", "  "):
        with pytest.raises(ConfigError, match="no database URL: set SUHO_DATABASE_URL"):
            _connect.database_url(missing)


def test_every_one_line_error_is_formatted_in_one_place() -> None:
    from suho_mt5.cli import _common
    from suho_mt5.commands import db, replay, signal

    assert _common.one_line is _connect.one_line
    for module in (db, replay, signal):
        assert not hasattr(module, "_one_line"), module.__name__
    libpq = ('connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
             "\tIs the server running on that host and accepting TCP/IP connections?\n")
    assert _connect.one_line(RuntimeError(libpq)) == (
        'connection to server at "127.0.0.1", port 1 failed: Connection refused; '
        "Is the server running on that host and accepting TCP/IP connections?")
    wrapped = RuntimeError("boom\n(Background on this error at: https://sqlalche.me/e/20/e3q8)")
    assert _connect.one_line(wrapped) == "boom"
