"""Every SQL snippet of the seed specification, verbatim, returns what the seed promises.

The snippets below are copied character for character from the seed specification,
``mt5-ea-integration-README.md``, which is not part of this repository: a test checks that
when the file is at ``$SUHO_SEED_SPEC`` or in a ``seed/`` directory beside an ancestor of
the checkout, and is skipped otherwise.
Three are templates whose placeholders the reader fills in: ``'user_account_id'`` (an
account id), ``stored_hash`` (a stored hash) and the Python snippet's ``%s`` (a list of
signal ids); the tests substitute exactly those and nothing else. Each runs as the role the
seed implies: the application role with the tenant set, the compliance role for the
compliance report, the maintenance role for the monitoring views.

``SELECT ... FROM pg_stat_statements`` (Troubleshooting, "Slow Queries") is left out: it
needs the pg_stat_statements extension preloaded by the server's configuration, which no
migration can do.

Runs on every engine (tests/db/conftest.py).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tests.db.schema._support import REPO_ROOT, Schema, is_single_backend, session

SEED_NAME = "mt5-ea-integration-README.md"


def _find_seed() -> Path | None:
    if os.environ.get("SUHO_SEED_SPEC"):
        return Path(os.environ["SUHO_SEED_SPEC"])
    for parent in REPO_ROOT.parents:
        for found in parent.glob(f"*/seed/{SEED_NAME}"):
            return found
    return None


SEED = _find_seed()

# --------------------------------------------------------------------------- the snippets

QUICK_START_INSERT = """INSERT INTO mt5_user_accounts (
    account_id, tenant_id, user_id,
    broker_name, broker_server, mt5_login,
    mt5_account_number, account_type,
    api_key_hash
) VALUES (
    uuid_generate_v4(), 'tenant_demo', 'user_001',
    'ICMarkets', 'ICMarkets-Demo', 67890,
    '12345', 'demo',
    hash_api_key('your_secure_api_key')
);"""

HEALTH_CHECK = """SELECT * FROM health_check();"""

CHECK_HEARTBEAT = """SELECT * FROM mt5_ea_heartbeat ORDER BY time DESC LIMIT 5;"""

CHECK_BALANCE = """SELECT * FROM mt5_account_balance_history ORDER BY time DESC LIMIT 5;"""

TRACK_DEVIATION = """-- Example: Track deviation
SELECT
    symbol,
    AVG(price_deviation) AS avg_deviation_pips,
    MAX(ABS(price_deviation)) AS max_deviation
FROM mt5_broker_quotes
WHERE time >= NOW() - INTERVAL '24 hours'
GROUP BY symbol;"""

TENANT_CONTEXT = """-- Application sets context
SET app.current_tenant_id = 'tenant_xyz';

-- Query (no tenant filter needed)
SELECT * FROM mt5_trade_orders;

-- RLS policy auto-applies filter:
-- → WHERE tenant_id = 'tenant_xyz'"""

MONITOR_HYPERTABLES = """SELECT * FROM v_hypertable_summary;"""
MONITOR_AGGREGATES = """SELECT * FROM v_continuous_aggregates;"""
MONITOR_CHUNKS = """SELECT * FROM v_chunk_summary;"""

EA_CONNECTIVITY = """SELECT
    COUNT(*) FILTER (WHERE status = 'online') AS online,
    COUNT(*) FILTER (WHERE status = 'offline') AS offline,
    COUNT(*) AS total
FROM (
    SELECT DISTINCT ON (account_id)
        account_id, status
    FROM mt5_ea_heartbeat
    ORDER BY account_id, time DESC
) latest;"""

GENERATE_API_KEY = """SELECT generate_api_key();"""
HASH_API_KEY = """SELECT hash_api_key('user_api_key_123');"""
VERIFY_API_KEY = """SELECT verify_api_key('user_api_key_123', stored_hash);"""

VERIFY_ACCOUNT = """SELECT account_id, user_id FROM mt5_user_accounts WHERE user_id = 'your_user';"""  # noqa: E501
RECENT_TRADES = """SELECT COUNT(*) FROM mt5_trade_orders WHERE time >= NOW() - INTERVAL '1 hour';"""
MISSING_INDEXES = """SELECT tablename, indexname
FROM pg_indexes
WHERE schemaname = 'public'
ORDER BY tablename;"""

CUSTOM_SIGNAL = """INSERT INTO mt5_trading_signals (
    account_id, symbol, action,
    entry_price, stop_loss, take_profit,
    model_version, strategy_name, confidence_score
) VALUES (
    'user_account_id', 'EURUSD', 'BUY',
    1.0953, 1.0932, 1.0982,
    'custom_v1', 'mean_reversion', 0.85
);"""

# The seed's Python snippet, as the two strings it defines.
ML_FEEDBACK_QUERY = """
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
ML_FEEDBACK_UPDATE = """
UPDATE mt5_signal_executions
SET feedback_status = 'included_in_training',
    feedback_processed_at = NOW()
WHERE signal_id = ANY(%s)
"""

