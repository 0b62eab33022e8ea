"""The columnstore (revision 0013) on native TimescaleDB, through real logins: what changes
a row after it was converted keeps working on converted (compressed) chunks, and what reads
history still reads it (docs/schema.md, "Columnstore").

Each test converts the chunks its rows are in by hand (``compress_chunk``, as the policy
does once a chunk is old enough), checks that they are converted, then acts as the
application, the Data Bridge or an operator would.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import sqlalchemy as sa

from suho_mt5.compliance import audit
from suho_mt5.db import Edition, make_engine
from tests.db.schema._support import Schema, ensure_login, login_url, migrated_schema
from tests.support.fixtures import PgServer

pytestmark = pytest.mark.timeout(180)

Conn = psycopg.Connection[tuple[object, ...]]
OLD = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)


@pytest.fixture(scope="module")
def db(ts_server: PgServer) -> Iterator[Schema]:
    url = ts_server.url(ts_server.create_database())
    try:
        with migrated_schema(url, Edition.TIMESCALE) as migrated:
            yield migrated
    finally:
        ts_server.drop_database(sa.make_url(url).database or "")


@pytest.fixture
def connect(db: Schema) -> Iterator[Callable[[str | None], Conn]]:
    """``connect(role)``: a connection of a LOGIN in ``role`` (None: the superuser)."""
    opened: list[Conn] = []

    def open_(role: str | None) -> Conn:
        url = sa.make_url(db.url) if role is None else login_url(db.url, role)
        if role is not None:
            ensure_login(db.engine, role)
        conn = psycopg.connect(host=url.host, port=url.port, user=url.username,
                               password=url.password, dbname=url.database)
        opened.append(conn)
        return conn

    yield open_
    for conn in opened:
        conn.close()


def _tenant() -> str:
    return f"cs_{uuid.uuid4().hex[:10]}"


def _tenant_tx(conn: Conn, tenant: str) -> None:
    conn.execute("SELECT set_config('app.current_tenant_id', %s, true), "
                 "set_config('search_path', 'mt5_tenant, public', true)", (tenant,))


def _account(admin: Conn, tenant: str) -> uuid.UUID:
    account = uuid.uuid4()
    with admin.transaction():
        admin.execute(
            "INSERT INTO mt5_user_accounts (account_id, tenant_id, user_id, broker_name,"
            " broker_server, mt5_login, mt5_account_number, account_type) VALUES"
            " (%s, %s, 'u1', 'B', 'B-Demo', %s, '7001', 'demo')",
            (account, tenant, account.int % 2**40 + 1))
    return account


def _signal(admin: Conn, tenant: str, account: uuid.UUID, when: datetime = OLD) -> uuid.UUID:
    signal = uuid.uuid4()
    with admin.transaction():
        admin.execute(
            "INSERT INTO mt5_trading_signals (time, signal_id, tenant_id, account_id, symbol,"
            " action, volume, status) VALUES (%s, %s, %s, %s, 'EURUSD', 'BUY', 0.1, 'pending')",
            (when, signal, tenant, account))
    return signal


def _convert(admin: Conn, table: str, when: datetime = OLD) -> str:
    """Convert the chunk of ``table`` that holds ``when`` (and check it is converted)."""
    with admin.transaction():
        chunk = admin.execute(
            "SELECT format('%%I.%%I', chunk_schema, chunk_name) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = %s AND range_start <= %s AND range_end > %s LIMIT 1",
            (table, when, when)).fetchone()
        assert chunk is not None, f"no chunk of {table} holds {when}"
        admin.execute("SELECT compress_chunk(%s::regclass, if_not_compressed => true)",
                      (chunk[0],))
    row = admin.execute(
        "SELECT is_compressed FROM timescaledb_information.chunks"
        " WHERE format('%%I.%%I', chunk_schema, chunk_name) = %s", (chunk[0],)).fetchone()
    admin.commit()
    assert row == (True,)
    return str(chunk[0])


def test_a_tenant_login_updates_a_signal_in_a_converted_chunk(
    connect: Callable[[str | None], Conn]
) -> None:
    admin, app = connect(None), connect("mt5_app")
    tenant = _tenant()
    signal = _signal(admin, tenant, _account(admin, tenant))
    _convert(admin, "mt5_trading_signals")
    with app.transaction():
        _tenant_tx(app, tenant)
        assert app.execute("UPDATE mt5_trading_signals SET status = 'cancelled'"
                           " WHERE signal_id = %s", (signal,)).rowcount == 1
    with app.transaction():
        _tenant_tx(app, _tenant())  # another tenant reaches nothing, converted or not
        assert app.execute("UPDATE mt5_trading_signals SET status = 'expired'"
                           " WHERE signal_id = %s", (signal,)).rowcount == 0
    assert admin.execute("SELECT status FROM mt5_trading_signals WHERE signal_id = %s",
                         (signal,)).fetchone() == ("cancelled",)


def test_a_late_execution_report_marks_its_converted_signal(
    connect: Callable[[str | None], Conn]
) -> None:
    """The Data Bridge's login inserts the report; the feedback trigger updates the signal
    in its converted chunk."""
    admin, bridge = connect(None), connect("mt5_ingest")
    tenant = _tenant()
    account = _account(admin, tenant)
    signal = _signal(admin, tenant, account)
    _convert(admin, "mt5_trading_signals")
    with bridge.transaction():
        bridge.execute(
            "INSERT INTO mt5_signal_executions (time, tenant_id, account_id, signal_id, ticket,"
            " result_code) VALUES (%s, %s, %s, %s, 901, 10009)",
            (OLD + timedelta(seconds=1), tenant, account, signal))
    assert admin.execute("SELECT status FROM mt5_trading_signals WHERE signal_id = %s",
                         (signal,)).fetchone() == ("executed",)


def test_an_execution_takes_the_result_of_a_converted_closed_order(
    connect: Callable[[str | None], Conn]
) -> None:
    """The trade closed (its order is in a converted chunk) before the execution report
    arrived: the report's trigger reads the result from the columnstore."""
    admin, bridge = connect(None), connect("mt5_ingest")
    tenant = _tenant()
    account = _account(admin, tenant)
    signal = _signal(admin, tenant, account)
    with bridge.transaction():
        bridge.execute(
            "INSERT INTO mt5_trade_orders (time, tenant_id, account_id, ticket, position_id,"
            " symbol, order_type, volume, price, profit, status, signal_id) VALUES"
            " (%s, %s, %s, 902, 902, 'EURUSD', 'buy', 0.1, 1.1, 12.5, 'closed', %s)",
            (OLD + timedelta(hours=1), tenant, account, signal))
    _convert(admin, "mt5_trade_orders", OLD + timedelta(hours=1))
    with bridge.transaction():
        bridge.execute(
            "INSERT INTO mt5_signal_executions (time, tenant_id, account_id, signal_id, ticket,"
            " result_code) VALUES (%s, %s, %s, %s, 902, 10009)",
            (OLD + timedelta(seconds=1), tenant, account, signal))
    row = admin.execute("SELECT trade_closed, profit FROM mt5_signal_executions"
                        " WHERE signal_id = %s", (signal,)).fetchone()
    assert row is not None and row[0] is True and float(row[1]) == 12.5  # type: ignore[arg-type]


