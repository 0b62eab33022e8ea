"""The command-line rules that need a database (native PostgreSQL 15): an unknown tenant or
account is one ``error: ...`` line and exit 1 for every command that names one (nothing is
stored for it), the commands without another CliRunner test run once through CliRunner, and
the services refuse to start against a NATS server that is down."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from suho_mt5.cli import main
from suho_mt5.commands import account as accounts
from suho_mt5.commands import db as db_commands

TENANT = "tenant_rules"
UNKNOWN = "3f6c0a3e-0b1d-4c1e-9f4e-2a7d5c9b8e10"


@pytest.fixture(scope="module")
def url(make_pg_database: Callable[[], str]) -> str:
    made = make_pg_database()
    db_commands.upgrade(made, edition="postgresql")
    accounts.create(made, tenant_id=TENANT, user_id="user_1", broker_name="IC Markets",
                    broker_server="ICMarkets-Demo", mt5_login=4242, mt5_account_number="4242")
    return made


def run(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--url", url])


def one_error_line(result: Result, text: str) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], lines


def count(url: str, table: str) -> int:
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(("args", "message"), [
    (["account", "list", "nobody"], "unknown tenant 'nobody'"),
    (["account", "rotate-key", UNKNOWN], "unknown account"),
    (["account", "deactivate", UNKNOWN, "--tenant", TENANT], "unknown account"),
    (["report", "compliance", "--tenant", "nobody", "--month", "2026-10"],
     "unknown tenant 'nobody'"),
    (["report", "transactions", "--tenant", "nobody", "--month", "2026-10", "-o", "OUT"],
     "unknown tenant 'nobody'"),
    (["feedback", "export", "--tenant", "nobody", "-o", "OUT"], "unknown tenant 'nobody'"),
    (["gdpr", "erase", "--tenant", "nobody", "--user", "user_1"], "holds no data of user"),
    (["audit", "verify", "--tenant", "nobody"], "unknown tenant 'nobody'"),
    (["audit", "digest", "--tenant", "nobody"], "unknown tenant 'nobody'"),
    (["audit", "correct", "--tenant", TENANT, "--event", UNKNOWN, "--reason", "r"],
     "no audit event"),
], ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else "")
def test_an_unknown_tenant_or_account_is_one_line(url: str, tmp_path: Path, args: list[str],
                                                  message: str) -> None:
    out = tmp_path / "out.csv"
    reports = count(url, "mt5_compliance_reports")
    one_error_line(run(url, *[str(out) if a == "OUT" else a for a in args]), message)
    assert not out.exists()
    assert count(url, "mt5_compliance_reports") == reports


def test_an_export_to_a_path_that_cannot_be_written_is_one_line(url: str,
                                                                 tmp_path: Path) -> None:
    for args in (["report", "transactions", "--tenant", TENANT, "--month", "2026-10"],
                 ["feedback", "export", "--tenant", TENANT]):
        one_error_line(run(url, *args, "-o", str(tmp_path / "no" / "such.csv")),
                       "No such file or directory")
        one_error_line(run(url, *args, "-o", str(tmp_path)), "s a directory")


def test_the_compliance_commands_through_clirunner(url: str, tmp_path: Path) -> None:
    report = run(url, "report", "compliance", "--tenant", TENANT, "--month", "2026-10",
                 "--json")
    assert report.exit_code == 0, report.output
    assert json.loads(report.output)["data"]["total_trades"] == 0

    trades = run(url, "report", "transactions", "--tenant", TENANT, "--month", "2026-10",
                 "-o", str(tmp_path / "t.csv"), "--json")
    assert trades.exit_code == 0, trades.output
    assert json.loads(trades.output)["rows"] == 0 and (tmp_path / "t.csv").exists()

    feedback = run(url, "feedback", "export", "--tenant", TENANT, "-o",
                   str(tmp_path / "f.csv"), "--json")
    assert feedback.exit_code == 0, feedback.output
    assert json.loads(feedback.output)["rows"] == 0

    digest = run(url, "audit", "digest", "--tenant", TENANT)
    assert digest.exit_code == 0, digest.output
    heads = json.loads(digest.output)["heads"]
    assert [h["tenant_id"] for h in heads] == [TENANT]
    (tmp_path / "digest.json").write_text(digest.output)

    verify = run(url, "audit", "verify", "--tenant", TENANT, "--since",
                 str(tmp_path / "digest.json"), "--json")
    assert verify.exit_code == 0, verify.output
    assert json.loads(verify.output)["ok"] is True

    checkpoint = run(url, "audit", "checkpoint", "--json")
    assert checkpoint.exit_code == 0 and "checkpoints" in json.loads(checkpoint.output)

    erase = run(url, "gdpr", "erase", "--tenant", TENANT, "--user", "user_1", "--json")
    assert erase.exit_code == 0, erase.output
    assert json.loads(erase.output)["accounts"] == 1


def test_upgrade_and_downgrade_print_json(make_pg_database: Callable[[], str]) -> None:
    fresh = make_pg_database()
    up = run(fresh, "db", "upgrade", "0002", "--edition", "postgresql", "--json", "-q")
    assert up.exit_code == 0, up.output
    assert json.loads(up.output)["revisions"] == ["0002"]
    down = run(fresh, "db", "downgrade", "base", "--json", "-q")
    assert down.exit_code == 0, down.output
    assert json.loads(down.output) == {"revisions": [], "heads": json.loads(up.output)["heads"],
                                       "at_head": False}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_gateway_run_refuses_to_start_without_nats(url: str) -> None:
    nats_url = f"nats://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(main, ["gateway", "run", "--url", url, "--nats-url", nats_url,
                                       "--ws-port", "0", "--tcp-port", "-1"])
    one_error_line(result, f"cannot connect to NATS at {nats_url}")
    pair = CliRunner().invoke(main, ["gateway", "run", "--url", url, "--tls-cert", __file__])
    assert pair.exit_code == 2 and "--tls-cert and --tls-key go together" in pair.output
