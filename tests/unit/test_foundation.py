"""The package's foundation without any server: errors, URLs, editions."""

from __future__ import annotations

import pickle

import pytest

import suho_mt5
from suho_mt5.db import Edition, make_engine, normalize_url, parse_edition
from suho_mt5.db.edition import ServerInfo
from suho_mt5.errors import (
    ChecksumMismatchError,
    ConfigError,
    EngineLimitError,
    ProtocolError,
    SuhoError,
)


def test_every_public_error_derives_from_suho_error() -> None:
    import suho_mt5.errors as errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), SuhoError), name


def test_protocol_error_carries_offset_and_reason_and_pickles() -> None:
    exc = ChecksumMismatchError("CRC-32 mismatch", offset=288)
    assert (exc.reason, exc.offset) == ("CRC-32 mismatch", 288)
    assert "288" in str(exc)
    clone = pickle.loads(pickle.dumps(exc))
    assert isinstance(clone, ProtocolError) and clone.offset == 288


def test_public_api_is_explicit() -> None:
    for name in suho_mt5.__all__:
        assert hasattr(suho_mt5, name), name


@pytest.mark.parametrize(
    "url",
    ["postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg2://u@h/db"],
)
def test_normalize_url_pins_psycopg3(url: str) -> None:
    assert normalize_url(url).drivername == "postgresql+psycopg"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_normalize_url_rejects_other_databases(url: str) -> None:
    with pytest.raises(ConfigError):
        normalize_url(url)


def test_database_url_from_env_says_how_to_set_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from suho_mt5.db import database_url_from_env

    monkeypatch.delenv("SUHO_DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match="SUHO_DATABASE_URL"):
        database_url_from_env()
    monkeypatch.setenv("SUHO_DATABASE_URL", "postgresql://x@y/z")
    assert database_url_from_env() == "postgresql://x@y/z"


def test_single_backend_flag_is_taken_from_the_url_and_stripped() -> None:
    engine = make_engine("postgresql://u:p@127.0.0.1:1/db?single_backend=true")
    try:
        assert "single_backend" not in engine.url.query
        assert type(engine.pool).__name__ == "NullPool"
    finally:
        engine.dispose()


def test_parse_edition() -> None:
    assert parse_edition(" Apache ") is Edition.APACHE
    with pytest.raises(ConfigError, match="timescale, apache, postgresql"):
        parse_edition("enterprise")


@pytest.mark.parametrize(
    ("license_", "edition"),
    [(None, Edition.POSTGRESQL), ("apache", Edition.APACHE), ("timescale", Edition.TIMESCALE)],
)
def test_edition_follows_the_license(license_: str | None, edition: Edition) -> None:
    info = ServerInfo(150000, "2.23.0" if license_ else None, True, license_, True, False)
    assert info.edition is edition
    assert edition.has_continuous_aggregates == (edition is Edition.TIMESCALE)


def test_engine_limit_error_is_a_database_error() -> None:
    assert issubclass(EngineLimitError, suho_mt5.DatabaseError)


def test_an_engine_remembers_that_its_server_has_a_single_backend() -> None:
    from suho_mt5.db import is_single_backend, make_engine

    single = make_engine("postgresql+psycopg://u:p@127.0.0.1:1/d?single_backend=true")
    plain = make_engine("postgresql+psycopg://u:p@127.0.0.1:1/d")
    try:
        assert "single_backend" not in str(single.url)  # consumed, not sent to the server
        assert is_single_backend(single) is True
        assert is_single_backend(plain) is False
    finally:
        single.dispose()
        plain.dispose()