def test_the_update_race_repeat_works_on_a_converted_signal(
    connect: Callable[[str | None], Conn]
) -> None:
    """docs/schema.md, trap 14, on a converted chunk: the publisher marks the signal sent
    (which decompresses its batch) while the execution report's trigger waits for the row;
    revision 0012's repeated UPDATE still marks it executed."""
    admin, holder, bridge = connect(None), connect("mt5_ingest"), connect("mt5_ingest")
    tenant = _tenant()
    account = _account(admin, tenant)
    signal = _signal(admin, tenant, account)
    _convert(admin, "mt5_trading_signals")

    def execution() -> None:
        with bridge.transaction():
            bridge.execute(
                "INSERT INTO mt5_signal_executions (time, tenant_id, account_id, signal_id,"
                " ticket, result_code) VALUES (%s, %s, %s, %s, 903, 10009)",
                (OLD + timedelta(seconds=2), tenant, account, signal))

    assert holder.execute(
        "UPDATE mt5_trading_signals SET status = 'sent', sent_at = now()"
        " WHERE tenant_id = %s AND signal_id = %s AND time = %s AND status = 'pending'",
        (tenant, signal, OLD)).rowcount == 1
    worker = threading.Thread(target=execution)
    worker.start()
    time.sleep(0.5)
    assert worker.is_alive(), "the trigger's UPDATE did not wait for the held row"
    holder.commit()
    worker.join(30)
    assert not worker.is_alive()
    assert admin.execute("SELECT status FROM mt5_trading_signals WHERE signal_id = %s",
                         (signal,)).fetchone() == ("executed",)