COMPLIANCE_REPORT = """INSERT INTO mt5_compliance_reports (
    tenant_id, report_type, report_period_start, report_period_end, report_data
)
SELECT
    'tenant_xyz',
    'monthly_trading',
    date_trunc('month', NOW() - INTERVAL '1 month'),
    date_trunc('month', NOW()),
    jsonb_build_object(
        'total_trades', COUNT(*),
        'total_volume', SUM(volume),
        'total_profit', SUM(profit)
    )
FROM mt5_trade_orders
WHERE tenant_id = 'tenant_xyz'
  AND time >= date_trunc('month', NOW() - INTERVAL '1 month')
  AND status = 'closed';"""

SNIPPETS = {
    name: value
    for name, value in globals().items()
    if name.isupper() and isinstance(value, str) and name not in ("SEED", "SEED_NAME")
}

# --------------------------------------------------------------------------- helpers


def run_script(conn: Connection, script: str) -> list[Any]:
    """Run each statement of ``script`` as written; return the rows of the last one."""
    result: list[Any] = []
    for statement in script.split(";"):
        code = [line for line in statement.splitlines() if not line.strip().startswith("--")]
        if "".join(code).strip():
            cursor = conn.exec_driver_sql(statement)
            result = list(cursor.all()) if cursor.returns_rows else []
    return result


def fill(snippet: str, placeholder: str, value: str) -> str:
    """Fill in one of the seed's placeholders, which must occur in the snippet."""
    assert placeholder in snippet
    return snippet.replace(placeholder, value)


@dataclass
class Scenario:
    demo_accounts: list[uuid.UUID]
    xyz_account: uuid.UUID
    now: datetime


@pytest.fixture(scope="module")
def scenario(schema: Schema) -> Iterator[Scenario]:
    """The Quick Start account, two more EAs for tenant_demo, and tenant_xyz's trading."""
    engine = schema.engine
    now = datetime.now(UTC)
    with session(engine, "mt5_app", "tenant_demo", commit=True) as conn:
        assert run_script(conn, QUICK_START_INSERT) == []
        quick_start = conn.execute(sa.text(
            "SELECT account_id FROM mt5_user_accounts WHERE user_id = 'user_001'")).scalar_one()
        extra = [uuid.uuid4(), uuid.uuid4()]
        for n, account in enumerate(extra):
            conn.execute(sa.text(
                "INSERT INTO mt5_user_accounts (account_id, user_id, broker_name, broker_server,"
                " mt5_login, mt5_account_number, account_type) VALUES (:a, :u, 'Pepperstone',"
                " 'Pepperstone-Live', :l, '555', 'real')"),
                {"a": account, "u": f"user_00{n + 2}", "l": 70000 + n})
        accounts = [quick_start, *extra]
        # Latest heartbeat: online, offline, degraded (the oldest ones say otherwise).
        for account, latest in zip(accounts, ("online", "offline", "degraded"), strict=True):
            conn.execute(sa.text(
                "INSERT INTO mt5_ea_heartbeat (time, account_id, status, sequence)"
                " VALUES (:t1, :a, 'offline', 1), (:t2, :a, 'online', 2), (:t3, :a, :s, 3)"),
                {"a": account, "s": latest, "t1": now - timedelta(minutes=3),
                 "t2": now - timedelta(minutes=2), "t3": now - timedelta(minutes=1)})
        for i in range(8):
            conn.execute(sa.text(
                "INSERT INTO mt5_account_balance_history (time, account_id, balance, equity,"
                " sequence) VALUES (:t, :a, :b, :b, :s)"),
                {"t": now - timedelta(minutes=30 * i), "a": quick_start,
                 "b": Decimal("1000") + i, "s": i})
        quotes = [
            ("EURUSD", Decimal("0.4"), 1), ("EURUSD", Decimal("-1.2"), 2),
            ("GBPUSD", Decimal("0.3"), 3), ("EURUSD", Decimal("9.9"), 4),  # 2 days old
        ]
        for symbol, deviation, seq in quotes:
            conn.execute(sa.text(
                "INSERT INTO mt5_broker_quotes (time, account_id, symbol, bid, ask,"
                " price_deviation, sequence) VALUES (:t, :a, :sym, 1.1, 1.1001, :d, :s)"),
                {"t": now - (timedelta(days=2) if seq == 4 else timedelta(hours=seq)),
                 "a": quick_start, "sym": symbol, "d": deviation, "s": seq})
    xyz = uuid.uuid4()
    with session(engine, "mt5_app", "tenant_xyz", commit=True) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_user_accounts (account_id, user_id, broker_name, broker_server,"
            " mt5_login, mt5_account_number, account_type) VALUES (:a, 'user_xyz', 'ICMarkets',"
            " 'ICMarkets-Live', 4242, '4242', 'real')"), {"a": xyz})
        trades = [  # (age, volume, profit, status)
            (timedelta(hours=3), "0.10", "12.5000", "closed"),
            (timedelta(days=1), "0.20", "-4.2500", "closed"),
            (timedelta(hours=5), "0.30", "0", "open"),
            (timedelta(minutes=20), "0.40", "7.0000", "closed"),
        ]
        for n, (age, volume, profit, status) in enumerate(trades):
            conn.execute(sa.text(
                "INSERT INTO mt5_trade_orders (time, account_id, ticket, symbol, order_type,"
                " volume, price, profit, status, sequence) VALUES (:t, :a, :k, 'EURUSD', 'buy',"
                " :v, 1.0955, :p, :st, :s)"),
                {"t": now - age, "a": xyz, "k": 900 + n, "v": Decimal(volume),
                 "p": Decimal(profit), "st": status, "s": n})
    yield Scenario(demo_accounts=accounts, xyz_account=xyz, now=now)


