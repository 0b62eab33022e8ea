"""`suho-mt5 account ...` against a real server: the key is shown once and only its hash is
stored, it authenticates until rotated or deactivated, and every mistake is one line."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from suho_mt5.cli import main
from suho_mt5.commands import account as accounts
from suho_mt5.commands import db as db_commands
from suho_mt5.db import authenticate, make_engine
from suho_mt5.errors import AuthenticationError, DatabaseError, TenantError


@pytest.fixture
def url(pg_url: str) -> str:
    """A migrated database (switch to another server's fixture here)."""
    db_commands.upgrade(pg_url, edition="postgresql")
    return pg_url


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def one_error_line(result: Result, text: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], lines
    assert "Traceback" not in result.output


def create(url: str, tenant: str = "tenant_a", login: int = 5012345, *extra: str) -> Result:
    return run("account", "create", "--url", url, "--tenant", tenant, "--user", "user_001",
               "--broker", "IC Markets", "--server", "ICMarkets-Demo", "--login", str(login),
               *extra)


def stored_row(url: str, account_id: str) -> dict[str, object]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(
                sa.text("SELECT * FROM public.mt5_user_accounts WHERE account_id = :id"),
                {"id": account_id}).one()._mapping)
    finally:
        engine.dispose()


def verifies(url: str, account_id: str, key: str) -> bool:
    engine = make_engine(url)
    try:
        authenticate(engine, account_id, key)
        return True
    except AuthenticationError:
        return False
    finally:
        engine.dispose()


def test_create_shows_the_key_once_and_stores_only_its_hash(url: str) -> None:
    result = create(url, "tenant_a", 5012345, "--type", "real", "--leverage", "100")
    assert result.exit_code == 0, result.output
    assert result.output.count("api_key:") == 1
    fields = dict(line.split(":", 1) for line in result.output.splitlines() if ": " in line
                  and not line.startswith("created"))
    account_id, key = fields["account_id"].strip(), fields["api_key"].strip()
    assert len(key) == 64 and int(key, 16) >= 0  # generate_api_key(): 256 bits, hex
    assert "only time the API key is shown" in result.output

    row = stored_row(url, account_id)
    assert key not in {str(v) for v in row.values()}  # the key itself is stored nowhere
    assert str(row["api_key_hash"]).startswith(("$2", "$pbkdf2-sha256$"))
    assert (row["tenant_id"], row["account_type"], row["leverage"], row["mt5_account_number"]) \
        == ("tenant_a", "real", 100, "5012345")
    assert verifies(url, account_id, key)

    listed = run("account", "list", "--url", url, "tenant_a", "--json")
    assert listed.exit_code == 0, listed.output
    [entry] = json.loads(listed.output)
    assert entry["account_id"] == account_id and entry["has_api_key"] is True
    assert "api_key_hash" not in entry and "api_key" not in entry
    assert str(row["api_key_hash"]) not in listed.output and key not in listed.output
    table = run("account", "list", "--url", url, "tenant_a")
    assert table.exit_code == 0 and account_id in table.output and key not in table.output


def test_rotate_replaces_the_key_and_deactivate_stops_authentication(url: str) -> None:
    first = accounts.create(url, tenant_id="tenant_a", user_id="u1", broker_name="B",
                            broker_server="S", mt5_login=1, mt5_account_number="1")
    other = accounts.create(url, tenant_id="tenant_b", user_id="u2", broker_name="B",
                            broker_server="S", mt5_login=1, mt5_account_number="1")
    account_id = str(first.account.account_id)
    assert repr(first).count(first.api_key) == 0  # a logged result does not leak the key

    result = run("account", "rotate-key", "--url", url, account_id, "--json")
    assert result.exit_code == 0, result.output
    rotated = json.loads(result.output)
    assert rotated["account_id"] == account_id and rotated["api_key"] != first.api_key
    assert not verifies(url, account_id, first.api_key)
    assert verifies(url, account_id, rotated["api_key"])
    assert verifies(url, str(other.account.account_id), other.api_key)  # untouched

    # --tenant refuses an account of another tenant, and changes nothing.
    one_error_line(run("account", "deactivate", "--url", url, account_id, "--tenant", "tenant_b"),
                   f"unknown account of tenant 'tenant_b': {account_id}")
    assert verifies(url, account_id, rotated["api_key"])

    result = run("account", "deactivate", "--url", url, account_id, "--tenant", "tenant_a")
    assert result.exit_code == 0 and f"deactivated {account_id}" in result.output, result.output
    assert not verifies(url, account_id, rotated["api_key"])
    assert stored_row(url, account_id)["is_active"] is False
    assert [a.account_id for a in accounts.list_accounts(url, "tenant_a", active_only=True)] == []
    assert len(accounts.list_accounts(url, "tenant_a")) == 1


def test_unknown_tenants_and_accounts_and_refused_rows_are_one_line(url: str) -> None:
    missing = str(uuid.uuid4())
    one_error_line(run("account", "list", "--url", url, "tenant_nobody"),
                   "unknown tenant 'tenant_nobody': it has no accounts")
    one_error_line(run("account", "rotate-key", "--url", url, missing),
                   f"unknown account: {missing}")
    one_error_line(run("account", "deactivate", "--url", url, missing),
                   f"unknown account: {missing}")
    one_error_line(run("account", "deactivate", "--url", url, "not-a-uuid"),
                   "not an account id (a UUID): 'not-a-uuid'")
    one_error_line(create(url, "bad tenant!"), "tenant")
    assert create(url).exit_code == 0
    # The same MT5 login on the same server twice in one tenant: the database refuses it.
    one_error_line(create(url), "cannot create the account: duplicate key value")
    with pytest.raises(TenantError):
        accounts.list_accounts(url, "tenant_nobody")
    with pytest.raises(DatabaseError, match="unknown account"):
        accounts.rotate_key(url, missing)


def test_an_unmigrated_database_is_one_line(pg_url: str) -> None:
    one_error_line(create(pg_url), "cannot create the account: function generate_api_key()")


def test_simulator_accounts_share_one_key_that_authenticates(url: str) -> None:
    """``suho-mt5 simulate --accounts N``'s accounts (``provision_accounts``)."""
    made = accounts.provision_accounts(url, 3, tenant_id="tenant_sim")
    assert len({a.account_id for a in made}) == 3 and len({a.api_key for a in made}) == 1
    for account in made:
        row = stored_row(url, str(account.account_id))
        assert row["tenant_id"] == "tenant_sim" and row["api_key_hash"] != account.api_key
        assert verifies(url, str(account.account_id), account.api_key)
    assert not verifies(url, str(made[0].account_id), "not the key")
    with pytest.raises(TenantError):
        accounts.provision_accounts(url, 1, tenant_id="bad tenant!")
    with pytest.raises(DatabaseError, match="cannot connect to the database"):
        accounts.provision_accounts("postgresql://postgres@127.0.0.1:1/x", 1)
