"""Helpers of the compliance tests: migrate, log in as a role, write through a tenant."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from suho_mt5.db import Edition, make_engine, set_tenant
from tests.db.schema._support import alembic, transaction


@dataclass
class Db:
    """A migrated database: its superuser URL and engine, and the edition built."""

    url: str
    engine: Engine
    edition: Edition


@contextmanager
def migrate(url: str, edition: Edition) -> Iterator[Db]:
    engine = make_engine(url)
    try:
        alembic(engine, "upgrade", "head", edition=edition)
        yield Db(url, engine, edition)
    finally:
        engine.dispose()


@contextmanager
def tenant_tx(engine: Engine, tenant: str | None, *, user: str | None = None,
              commit: bool = True) -> Iterator[Connection]:
    """One transaction with the tenant (and optionally the application user) set
    transaction-locally; committed unless ``commit`` is false."""
    with transaction(engine, commit=commit) as conn:
        if tenant:
            set_tenant(conn, tenant)  # as the library does it (and whatever it adds)
        elif tenant is not None:  # "" on purpose: an empty tenant
            conn.execute(sa.text("SELECT set_config('app.current_tenant_id', :t, true)"),
                         {"t": tenant})
        if user is not None:
            conn.execute(sa.text("SELECT set_config('app.current_user_id', :u, true)"),
                         {"u": user})
        yield conn


def new_tenant(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def create_account(conn: Connection, *, user_id: str, login: int,
                   number: str = "12345", **extra: Any) -> uuid.UUID:
    account_id = uuid.uuid4()
    conn.execute(sa.text(
        "INSERT INTO mt5_user_accounts (account_id, user_id, broker_name, broker_server,"
        " mt5_login, mt5_account_number, account_type) VALUES (:a, :u, 'ICMarkets',"
        " 'ICMarkets-Demo', :login, :num, 'demo')"),
        {"a": account_id, "u": user_id, "login": login, "num": number, **extra})
    return account_id


def audit_rows(db: Db, tenant: str) -> list[Any]:
    with db.engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT * FROM mt5_audit_log WHERE tenant_id = :t ORDER BY chain_seq"),
            {"t": tenant}).all())


ZERO = Decimal(0)


def trading_day(conn: Connection, *, account_id: uuid.UUID, when: Any,
                symbol: str = "EURUSD", ticket: int = 5001, profit: str = "12.5",
                volume: str = "0.10", action: str = "BUY") -> uuid.UUID:
    """A signal, its execution and the closing trade (as the tenant in ``conn``):
    returns the signal id. ``when`` is the signal's time; the rest follows it."""
    from datetime import timedelta

    signal_id = uuid.uuid4()
    buy = action == "BUY"
    conn.execute(sa.text(
        "INSERT INTO mt5_trading_signals (time, signal_id, account_id, symbol, action,"
        " entry_price, stop_loss, take_profit, volume, confidence_score, model_version,"
        " strategy_name, polygon_bid, polygon_ask) VALUES (:t, :sid, :a, :sym, :act, 1.0950,"
        " :sl, :tp, :v, 0.85, 'v1', 'trend', 1.09490, 1.09510)"),
        {"t": when, "sid": signal_id, "a": account_id, "sym": symbol, "act": action,
         "sl": "1.0930" if buy else "1.0970", "tp": "1.0980" if buy else "1.0920",
         "v": volume})
    conn.execute(sa.text(
        "INSERT INTO mt5_signal_executions (time, signal_id, account_id, ticket,"
        " actual_entry_price, slippage, executed_volume, result_code, spread_at_execution,"
        " market_volatility, execution_latency_ms) VALUES (:t, :sid, :a, :ticket, :px,"
        " 0.00005, :v, 10009, 0.00012, 0.004, 35)"),
        {"t": when + timedelta(seconds=1), "sid": signal_id, "a": account_id,
         "ticket": ticket, "px": "1.09505" if buy else "1.09480", "v": volume})
    conn.execute(sa.text(
        "INSERT INTO mt5_trade_orders (time, account_id, ticket, position_id, symbol,"
        " order_type, deal_type, deal_entry, volume, price, profit, commission, swap, status,"
        " magic_number, signal_id, profit_pips) VALUES (:t, :a, :ticket, :ticket, :sym,"
        " :side, :side, 'out', :v, 1.0970, :p, -0.70, -0.10, 'closed', 42, :sid, 6.5)"),
        {"t": when + timedelta(hours=1), "a": account_id, "ticket": ticket, "sym": symbol,
         "side": "buy" if buy else "sell", "v": volume, "p": profit, "sid": signal_id})
    return signal_id
