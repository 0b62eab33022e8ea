"""The feedback loop under concurrent updates on native TimescaleDB 2.28 (docs/schema.md,
trap 14): there an UPDATE that waits for a concurrent update of the same hypertable row
updates nothing afterwards. Revision 0012's triggers repeat such an UPDATE; each test holds
the row in a concurrent update while the trigger runs, and fails without the repetition."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from suho_mt5.commands.db import upgrade

pytestmark = pytest.mark.timeout(120)

Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def connect(ts_url: str) -> Iterator[Callable[[], Conn]]:
    upgrade(ts_url)
    url = make_url(ts_url)
    opened: list[Conn] = []

    def open_() -> Conn:
        conn = psycopg.connect(host=url.host, port=url.port, user=url.username,
                               password=url.password, dbname=url.database)
        opened.append(conn)
        return conn

    yield open_
    for conn in opened:
        conn.close()


def _signal(conn: Conn) -> tuple[uuid.UUID, uuid.UUID]:
    account, signal = uuid.uuid4(), uuid.uuid4()
    with conn.transaction():
        conn.execute("SELECT set_config('app.current_tenant_id', 'tenant_race', true)")
        conn.execute(
            "INSERT INTO mt5_user_accounts (account_id, tenant_id, user_id, broker_name,"
            " broker_server, mt5_login, mt5_account_number, account_type) VALUES"
            " (%s, 'tenant_race', 'u1', 'B', 'B-Demo', 7001, '7001', 'demo')", (account,))
        conn.execute(
            "INSERT INTO mt5_trading_signals (signal_id, tenant_id, account_id, symbol, action,"
            " volume, status) VALUES (%s, 'tenant_race', %s, 'EURUSD', 'BUY', 0.1, 'pending')",
            (signal, account))
    return account, signal


def _while_held(holder: Conn, hold_sql: str, params: tuple[object, ...],
                other: Callable[[], None]) -> None:
    """Run ``hold_sql`` in an open transaction of ``holder``, start ``other`` (which must
    block on the row), then commit."""
    holder.execute("SELECT set_config('app.current_tenant_id', 'tenant_race', true)")
    assert holder.execute(hold_sql, params).rowcount == 1
    worker = threading.Thread(target=other)
    worker.start()
    time.sleep(0.5)
    assert worker.is_alive(), "the trigger's UPDATE did not wait for the held row"
    holder.commit()
    worker.join(30)
    assert not worker.is_alive()


def test_an_execution_marks_a_signal_being_marked_sent(connect: Callable[[], Conn]) -> None:
    admin, holder, bridge = connect(), connect(), connect()
    account, signal = _signal(admin)

    def execution() -> None:
        with bridge.transaction():
            bridge.execute(
                "INSERT INTO mt5_signal_executions (tenant_id, account_id, signal_id, ticket,"
                " result_code) VALUES ('tenant_race', %s, %s, 501, 10009)", (account, signal))

    _while_held(holder, "UPDATE mt5_trading_signals SET status = 'sent', sent_at = now()"
                " WHERE signal_id = %s AND status = 'pending'", (signal,), execution)
    status = admin.execute("SELECT status FROM mt5_trading_signals WHERE signal_id = %s",
                           (signal,)).fetchone()
    assert status == ("executed",)


def test_a_closed_trade_fills_an_execution_being_updated(connect: Callable[[], Conn]) -> None:
    admin, holder, bridge = connect(), connect(), connect()
    account, signal = _signal(admin)
    with admin.transaction():
        admin.execute(
            "INSERT INTO mt5_signal_executions (tenant_id, account_id, signal_id, ticket,"
            " result_code) VALUES ('tenant_race', %s, %s, 502, 10009)", (account, signal))

    def close() -> None:
        with bridge.transaction():
            bridge.execute(
                "INSERT INTO mt5_trade_orders (tenant_id, account_id, ticket, position_id,"
                " symbol, order_type, volume, price, profit, status) VALUES ('tenant_race',"
                " %s, 502, 502, 'EURUSD', 'buy', 0.1, 1.1, 12.5, 'closed')", (account,))

    _while_held(holder, "UPDATE mt5_signal_executions SET execution_latency_ms = 5"
                " WHERE signal_id = %s", (signal,), close)
    row = admin.execute("SELECT trade_closed, profit FROM mt5_signal_executions"
                        " WHERE signal_id = %s", (signal,)).fetchone()
    assert row is not None and row[0] is True and float(row[1]) == 12.5  # type: ignore[arg-type]
