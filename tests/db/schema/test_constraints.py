"""Types a trading system can trust: enumerations and ranges are checked by the database.
Shared by both lanes."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa

from tests.db.schema._support import Schema, session

ACCOUNT = uuid.UUID("00000000-0000-4000-8000-0000000000c1")
SIGNAL = uuid.UUID("00000000-0000-4000-8000-0000000000c2")
TENANT = "constraint_tenant"

# (what, statement, constraint that refuses it)
BAD = [
    ("account type", "INSERT INTO mt5_user_accounts (tenant_id, user_id, broker_name,"
     " broker_server, mt5_login, mt5_account_number, account_type) VALUES (:t, 'u', 'b', 's',"
     " 2, '1', 'gold')", "account_type_check"),
    ("login", "INSERT INTO mt5_user_accounts (tenant_id, user_id, broker_name, broker_server,"
     " mt5_login, mt5_account_number, account_type) VALUES (:t, 'u', 'b', 's', 0, '1', 'demo')",
     "mt5_login_check"),
    ("tenant id", "INSERT INTO mt5_user_accounts (tenant_id, user_id, broker_name,"
     " broker_server, mt5_login, mt5_account_number, account_type) VALUES ('bad tenant!', 'u',"
     " 'b', 's', 3, '1', 'demo')", "tenant_id_check"),
    ("currency", "UPDATE mt5_user_accounts SET currency = 'usd' WHERE account_id = :a",
     "currency_check"),
    ("bid", "INSERT INTO mt5_broker_quotes (tenant_id, account_id, symbol, bid, ask)"
     " VALUES (:t, :a, 'EURUSD', 0, 1)", "price_check"),
    ("symbol", "INSERT INTO mt5_broker_quotes (tenant_id, account_id, symbol, bid, ask)"
     " VALUES (:t, :a, 'EUR USD', 1, 1)", "symbol_check"),
    ("heartbeat status", "INSERT INTO mt5_ea_heartbeat (tenant_id, account_id, status)"
     " VALUES (:t, :a, 'sleeping')", "status_check"),
    ("ping", "INSERT INTO mt5_ea_heartbeat (tenant_id, account_id, status, ping_ms)"
     " VALUES (:t, :a, 'online', -1)", "ping_ms_check"),
    ("margin level", "INSERT INTO mt5_account_balance_history (tenant_id, account_id, balance,"
     " equity, margin_level) VALUES (:t, :a, 1, 1, -5)", "margin_level_check"),
    ("order type", "INSERT INTO mt5_trade_orders (tenant_id, account_id, ticket, symbol,"
     " order_type, volume, price, status) VALUES (:t, :a, 1, 'EURUSD', 'market', 1, 1, 'open')",
     "order_type_check"),
    ("order status", "INSERT INTO mt5_trade_orders (tenant_id, account_id, ticket, symbol,"
     " order_type, volume, price, status) VALUES (:t, :a, 1, 'EURUSD', 'buy', 1, 1, 'gone')",
     "status_check"),
    ("deal type", "INSERT INTO mt5_trade_orders (tenant_id, account_id, ticket, symbol,"
     " order_type, deal_type, volume, price, status) VALUES (:t, :a, 1, 'EURUSD', 'buy', 'gift',"
     " 1, 1, 'open')", "deal_type_check"),
    ("volume", "INSERT INTO mt5_trade_orders (tenant_id, account_id, ticket, symbol, order_type,"
     " volume, price, status) VALUES (:t, :a, 1, 'EURUSD', 'buy', -1, 1, 'open')",
     "volume_check"),
    ("action", "INSERT INTO mt5_trading_signals (tenant_id, account_id, symbol, action)"
     " VALUES (:t, :a, 'EURUSD', 'HOLD')", "action_check"),
    ("confidence", "INSERT INTO mt5_trading_signals (tenant_id, account_id, symbol, action,"
     " confidence_score) VALUES (:t, :a, 'EURUSD', 'BUY', 1.5)", None),
    ("stop above a buy", "INSERT INTO mt5_trading_signals (tenant_id, account_id, symbol, action,"
     " entry_price, stop_loss) VALUES (:t, :a, 'EURUSD', 'BUY', 1.09, 1.10)", "direction_check"),
    ("target above a sell", "INSERT INTO mt5_trading_signals (tenant_id, account_id, symbol,"
     " action, entry_price, take_profit) VALUES (:t, :a, 'EURUSD', 'SELL', 1.09, 1.10)",
     "direction_check"),
    ("expiry", "INSERT INTO mt5_trading_signals (tenant_id, account_id, symbol, action, time,"
     " expires_at) VALUES (:t, :a, 'EURUSD', 'BUY', now(), now() - interval '1 s')",
     "expires_at_check"),
    ("feedback status", "INSERT INTO mt5_signal_executions (tenant_id, account_id, signal_id,"
     " trade_closed, closed_at, feedback_status) VALUES (:t, :a, :s, true, now(), 'done')",
     "feedback_status_check"),
    ("severity", "INSERT INTO mt5_risk_events (tenant_id, account_id, event_type, severity)"
     " VALUES (:t, :a, 'x', 'meh')", "severity_check"),
    ("consent", "INSERT INTO mt5_user_consents (tenant_id, user_id, consent_type, granted,"
     " granted_at, revoked_at) VALUES (:t, 'u', 'marketing', true, now(),"
     " now() - interval '1 day')", "revoked_at_check"),
    ("report period", "INSERT INTO mt5_compliance_reports (tenant_id, report_type,"
     " report_period_start, report_period_end, report_data) VALUES (:t, 'risk_summary', now(),"
     " now() - interval '1 day', '{}')", "period_check"),
    ("event type", "INSERT INTO mt5_audit_log (tenant_id, event_type, actor)"
     " VALUES (:t, 'Not An Event', 'x')", "event_type_check"),
]


@pytest.fixture(scope="module")
def account(schema: Schema) -> uuid.UUID:
    with session(schema.engine, "mt5_app", TENANT, commit=True) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_user_accounts (account_id, user_id, broker_name, broker_server,"
            " mt5_login, mt5_account_number, account_type) VALUES (:a, 'u', 'b', 's', 1, '1',"
            " 'demo')"), {"a": ACCOUNT})
        conn.execute(sa.text(
            "INSERT INTO mt5_trading_signals (signal_id, account_id, symbol, action)"
            " VALUES (:s, :a, 'EURUSD', 'BUY')"), {"s": SIGNAL, "a": ACCOUNT})
    return ACCOUNT


@pytest.mark.parametrize("what,statement,constraint", BAD, ids=[b[0] for b in BAD])
def test_bad_values_are_refused(
    schema: Schema, account: uuid.UUID, what: str, statement: str, constraint: str | None
) -> None:
    with session(schema.engine) as conn, pytest.raises(sa.exc.IntegrityError) as err:
        conn.execute(sa.text(statement), {"t": TENANT, "a": account, "s": SIGNAL})
    assert getattr(err.value.orig, "sqlstate", None) == "23514", err.value
    if constraint:
        assert constraint in str(err.value)


def test_money_and_prices_are_exact(schema: Schema, account: uuid.UUID) -> None:
    with session(schema.engine) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_account_balance_history (tenant_id, account_id, balance, equity,"
            " margin_level) VALUES (:t, :a, 100000.1234, 0.0001, 12345678.1234)"),
            {"t": TENANT, "a": account})
        row = conn.execute(sa.text(
            "SELECT balance + equity, margin_level FROM mt5_account_balance_history"
            " WHERE tenant_id = :t"), {"t": TENANT}).one()
        types = dict(conn.execute(sa.text(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name LIKE 'mt5\\_%'"
            " AND (column_name IN ('time', 'bid', 'profit', 'balance', 'price')"
            "      OR column_name LIKE '%\\_at')")).all())
    assert tuple(row) == (Decimal("100000.1235"), Decimal("12345678.1234"))
    assert set(types.values()) <= {"numeric", "timestamp with time zone"}, types


def test_updated_at_follows_updates(schema: Schema, account: uuid.UUID) -> None:
    with session(schema.engine, "mt5_app", TENANT) as conn:
        conn.execute(sa.text("UPDATE mt5_user_accounts SET leverage = 500 WHERE account_id = :a"),
                     {"a": account})
        row = conn.execute(sa.text("SELECT updated_at > created_at, updated_at = now()"
                                   " FROM mt5_user_accounts WHERE account_id = :a"),
                           {"a": account}).one()
    assert tuple(row) == (True, True)