def test_retention_drops_converted_chunks(connect: Callable[[str | None], Conn]) -> None:
    admin = connect(None)
    tenant = _tenant()
    account = _account(admin, tenant)
    old = datetime.now(UTC) - timedelta(days=45)  # heartbeats are kept 30 days
    with admin.transaction():
        admin.execute("INSERT INTO mt5_ea_heartbeat (time, tenant_id, account_id, status)"
                      " VALUES (%s, %s, %s, 'online')", (old, tenant, account))
    chunk = _convert(admin, "mt5_ea_heartbeat", old)
    job = admin.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name ="
                        " 'policy_retention' AND hypertable_name = 'mt5_ea_heartbeat'"
                        ).fetchone()
    assert job is not None
    admin.commit()
    admin.autocommit = True
    admin.execute("CALL run_job(%s)", (job[0],))
    assert admin.execute("SELECT to_regclass(%s)", (chunk,)).fetchone() == (None,)
    assert admin.execute("SELECT count(*) FROM mt5_ea_heartbeat WHERE tenant_id = %s",
                         (tenant,)).fetchone() == (0,)


def test_audit_verify_reads_converted_history_and_the_chain_goes_on(
    db: Schema, connect: Callable[[str | None], Conn]
) -> None:
    admin, app = connect(None), connect("mt5_app")
    tenant = _tenant()
    old = datetime.now(UTC) - timedelta(days=200)  # the audit log is converted after 90
    with app.transaction():
        _tenant_tx(app, tenant)
        for n in range(5):
            app.execute("INSERT INTO mt5_audit_log (time, event_type, payload)"
                        " VALUES (%s, 'order.note', jsonb_build_object('n', %s::int))",
                        (old + timedelta(minutes=n), n))
    _convert(admin, "mt5_audit_log", old)
    with app.transaction():  # written after the conversion: chained after the converted five
        _tenant_tx(app, tenant)
        app.execute("INSERT INTO mt5_audit_log (event_type) VALUES ('order.note')")
    seqs = admin.execute("SELECT chain_seq FROM mt5_audit_log WHERE tenant_id = %s"
                         " ORDER BY chain_seq", (tenant,)).fetchall()
    assert [s[0] for s in seqs] == [1, 2, 3, 4, 5, 6]
    engine = make_engine(db.url)
    try:
        (report,) = audit.verify(engine, tenant_id=tenant).chains
    finally:
        engine.dispose()
    assert report.problem is None and report.last == 6


def test_the_bridge_copies_late_history_into_a_converted_chunk_once(
    connect: Callable[[str | None], Conn]
) -> None:
    """Late rows go into a converted chunk; a redelivered row there still breaks the key, so
    the staged ``INSERT ... ON CONFLICT DO NOTHING`` (what the writer falls back to) skips
    it: nothing acknowledged is lost, nothing is stored twice."""
    admin, bridge = connect(None), connect("mt5_ingest")
    tenant = _tenant()
    account = _account(admin, tenant)
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(days=20)
    with admin.transaction():  # an earlier row, so the chunk exists and can be converted
        admin.execute("INSERT INTO mt5_account_balance_history (time, tenant_id, account_id,"
                      " balance, equity, sequence) VALUES (%s, %s, %s, 1, 1, 1)",
                      (old - timedelta(hours=1), tenant, account))
    _convert(admin, "mt5_account_balance_history", old)
    columns = "time, tenant_id, account_id, balance, equity, sequence"
    rows = [(old + timedelta(seconds=30 * i), tenant, account, 100 + i, 100 + i, 10 + i)
            for i in range(50)]
    with bridge.transaction(), bridge.cursor().copy(
            f"COPY mt5_account_balance_history ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    with pytest.raises(psycopg.errors.UniqueViolation), bridge.transaction(), \
            bridge.cursor().copy(f"COPY mt5_account_balance_history ({columns}) FROM STDIN"
                                 ) as copy:
        copy.write_row(rows[0])
    _convert(admin, "mt5_account_balance_history", old)  # the late rows converted too
    with bridge.transaction():
        inserted = bridge.execute(
            f"INSERT INTO mt5_account_balance_history ({columns}) VALUES"
            " (%s, %s, %s, %s, %s, %s), (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (*rows[1], *(old + timedelta(days=1), tenant, account, 7, 7, 999))).rowcount
    assert inserted == 1
    assert admin.execute("SELECT count(*) FROM mt5_account_balance_history"
                         " WHERE account_id = %s", (account,)).fetchone() == (52,)
