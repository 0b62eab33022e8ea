"""The command line without a server: help, version, and errors as one clear line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from suho_mt5 import __version__
from suho_mt5.cli import main


def test_version_and_help() -> None:
    runner = CliRunner()
    assert __version__ in runner.invoke(main, ["--version"]).output
    result = runner.invoke(main, ["db", "--help"])
    assert result.exit_code == 0 and "info" in result.output


def test_missing_url_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUHO_DATABASE_URL", raising=False)
    result = CliRunner().invoke(main, ["db", "info"])
    assert result.exit_code == 1
    assert "error: no database URL: set SUHO_DATABASE_URL" in result.output
    assert "Traceback" not in result.output