# --------------------------------------------------------------------------- the tests


def test_the_snippets_are_the_seeds_own(request: pytest.FixtureRequest) -> None:
    if SEED is None or not SEED.exists():
        pytest.skip(f"the seed specification ({SEED_NAME}) was not found: set SUHO_SEED_SPEC")
    seed = SEED.read_text()
    for name, snippet in SNIPPETS.items():
        assert snippet.strip() in seed, name


def test_quick_start_insert_creates_a_verifiable_account(
    schema: Schema, scenario: Scenario
) -> None:
    with session(schema.engine, "mt5_app", "tenant_demo") as conn:
        row = conn.execute(sa.text(
            "SELECT tenant_id, mt5_login, account_type, verify_api_key('your_secure_api_key',"
            " api_key_hash) AS ok, verify_api_key('wrong', api_key_hash) AS wrong"
            " FROM mt5_user_accounts WHERE user_id = 'user_001'")).one()
    assert (row.tenant_id, row.mt5_login, row.account_type) == ("tenant_demo", 67890, "demo")
    assert row.ok and not row.wrong


@pytest.mark.parametrize("role", [None, "mt5_app"])
def test_health_check_reports_a_healthy_install(
    schema: Schema, scenario: Scenario, role: str | None
) -> None:
    with session(schema.engine, role, "tenant_demo") as conn:
        rows = run_script(conn, HEALTH_CHECK)
    status = {r.component: r.status for r in rows}
    # Revision 0014's row warns when a superuser sees trust rules: the test servers have them.
    assert status.pop("login_roles") in (("ok",) if role else ("ok", "warning")), rows
    assert status == {
        "database": "ok", "edition": "ok", "api_keys": "ok", "tables": "ok",
        "row_level_security": "ok", "tenant_grants": "ok", "columnstore": "ok",
        "maintenance": "ok", "session": "ok",
    }, rows


def test_heartbeat_and_balance_checks_show_the_tenants_latest_rows(
    schema: Schema, scenario: Scenario
) -> None:
    with session(schema.engine, "mt5_app", "tenant_demo") as conn:
        heartbeats = run_script(conn, CHECK_HEARTBEAT)
        balances = run_script(conn, CHECK_BALANCE)
    assert len(heartbeats) == 5
    assert [h.time for h in heartbeats] == sorted((h.time for h in heartbeats), reverse=True)
    assert {h.tenant_id for h in heartbeats} == {"tenant_demo"}
    assert len(balances) == 5
    assert balances[0].balance == Decimal("1000.0000")
    assert [b.time for b in balances] == sorted((b.time for b in balances), reverse=True)


