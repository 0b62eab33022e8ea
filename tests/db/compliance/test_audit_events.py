"""Every auditable event (issue #14, build 1) writes exactly one audit row, by the
database itself, with who (role and application user), what, before/after and when (the
database's time) - written through real logins of the roles that cause them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from suho_mt5.compliance.gdpr import erase_user, record_consent, withdraw_consent
from tests.db.compliance._support import (
    Db,
    audit_rows,
    create_account,
    new_tenant,
    tenant_tx,
)
from tests.db.schema._support import login_name

pytestmark = pytest.mark.engines("postgresql", "timescale")


@contextmanager
def one_event(db: Db, tenant: str, event_type: str) -> Iterator[list[Any]]:
    """Asserts the block appends exactly one event, of ``event_type``; yields it."""
    before = len(audit_rows(db, tenant))
    found: list[Any] = []
    yield found
    new = audit_rows(db, tenant)[before:]
    assert [e.event_type for e in new] == [event_type]
    found.append(new[0])


@pytest.fixture(scope="module")
def app(login: Callable[[str], Engine]) -> Engine:
    return login("mt5_app")


def _db_now(conn: Connection) -> datetime:
    return conn.execute(sa.text("SELECT now()")).scalar_one()


def test_account_lifecycle(db: Db, app: Engine) -> None:
    tenant = new_tenant()
    with one_event(db, tenant, "account.created") as ev, \
            tenant_tx(app, tenant, user="u-1") as conn:
        account = create_account(conn, user_id="u-1", login=5550001, number="4400123")
        started = _db_now(conn)
    (created,) = ev
    assert created.time == started and created.account_id == account
    assert created.payload["table"] == "mt5_user_accounts" and created.payload["before"] is None
    assert created.payload["after"]["broker_name"] == "ICMarkets"
    assert created.app_user.startswith("psn_")

    with one_event(db, tenant, "account.changed") as ev, tenant_tx(app, tenant) as conn:
        conn.execute(sa.text("UPDATE mt5_user_accounts SET leverage = 500"))
    assert (ev[0].payload["before"]["leverage"], ev[0].payload["after"]["leverage"]) == (None, 500)

    with one_event(db, tenant, "account.api_key_rotated") as ev, tenant_tx(app, tenant) as conn:
        conn.execute(sa.text(
            "UPDATE mt5_user_accounts SET api_key_hash ="
            " '$pbkdf2-sha256$1000$' || repeat('a', 32) || '$' || repeat('b', 64)"))
    assert ev[0].payload["after"]["api_key_set"] is True
    assert "api_key_hash" not in ev[0].payload["after"]

    with one_event(db, tenant, "account.deactivated"), tenant_tx(app, tenant) as conn:
        conn.execute(sa.text("UPDATE mt5_user_accounts SET is_active = false"))
    with one_event(db, tenant, "account.reactivated"), tenant_tx(app, tenant) as conn:
        conn.execute(sa.text("UPDATE mt5_user_accounts SET is_active = true"))
    with one_event(db, tenant, "account.deleted"), tenant_tx(app, tenant) as conn:
        conn.execute(sa.text("DELETE FROM mt5_user_accounts"))
    # An UPDATE that changes nothing is no event.
    with tenant_tx(app, tenant) as conn:
        account = create_account(conn, user_id="u-2", login=5550002)
    count = len(audit_rows(db, tenant))
    with tenant_tx(app, tenant) as conn:
        conn.execute(sa.text("UPDATE mt5_user_accounts SET leverage = leverage"))
    assert len(audit_rows(db, tenant)) == count


def test_trading_events(db: Db, app: Engine, login: Callable[[str], Engine]) -> None:
    tenant = new_tenant()
    when = datetime.now(UTC) - timedelta(hours=3)
    with tenant_tx(app, tenant) as conn:
        account = create_account(conn, user_id="trader", login=5550003)
    signal_id = uuid.uuid4()
    with one_event(db, tenant, "signal.generated") as ev, tenant_tx(app, tenant) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_trading_signals (time, signal_id, account_id, symbol, action,"
            " entry_price) VALUES (:t, :s, :a, 'EURUSD', 'BUY', 1.095)"),
            {"t": when, "s": signal_id, "a": account})
    assert ev[0].payload["after"]["signal_id"] == str(signal_id)
    ingest = login("mt5_ingest")  # the Data Bridge writes for every tenant, none set
    with one_event(db, tenant, "trade.executed"), tenant_tx(ingest, None) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_signal_executions (time, tenant_id, signal_id, account_id, ticket,"
            " actual_entry_price) VALUES (:t, :tenant, :s, :a, 77, 1.0951)"),
            {"t": when, "tenant": tenant, "s": signal_id, "a": account})
    with one_event(db, tenant, "trade.open") as ev, tenant_tx(ingest, None) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_trade_orders (time, tenant_id, account_id, ticket, position_id,"
            " symbol, order_type, volume, price, status) VALUES (:t, :tenant, :a, 77, 77,"
            " 'EURUSD', 'buy', 0.1, 1.0951, 'open')"), {"t": when, "tenant": tenant, "a": account})
    assert ev[0].actor == login_name("mt5_ingest") and ev[0].app_user is None
    with one_event(db, tenant, "trade.closed"), tenant_tx(ingest, None) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_trade_orders (time, tenant_id, account_id, ticket, position_id,"
            " symbol, order_type, volume, price, profit, status) VALUES (:t, :tenant, :a, 78,"
            " 77, 'EURUSD', 'sell', 0.1, 1.0970, 19, 'closed')"),
            {"t": when + timedelta(minutes=5), "tenant": tenant, "a": account})
    with one_event(db, tenant, "risk.breach") as ev, tenant_tx(app, tenant) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_risk_events (account_id, event_type, severity, threshold,"
            " observed_value) VALUES (:a, 'drawdown_limit', 'high', 0.1, 0.12)"),
            {"a": account})
    assert ev[0].payload["after"]["event_type"] == "drawdown_limit"
    with one_event(db, tenant, "risk.acknowledged"), tenant_tx(app, tenant) as conn:
        conn.execute(sa.text("UPDATE mt5_risk_events SET acknowledged_at = now(),"
                             " acknowledged_by = 'ops'"))


def test_configuration_changes(db: Db, app: Engine) -> None:
    tenant = new_tenant()
    with tenant_tx(app, tenant) as conn:
        account = create_account(conn, user_id="cfg", login=5550004)
    with one_event(db, tenant, "config.changed") as ev, tenant_tx(app, tenant) as conn:
        conn.execute(sa.text("INSERT INTO mt5_account_settings (account_id, name, value)"
                             " VALUES (:a, 'risk_pct', '1.50')"), {"a": account})
    assert (ev[0].payload["op"], ev[0].payload["after"]["value"]) == ("insert", "1.50")
    with one_event(db, tenant, "config.changed") as ev, tenant_tx(app, tenant) as conn:
        conn.execute(sa.text("UPDATE mt5_account_settings SET value = '2.00'"))
    assert (ev[0].payload["before"]["value"], ev[0].payload["after"]["value"]) == ("1.50", "2.00")
    with one_event(db, tenant, "config.changed") as ev, tenant_tx(app, tenant) as conn:
        conn.execute(sa.text("DELETE FROM mt5_account_settings"))
    assert ev[0].payload["after"] is None


def test_consents_and_erasure(db: Db, app: Engine, login: Callable[[str], Engine]) -> None:
    tenant = new_tenant()
    with tenant_tx(app, tenant) as conn:
        create_account(conn, user_id="subject-1", login=5550005)
    with one_event(db, tenant, "consent.granted") as ev, tenant_tx(app, None) as conn:
        record_consent(conn, tenant, "subject-1", "ml_training", granted=True,
                       source="web", policy_version="2026-01")
    after = ev[0].payload["after"]
    assert (after["policy_version"], after["source"], after["granted"]) == ("2026-01", "web", True)
    assert after["user_id"].startswith("psn_")
    with one_event(db, tenant, "consent.refused"), tenant_tx(app, None) as conn:
        record_consent(conn, tenant, "subject-1", "marketing", granted=False,
                       source="ea", policy_version="2026-01")
    with one_event(db, tenant, "consent.withdrawn") as ev, tenant_tx(app, None) as conn:
        assert withdraw_consent(conn, tenant, "subject-1", "ml_training") == 1
    assert ev[0].payload["before"]["revoked_at"] is None
    compliance = login("mt5_compliance")
    before = len(audit_rows(db, tenant))
    erasure = erase_user(compliance, tenant, "subject-1")
    kinds = [e.event_type for e in audit_rows(db, tenant)[before:]]
    # The erasure itself is one event; the accounts and consents it changed are audited
    # as what they are (the account is deactivated, the consents changed).
    assert kinds.count("gdpr.erased") == 1
    assert sorted(kinds) == sorted(["gdpr.erased", "account.deactivated",
                                    "consent.changed", "consent.changed"])
    (erased,) = [e for e in audit_rows(db, tenant) if e.event_type == "gdpr.erased"]
    assert erased.payload == {"subject": erasure.subject, "accounts": 1, "consents": 2}
