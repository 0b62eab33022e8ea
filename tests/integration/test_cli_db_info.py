"""`suho-mt5 db info` against a real server."""

from __future__ import annotations

from click.testing import CliRunner

from suho_mt5.cli import main
from suho_mt5.commands.db import server_info
from suho_mt5.db import Edition


def test_db_info_reports_the_edition(pg_url: str) -> None:
    assert server_info(pg_url).edition is Edition.POSTGRESQL
    result = CliRunner().invoke(main, ["db", "info", "--url", pg_url])
    assert result.exit_code == 0, result.output
    assert "edition             postgresql" in result.output