def test_deviation_query_covers_the_last_24_hours(schema: Schema, scenario: Scenario) -> None:
    with session(schema.engine, "mt5_app", "tenant_demo") as conn:
        rows = {r.symbol: r for r in run_script(conn, TRACK_DEVIATION)}
    assert set(rows) == {"EURUSD", "GBPUSD"}
    assert rows["EURUSD"].avg_deviation_pips == Decimal("-0.4")
    assert rows["EURUSD"].max_deviation == Decimal("1.2")
    assert rows["GBPUSD"].max_deviation == Decimal("0.3")


def test_tenant_context_filters_every_query(schema: Schema, scenario: Scenario) -> None:
    with session(schema.engine, "mt5_app") as conn:
        rows = run_script(conn, TENANT_CONTEXT)
    assert len(rows) == 4
    assert {r.tenant_id for r in rows} == {"tenant_xyz"}


def test_ea_connectivity_counts_each_eas_latest_status(
    schema: Schema, scenario: Scenario
) -> None:
    with session(schema.engine, "mt5_app", "tenant_demo") as conn:
        [row] = run_script(conn, EA_CONNECTIVITY)
    assert (row.online, row.offline, row.total) == (1, 1, 3)


def test_api_key_snippets(schema: Schema) -> None:
    with session(schema.engine, "mt5_app", "tenant_demo") as conn:
        [[key]] = run_script(conn, GENERATE_API_KEY)
        [[other]] = run_script(conn, GENERATE_API_KEY)
        [[stored]] = run_script(conn, HASH_API_KEY)
        [[ok]] = run_script(conn, fill(VERIFY_API_KEY, "stored_hash", f"'{stored}'"))
        [[wrong]] = run_script(
            conn, fill(VERIFY_API_KEY, "stored_hash", f"'{stored}'").replace("123", "124")
        )
    assert re.fullmatch(r"[0-9a-f]{64}", key) and key != other
    # bcrypt where the server has pgcrypto (native servers), PBKDF2 where not (PGlite).
    expected = r"\$2a\$12\$.{53}" if not is_single_backend(schema.url) else (
        r"\$pbkdf2-sha256\$25000\$[0-9a-f]{32}\$[0-9a-f]{64}"
    )
    assert re.fullmatch(expected, stored)
    assert ok is True and wrong is False


def test_troubleshooting_queries(schema: Schema, scenario: Scenario) -> None:
    with session(schema.engine, "mt5_app", "tenant_xyz") as conn:
        assert run_script(conn, fill(VERIFY_ACCOUNT, "your_user", "user_xyz")) == [
            (scenario.xyz_account, "user_xyz")
        ]
        assert run_script(conn, RECENT_TRADES) == [(1,)]
    with session(schema.engine) as conn:
        indexes = run_script(conn, MISSING_INDEXES)
    assert ("mt5_trade_orders", "mt5_trade_orders_tenant_id_time_idx") in indexes


def test_custom_signal_insert_lands_in_the_current_tenant(
    schema: Schema, scenario: Scenario
) -> None:
    account = scenario.demo_accounts[0]
    with session(schema.engine, "mt5_app", "tenant_demo") as conn:
        run_script(conn, fill(CUSTOM_SIGNAL, "'user_account_id'", f"'{account}'"))
        row = conn.execute(sa.text(
            "SELECT tenant_id, status, signal_id, time, entry_price FROM mt5_trading_signals"
            " WHERE strategy_name = 'mean_reversion'")).one()
    assert row.tenant_id == "tenant_demo" and row.status == "pending"
    assert row.signal_id is not None and row.entry_price == Decimal("1.09530000")
    assert abs(row.time - datetime.now(UTC)) < timedelta(minutes=5)


def test_custom_signal_insert_without_a_tenant_is_refused(
    schema: Schema, scenario: Scenario
) -> None:
    account = scenario.demo_accounts[0]
    with session(schema.engine, "mt5_app") as conn, pytest.raises(sa.exc.DBAPIError) as err:
        run_script(conn, fill(CUSTOM_SIGNAL, "'user_account_id'", f"'{account}'"))
    assert err.value.orig is not None
    # No tenant, so the tenant_id default is NULL, which the column refuses (the signals
    # have no row-level security since revision 0013, whose policy refused it first before).
    assert err.value.orig.sqlstate == "23502", err.value


