"""The signal -> execution -> result feedback loop, kept by triggers. Shared by both lanes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tests.db.schema._support import Schema, session

TENANT = "feedback_tenant"


@dataclass
class Loop:
    conn: Connection
    account: uuid.UUID

    def signal(self) -> uuid.UUID:
        signal = uuid.uuid4()
        self.conn.execute(sa.text(
            "INSERT INTO mt5_trading_signals (signal_id, account_id, symbol, action, entry_price,"
            " stop_loss, take_profit, confidence_score) VALUES (:s, :a, 'EURUSD', 'BUY', 1.0953,"
            " 1.0932, 1.0982, 0.8)"), {"s": signal, "a": self.account})
        return signal

    def execution(self, signal: uuid.UUID, ticket: int, retcode: int = 10009) -> None:
        self.conn.execute(sa.text(
            "INSERT INTO mt5_signal_executions (signal_id, account_id, ticket, actual_entry_price,"
            " result_code) VALUES (:s, :a, :k, 1.0954, :r)"),
            {"s": signal, "a": self.account, "k": ticket, "r": retcode})

    def order(self, ticket: int, status: str, *, position: int | None = None,
              signal: uuid.UUID | None = None, sequence: int | None = None) -> int:
        return self.conn.execute(sa.text(
            "INSERT INTO mt5_trade_orders (tenant_id, account_id, ticket, position_id, symbol,"
            " order_type, deal_type, volume, price, profit, profit_pips, status, signal_id,"
            " sequence, time) VALUES (:tenant, :a, :k, :p, 'EURUSD', 'sell', 'sell', 0.1, 1.0971,"
            " 17.5, 17.0, :st, :s, :seq, '2026-06-01T12:00:00Z') ON CONFLICT DO NOTHING"),
            {"tenant": TENANT, "a": self.account, "k": ticket, "p": position, "st": status,
             "s": signal, "seq": sequence}).rowcount

    def signal_state(self, signal: uuid.UUID) -> tuple[str, bool]:
        row = self.conn.execute(sa.text(
            "SELECT status, executed_at IS NOT NULL FROM mt5_trading_signals"
            " WHERE signal_id = :s"), {"s": signal}).one()
        return (row[0], row[1])

    def result(self, signal: uuid.UUID) -> tuple[object, ...]:
        return tuple(self.conn.execute(sa.text(
            "SELECT trade_closed, close_price, profit, profit_pips, feedback_status,"
            " closed_at IS NOT NULL FROM mt5_signal_executions WHERE signal_id = :s"),
            {"s": signal}).one())


CLOSED = (True, Decimal("1.09710000"), Decimal("17.5000"), Decimal("17.00000000"), "pending",
          True)


@pytest.fixture
def loop(schema: Schema) -> Iterator[Loop]:
    with session(schema.engine, "mt5_app", TENANT) as conn:
        account = uuid.uuid4()
        conn.execute(sa.text(
            "INSERT INTO mt5_user_accounts (account_id, user_id, broker_name, broker_server,"
            " mt5_login, mt5_account_number, account_type) VALUES (:a, 'u', 'b', 's', 1, '1',"
            " 'demo')"), {"a": account})
        yield Loop(conn, account)


def test_an_execution_report_marks_its_signal_executed(loop: Loop) -> None:
    signal = loop.signal()
    assert loop.signal_state(signal) == ("pending", False)
    loop.execution(signal, ticket=101)
    assert loop.signal_state(signal) == ("executed", True)
    assert loop.result(signal)[0] is False
    assert loop.result(signal)[4] == "awaiting_close"


def test_a_rejected_order_marks_its_signal_rejected(loop: Loop) -> None:
    signal = loop.signal()
    loop.execution(signal, ticket=0, retcode=10006)  # TRADE_RETCODE_REJECT
    assert loop.signal_state(signal) == ("rejected", True)


def test_a_trade_close_fills_the_result_for_the_ml_feedback(loop: Loop) -> None:
    signal = loop.signal()
    loop.execution(signal, ticket=202)
    assert loop.order(202, "open", position=202) == 1
    assert loop.result(signal)[0] is False
    assert loop.order(203, "closed", position=202) == 1
    assert loop.result(signal) == CLOSED


def test_a_close_naming_the_signal_fills_the_result(loop: Loop) -> None:
    signal = loop.signal()
    loop.execution(signal, ticket=303)
    loop.order(999, "closed", signal=signal)
    assert loop.result(signal) == CLOSED


def test_a_close_that_arrives_first_is_picked_up_by_the_report(loop: Loop) -> None:
    signal = loop.signal()
    loop.order(405, "closed", position=404)
    loop.execution(signal, ticket=404)
    assert loop.result(signal) == CLOSED
    assert loop.signal_state(signal) == ("executed", True)


def test_an_order_updated_to_closed_fills_the_result(loop: Loop) -> None:
    signal = loop.signal()
    loop.execution(signal, ticket=505)
    loop.order(505, "open", position=505)
    loop.conn.execute(sa.text(
        "UPDATE mt5_trade_orders SET status = 'closed' WHERE ticket = 505"))
    assert loop.result(signal) == CLOSED


def test_a_redelivered_close_changes_nothing(loop: Loop) -> None:
    signal = loop.signal()
    loop.execution(signal, ticket=606)
    assert loop.order(607, "closed", position=606, sequence=7) == 1
    loop.conn.execute(sa.text(
        "UPDATE mt5_signal_executions SET feedback_status = 'included_in_training',"
        " feedback_processed_at = now() WHERE signal_id = :s"), {"s": signal})
    assert loop.order(607, "closed", position=606, sequence=7) == 0  # ON CONFLICT DO NOTHING
    assert loop.result(signal)[4] == "included_in_training"


def test_an_execution_of_an_unknown_signal_is_refused(loop: Loop) -> None:
    with pytest.raises(sa.exc.IntegrityError, match="does not exist"):
        loop.execution(uuid.uuid4(), ticket=707)


def test_feedback_needs_a_closed_trade(loop: Loop) -> None:
    signal = loop.signal()
    loop.execution(signal, ticket=808)
    with pytest.raises(sa.exc.IntegrityError, match="feedback_closed_check"):
        loop.conn.execute(sa.text(
            "UPDATE mt5_signal_executions SET feedback_status = 'pending' WHERE signal_id = :s"),
            {"s": signal})
