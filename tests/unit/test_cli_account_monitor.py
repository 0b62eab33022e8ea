"""`suho-mt5 account ...` and `suho-mt5 monitor` without a server: every mistake a user can
make before reaching a database is one `error: ...` line (or click's usage error), exit != 0,
no traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from suho_mt5.cli import main
from suho_mt5.commands import account as accounts
from suho_mt5.errors import ConfigError
from tests.unit.test_cli import one_error_line, refused_url

ACCOUNT_ID = "3f6c0a3e-0b1d-4c1e-9f4e-2a7d5c9b8e10"
CREATE = ["account", "create", "--tenant", "t", "--user", "u", "--broker", "B",
          "--server", "S", "--login", "1"]
#: Every command that talks to a server, with the arguments it needs besides the URL.
SERVER_COMMANDS = [CREATE, ["account", "list", "t"], ["account", "rotate-key", ACCOUNT_ID],
                   ["account", "deactivate", ACCOUNT_ID], ["monitor"]]
IDS = ["create", "list", "rotate-key", "deactivate", "monitor"]


@pytest.fixture(autouse=True)
def _no_url_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUHO_DATABASE_URL", raising=False)


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("args", SERVER_COMMANDS, ids=IDS)
def test_a_missing_url_is_one_clear_error(args: list[str]) -> None:
    one_error_line(run(*args), "no database URL: set SUHO_DATABASE_URL")


@pytest.mark.parametrize("args", SERVER_COMMANDS, ids=IDS)
def test_a_wrong_url_is_one_clear_error(args: list[str]) -> None:
    one_error_line(run(*args, "--url", "mysql://u@h/db"), "needs PostgreSQL")


@pytest.mark.parametrize("args", SERVER_COMMANDS, ids=IDS)
def test_a_server_that_is_down_is_one_clear_error(args: list[str]) -> None:
    one_error_line(run(*args, "--url", refused_url()),
                   "cannot connect to the database: connection failed")


@pytest.mark.parametrize("args", SERVER_COMMANDS, ids=IDS)
def test_the_url_comes_from_the_environment(args: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUHO_DATABASE_URL", refused_url())
    one_error_line(run(*args), "cannot connect to the database")


def test_a_malformed_account_id_is_refused_before_connecting() -> None:
    one_error_line(run("account", "rotate-key", "nope", "--url", refused_url()),
                   "not an account id (a UUID): 'nope'")
    for args in (["list", "bad tenant"], ["deactivate", ACCOUNT_ID, "--tenant", "bad tenant"],
                 ["create", *CREATE[4:], "--tenant", "bad tenant"]):
        one_error_line(run("account", *args, "--url", refused_url()), "tenant")
    with pytest.raises(ConfigError, match="account type must be one of demo, real, contest"):
        accounts.create(refused_url(), tenant_id="t", user_id="u", broker_name="B",
                        broker_server="S", mt5_login=1, mt5_account_number="1",
                        account_type="live")


@pytest.mark.parametrize("extra", [["--type", "live"], ["--login", "0"], ["--leverage", "x"]])
def test_bad_options_are_usage_errors(extra: list[str]) -> None:
    result = run(*CREATE, *extra, "--url", refused_url())
    assert result.exit_code == 2 and "Error: Invalid value" in result.output, result.output
    assert "Traceback" not in result.output


def test_missing_required_options_are_usage_errors() -> None:
    result = run("account", "create", "--tenant", "t")
    assert result.exit_code == 2 and "Missing option '--user'" in result.output


def test_consumer_lag_says_why_it_is_not_available() -> None:
    from suho_mt5.commands.monitor import consumer_lag

    missing = consumer_lag(None)
    assert not missing.available and missing.note.startswith("not available: no NATS URL")
    down = consumer_lag("nats://127.0.0.1:" + refused_url().rsplit(":", 1)[1].split("/")[0])
    assert not down.available
    assert down.note.startswith("not available: cannot read JetStream at nats://127.0.0.1:")