def test_ml_feedback_query_and_update(schema: Schema, scenario: Scenario) -> None:
    account = scenario.xyz_account
    signal = uuid.uuid4()
    with session(schema.engine, "mt5_app", "tenant_xyz") as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_trading_signals (signal_id, account_id, symbol, action, entry_price,"
            " confidence_score, polygon_ask) VALUES (:s, :a, 'EURUSD', 'BUY', 1.0953, 0.91,"
            " 1.09531)"), {"s": signal, "a": account})
        conn.execute(sa.text(
            "INSERT INTO mt5_signal_executions (signal_id, account_id, ticket,"
            " actual_entry_price, market_volatility, spread_at_execution)"
            " VALUES (:s, :a, 777001, 1.09535, 0.0042, 0.00015)"), {"s": signal, "a": account})
        assert run_script(conn, ML_FEEDBACK_QUERY) == []  # not closed yet
        conn.execute(sa.text(
            "INSERT INTO mt5_trade_orders (account_id, ticket, position_id, symbol, order_type,"
            " deal_type, volume, price, profit, profit_pips, status) VALUES (:a, 777002,"
            " 777001, 'EURUSD', 'sell', 'sell', 0.1, 1.0968, 13.3000, 13.3, 'closed')"),
            {"a": account})
        rows = conn.exec_driver_sql(ML_FEEDBACK_QUERY).all()
        assert [tuple(r) for r in rows] == [(
            Decimal("0.9100"), Decimal("1.09531000"), Decimal("1.09535000"),
            Decimal("13.3000"), Decimal("13.30000000"), Decimal("0.00420000"),
            Decimal("0.00015000"),
        )]
        updated = conn.exec_driver_sql(ML_FEEDBACK_UPDATE, ([signal],))
        assert updated.rowcount == 1
        assert conn.exec_driver_sql(ML_FEEDBACK_QUERY).all() == []
        status = conn.execute(sa.text(
            "SELECT feedback_status, feedback_processed_at IS NOT NULL FROM"
            " mt5_signal_executions WHERE signal_id = :s"), {"s": signal}).one()
    assert tuple(status) == ("included_in_training", True)


def test_compliance_report_insert_summarises_last_months_closed_trades(
    schema: Schema, scenario: Scenario
) -> None:
    with session(schema.engine, "mt5_compliance") as conn:
        assert run_script(conn, COMPLIANCE_REPORT) == []
        report = conn.execute(sa.text(
            "SELECT tenant_id, report_type, report_data, report_period_end - report_period_start"
            " > INTERVAL '27 days' AS month FROM mt5_compliance_reports"
            " WHERE report_type = 'monthly_trading'")).one()
    assert report.tenant_id == "tenant_xyz" and report.month
    assert report.report_data == {"total_trades": 3, "total_volume": 0.7,
                                  "total_profit": 15.25}


def test_monitoring_views(schema: Schema, scenario: Scenario) -> None:
    with session(schema.engine, "mt5_maintenance") as conn:
        hypertables = run_script(conn, MONITOR_HYPERTABLES)
        aggregates = run_script(conn, MONITOR_AGGREGATES)
        chunks = run_script(conn, MONITOR_CHUNKS)
    assert len(hypertables) == 8
    assert {h.hypertable_name: h.retention for h in hypertables}["mt5_broker_quotes"] == (
        timedelta(days=90)
    )
    assert all(h.is_hypertable == schema.edition.has_hypertables for h in hypertables)
    assert {a.aggregate_name for a in aggregates} == {
        "mt5_agg_balance_hourly", "mt5_agg_pnl_daily", "mt5_agg_pnl_weekly",
        "mt5_agg_quotes_ohlc_1m", "mt5_agg_quotes_ohlc_1h", "mt5_agg_quotes_ohlc_1d",
    }
    assert all(a.refresh_schedule is not None for a in aggregates)
    by_table = {c.hypertable_name for c in chunks}
    assert {"mt5_ea_heartbeat", "mt5_broker_quotes", "mt5_trade_orders"} <= by_table
    quotes = [c for c in chunks if c.hypertable_name == "mt5_broker_quotes"]
    assert min(c.range_start for c in quotes) <= scenario.now - timedelta(days=2)
    assert not any(c.past_retention for c in chunks)


def test_monitoring_views_are_closed_to_tenant_roles(schema: Schema) -> None:
    for view in ("v_hypertable_summary", "v_continuous_aggregates", "v_chunk_summary"):
        with session(schema.engine, "mt5_app", "tenant_demo") as conn, pytest.raises(
            sa.exc.ProgrammingError, match="permission denied"
        ):
            conn.exec_driver_sql(f"SELECT * FROM {view}")
