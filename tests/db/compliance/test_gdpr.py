"""GDPR (issue #14, build 4): after erasure no personal field holds the original value,
every financial total is unchanged, and the audit chain still verifies."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from suho_mt5.compliance import audit
from suho_mt5.compliance.gdpr import erase_user, record_consent
from suho_mt5.errors import ErasureError
from tests.db.compliance._support import (
    Db,
    create_account,
    new_tenant,
    tenant_tx,
    trading_day,
)

pytestmark = pytest.mark.engines("postgresql", "timescale")

SUBJECT = "jane.doe@example.com"
LOGINS = (7340012345, 7340012346)
NUMBER = "99887766554"
ORIGINALS = (SUBJECT, *map(str, LOGINS), NUMBER)

FINANCIAL_TOTALS = """
SELECT (SELECT row(count(*), sum(volume), sum(price), sum(profit), sum(commission), sum(swap))
        FROM mt5_trade_orders WHERE tenant_id = :t)::text,
       (SELECT row(count(*), sum(profit), sum(actual_entry_price), sum(close_price))
        FROM mt5_signal_executions WHERE tenant_id = :t)::text,
       (SELECT row(count(*), sum(balance), sum(equity)) FROM mt5_account_balance_history
        WHERE tenant_id = :t)::text,
       (SELECT string_agg(account_id::text, ',' ORDER BY account_id) FROM mt5_user_accounts
        WHERE tenant_id = :t)
"""


def _totals(db: Db, tenant: str) -> tuple[Any, ...]:
    with db.engine.connect() as conn:
        return tuple(conn.execute(sa.text(FINANCIAL_TOTALS), {"t": tenant}).one())


def _personal_text(db: Db, tenant: str) -> str:
    """Every row of every table that could hold the user's data, as text."""
    with db.engine.connect() as conn:
        parts = [conn.execute(sa.text(
            f"SELECT coalesce(string_agg(x::text, ' '), '') FROM {table} x WHERE tenant_id = :t"),
            {"t": tenant}).scalar_one()
            for table in ("mt5_user_accounts", "mt5_user_consents", "mt5_audit_log",
                          "mt5_compliance_reports", "mt5_account_settings", "mt5_risk_events",
                          "mt5_gdpr_subject_keys")]
    return "\n".join(parts)


@pytest.fixture
def subject_tenant(db: Db, login: Callable[[str], Engine]) -> str:
    tenant = new_tenant("gdpr")
    app = login("mt5_app")
    when = datetime.now(UTC) - timedelta(days=2)
    with tenant_tx(app, tenant, user=SUBJECT) as conn:
        accounts = [create_account(conn, user_id=SUBJECT, login=n, number=NUMBER) for n in LOGINS]
        for i, account in enumerate(accounts):
            trading_day(conn, account_id=account, when=when + timedelta(hours=i), ticket=100 + i)
            conn.execute(sa.text(
                "INSERT INTO mt5_account_balance_history (time, account_id, balance, equity)"
                " VALUES (:t, :a, 1000.5, 1001.25)"), {"t": when, "a": account})
            conn.execute(sa.text("INSERT INTO mt5_account_settings (account_id, name, value)"
                                 " VALUES (:a, 'risk_pct', '1.0')"), {"a": account})
        record_consent(conn, tenant, SUBJECT, "ml_training", granted=True, source="web",
                       policy_version="v3", account_id=accounts[0])
        record_consent(conn, tenant, SUBJECT, "privacy_policy", granted=True, source="web",
                       policy_version="v3")
        conn.execute(sa.text("UPDATE mt5_user_accounts SET leverage = 100"))
    with tenant_tx(app, tenant, user="someone-else") as conn:
        create_account(conn, user_id="someone-else", login=1111, number="1111")
    return tenant


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("suho-mt5")
    return subprocess.run([str(script), *args, "--url", url], capture_output=True, text=True,
                          timeout=120, check=False)


def test_erasure_removes_every_personal_value_and_keeps_money_and_the_chain(
    db: Db, login: Callable[[str], Engine], subject_tenant: str
) -> None:
    tenant = subject_tenant
    before = _totals(db, tenant)
    text = _personal_text(db, tenant)
    # The audit trail never held them in the first place (pseudonyms); the tables do.
    with db.engine.connect() as conn:
        trail = conn.execute(sa.text("SELECT string_agg(a::text, ' ') FROM mt5_audit_log a"
                                     " WHERE tenant_id = :t"), {"t": tenant}).scalar_one()
    assert not any(value in trail for value in ORIGINALS)
    assert all(value in text for value in ORIGINALS)

    compliance = login("mt5_compliance")
    url = compliance.url.render_as_string(hide_password=False)
    done = _cli(url, "gdpr", "erase", "--tenant", tenant, "--user", SUBJECT, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["accounts"], result["consents"]) == (2, 2)

    after_text = _personal_text(db, tenant)
    assert [value for value in ORIGINALS if value in after_text] == []
    assert "someone-else" in after_text  # other users are untouched
    assert _totals(db, tenant) == before
    (report,) = audit.verify(db.engine, tenant_id=tenant).chains
    assert report.ok and report.problem is None
    with db.engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT count(*) FROM mt5_gdpr_subject_keys WHERE tenant_id = :t AND user_id = :u"),
            {"t": tenant, "u": SUBJECT}).scalar_one() == 0
        accounts = conn.execute(sa.text(
            "SELECT user_id, is_active, api_key_hash FROM mt5_user_accounts"
            " WHERE tenant_id = :t AND user_id = :s"), {"t": tenant, "s": result["subject"]}).all()
    assert [(a.is_active, a.api_key_hash) for a in accounts] == [(False, None)] * 2

    again = _cli(url, "gdpr", "erase", "--tenant", tenant, "--user", SUBJECT)
    assert again.returncode == 1
    assert again.stderr.count("\n") == 1 and "holds no data" in again.stderr


def test_a_tenant_role_cannot_erase(
    login: Callable[[str], Engine], subject_tenant: str
) -> None:
    with pytest.raises(ErasureError, match="permission denied"):
        erase_user(login("mt5_app"), subject_tenant, SUBJECT)
