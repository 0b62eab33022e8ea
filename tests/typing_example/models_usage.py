"""Typed code using the models, checked with ``mypy --strict`` by
``tests/unit/models/test_typing.py`` and run against real servers by the model tests.

Every ``assert_type`` below is a claim about what a backend developer's editor and type
checker see; mypy fails the test if one of them stops being true.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple, assert_type

from sqlalchemy import Row, func, select, update
from sqlalchemy.orm import Session, WriteOnlyCollection

from suho_mt5.db import AccountIdentity, TenantSession, authenticate, tenant_session
from suho_mt5.models import (
    AccountType,
    BalanceHistory,
    BalanceHourly,
    FeedbackStatus,
    OrderStatus,
    OrderType,
    SignalAction,
    SignalExecution,
    SignalStatus,
    TradeOrder,
    TradingSignal,
    UserAccount,
)

__all__ = [
    "ML_FEEDBACK_SQL",
    "FeedbackRow",
    "balance_last_24h",
    "closed_orders",
    "gateway_login",
    "mark_feedback_processed",
    "ml_feedback_rows",
    "open_account",
    "publish_signal",
    "record_balance",
]

#: The seed's ML feedback query, verbatim.
ML_FEEDBACK_SQL = """
SELECT
    s.confidence_score, s.polygon_ask,
    e.actual_entry_price, e.profit, e.profit_pips,
    e.market_volatility, e.spread_at_execution
FROM mt5_trading_signals s
JOIN mt5_signal_executions e ON s.signal_id = e.signal_id
WHERE e.trade_closed = true
  AND e.feedback_status = 'pending'
ORDER BY s.time DESC
"""


class FeedbackRow(NamedTuple):
    """One training example: what the model said, what the market did."""

    confidence_score: Decimal | None
    polygon_ask: Decimal | None
    actual_entry_price: Decimal | None
    profit: Decimal | None
    profit_pips: Decimal | None
    market_volatility: Decimal | None
    spread_at_execution: Decimal | None


def open_account(session: TenantSession, *, user_id: str, broker_server: str,
                 login: int) -> UserAccount:
    account = UserAccount(
        user_id=user_id,
        broker_name=broker_server.split("-")[0],
        broker_server=broker_server,
        mt5_login=login,
        mt5_account_number=str(login),
        account_type=AccountType.DEMO,
    )
    session.add(account)
    session.flush()
    assert_type(account.account_id, uuid.UUID)
    assert_type(account.tenant_id, str)
    assert_type(account.account_type, AccountType)
    assert_type(account.leverage, int | None)
    return account


def record_balance(account: UserAccount, *, at: datetime, balance: Decimal,
                   equity: Decimal, sequence: int) -> BalanceHistory:
    row = BalanceHistory(time=at, balance=balance, equity=equity, sequence=sequence)
    assert_type(account.balances, WriteOnlyCollection[BalanceHistory])
    account.balances.add(row)
    return row


def publish_signal(session: Session, account: UserAccount, *, at: datetime,
                   confidence: Decimal) -> TradingSignal:
    signal = TradingSignal(
        time=at, account=account, symbol="EURUSD", action=SignalAction.BUY,
        entry_price=Decimal("1.0953"), stop_loss=Decimal("1.0932"),
        take_profit=Decimal("1.0982"), confidence_score=confidence,
        polygon_ask=Decimal("1.09531"), model_version="v1", strategy_name="trend",
    )
    session.add(signal)
    assert_type(signal.signal_id, uuid.UUID)
    assert_type(signal.status, SignalStatus)
    assert_type(signal.executions, list[SignalExecution])
    return signal


def closed_orders(session: Session, account: UserAccount) -> Sequence[TradeOrder]:
    query = account.orders.select().where(TradeOrder.status == OrderStatus.CLOSED)
    orders = session.scalars(query.order_by(TradeOrder.time)).all()
    for order in orders:
        assert_type(order.status, OrderStatus)
        assert_type(order.order_type, OrderType)
        assert_type(order.profit, Decimal)
        assert_type(order.signal, TradingSignal | None)
        assert_type(order.account, UserAccount)
    return orders


def ml_feedback_rows(session: Session) -> list[FeedbackRow]:
    """The seed's ML feedback query, with the models (row-level security does the tenant
    filtering, as in the raw SQL; the relationship also matches tenant_id)."""
    query = (
        select(
            TradingSignal.confidence_score, TradingSignal.polygon_ask,
            SignalExecution.actual_entry_price, SignalExecution.profit,
            SignalExecution.profit_pips, SignalExecution.market_volatility,
            SignalExecution.spread_at_execution,
        )
        .join(TradingSignal.executions)
        .where(SignalExecution.trade_closed.is_(True),
               SignalExecution.feedback_status == FeedbackStatus.PENDING)
        .order_by(TradingSignal.time.desc())
    )
    rows = session.execute(query).all()
    assert_type(rows, Sequence[Row[Decimal | None, Decimal | None, Decimal | None,
                                   Decimal | None, Decimal | None, Decimal | None,
                                   Decimal | None]])
    return [FeedbackRow(*row) for row in rows]


def mark_feedback_processed(session: Session, signal_ids: Sequence[uuid.UUID]) -> int:
    """The seed's follow-up UPDATE, limited to results still pending (a trade not closed yet
    cannot be trained on, and the table's CHECK constraints say so)."""
    result = session.execute(
        update(SignalExecution)
        .where(SignalExecution.signal_id.in_(signal_ids),
               SignalExecution.feedback_status == FeedbackStatus.PENDING)
        .values(feedback_status=FeedbackStatus.INCLUDED_IN_TRAINING,
                feedback_processed_at=func.now())
    )
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count


def balance_last_24h(session: Session, account_id: uuid.UUID) -> Sequence[BalanceHourly]:
    hours = session.scalars(
        select(BalanceHourly)
        .where(BalanceHourly.account_id == account_id,
               BalanceHourly.bucket >= func.now() - timedelta(hours=24))
        .order_by(BalanceHourly.bucket)
    ).all()
    for hour in hours:
        assert_type(hour.balance_close, Decimal)
        assert_type(hour.margin_level_min, Decimal | None)
    return hours


def gateway_login(session: Session, account_id: uuid.UUID, api_key: str) -> TenantSession:
    """Authenticate an EA, then open a session scoped to its tenant."""
    identity = authenticate(session, account_id, api_key)
    assert_type(identity, AccountIdentity)
    return tenant_session(session.get_bind(), identity.tenant_id)
