"""The compliance commands as an operator runs them: the installed ``suho-mt5`` script,
logged in as the role each command needs; failures are one ``error:`` line, exit 1."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.db.compliance._support import (
    Db,
    audit_rows,
    create_account,
    new_tenant,
    tenant_tx,
    trading_day,
)

pytestmark = pytest.mark.engines("postgresql", "timescale")


def suho(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("suho-mt5")
    return subprocess.run([str(script), *args, "--url", url], capture_output=True, text=True,
                          timeout=120, check=False)


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def tenant(db: Db) -> str:
    name = new_tenant("cli")
    with tenant_tx(db.engine, name) as conn:
        account = create_account(conn, user_id="cli-user", login=6060)
        for i in range(3):
            trading_day(conn, account_id=account, ticket=i + 1,
                        when=datetime(2026, 10, 5, tzinfo=UTC) + timedelta(days=i))
    return name


def test_reports_and_the_feedback_export(
    login: Callable[[str], Engine], tenant: str, tmp_path: Path
) -> None:
    compliance = _url(login("mt5_compliance"))
    report = suho(compliance, "report", "compliance", "--tenant", tenant, "--month", "2026-10",
                  "--json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["data"]["total_trades"] == 3

    out = tmp_path / "trades.csv"
    trades = suho(compliance, "report", "transactions", "--tenant", tenant, "--month",
                  "2026-10", "-o", str(out))
    assert trades.returncode == 0, trades.stderr
    assert len(list(csv.DictReader(out.read_text().splitlines()))) == 3
    assert "3 transaction(s) written" in trades.stderr

    app = _url(login("mt5_app"))
    first = suho(app, "feedback", "export", "--tenant", tenant, "-o", str(tmp_path / "f.csv"),
                 "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["rows"] == 3
    second = suho(app, "feedback", "export", "--tenant", tenant, "-o", "-")
    assert second.returncode == 0 and second.stdout.count("\n") == 1  # header only
    assert "0 row(s) exported" in second.stderr


def test_a_correction_from_the_command_line(
    db: Db, login: Callable[[str], Engine], tenant: str
) -> None:
    original = audit_rows(db, tenant)[0]
    done = suho(_url(login("mt5_compliance")), "audit", "correct", "--tenant", tenant,
                "--event", str(original.event_id), "--reason", "wrong broker",
                "--set", "broker_name=ICM", "--json")
    assert done.returncode == 0, done.stderr
    position = json.loads(done.stdout)["position"]
    correction = audit_rows(db, tenant)[position - 1]
    assert correction.event_type == "audit.correction"
    assert correction.payload["correction"] == {"broker_name": "ICM"}
    assert audit_rows(db, tenant)[0] == original


@pytest.mark.parametrize(("args", "message"), [
    (("report", "compliance", "--tenant", "x", "--month", "10/2026"), "month must look like"),
    (("feedback", "export", "--tenant", "", "-o", "-"), "empty tenant_id"),
    (("audit", "verify", "--since", "/nonexistent/digest.json"), "cannot read digest"),
    (("audit", "correct", "--tenant", "x", "--event", "nope", "--reason", "r"),
     "not an event id"),
])
def test_failures_are_one_line(db: Db, args: tuple[str, ...], message: str) -> None:
    result = suho(db.url, *args)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert message in result.stderr


def test_a_role_without_the_privilege_gets_one_line(
    login: Callable[[str], Engine], tenant: str
) -> None:
    result = suho(_url(login("mt5_app")), "audit", "verify")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "permission denied" in result.stderr
