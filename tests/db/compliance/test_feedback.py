"""The ML feedback export (issue #14, build 5): the seed's query and update still run
unchanged; an export marks exactly what it wrote, so a second export is empty, and an
export that fails midway leaves every row pending."""

from __future__ import annotations

import csv
import importlib.util
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from suho_mt5.compliance.feedback import FEEDBACK_COLUMNS, export_feedback
from suho_mt5.errors import ExportError
from tests.db.compliance._support import (
    Db,
    create_account,
    new_tenant,
    tenant_tx,
    trading_day,
)

pytestmark = pytest.mark.engines("postgresql", "timescale")

# The seed's "ML Model Integration" snippets, verbatim.
SEED_QUERY = """
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
SEED_UPDATE = """
UPDATE mt5_signal_executions
SET feedback_status = 'included_in_training',
    feedback_processed_at = NOW()
WHERE signal_id = ANY(%s)
"""
TRADES = 40


def _trades(db: Db, app: Engine, count: int) -> str:
    tenant = new_tenant("ml")
    when = datetime.now(UTC) - timedelta(days=1)
    with tenant_tx(app, tenant) as conn:
        account = create_account(conn, user_id="ml-user", login=3131)
        for i in range(count):
            trading_day(conn, account_id=account, when=when + timedelta(minutes=i), ticket=i + 1,
                        profit=str(i - 10))
        # One still open: never exported.
        conn.execute(sa.text(
            "INSERT INTO mt5_trading_signals (signal_id, account_id, symbol, action)"
            " VALUES (gen_random_uuid(), :a, 'EURUSD', 'BUY')"), {"a": account})
    return tenant


def _statuses(db: Db, tenant: str) -> dict[str, int]:
    with db.engine.connect() as conn:
        return dict(conn.execute(sa.text(
            "SELECT feedback_status, count(*) FROM mt5_signal_executions WHERE tenant_id = :t"
            " GROUP BY 1"), {"t": tenant}).all())


@pytest.fixture(scope="module")
def app(login: Callable[[str], Engine]) -> Engine:
    return login("mt5_app")


def test_the_seed_query_and_update_run_unchanged(db: Db, app: Engine) -> None:
    tenant = _trades(db, app, 3)
    url = app.url
    with psycopg.connect(host=url.host, port=url.port, user=url.username,
                         password=url.password, dbname=url.database) as conn:
        conn.execute("SELECT set_config('app.current_tenant_id', %s, true)", (tenant,))
        rows = conn.execute(SEED_QUERY).fetchall()
        assert len(rows) == 3
        ids = [r[0] for r in conn.execute(
            "SELECT signal_id FROM mt5_signal_executions WHERE feedback_status = 'pending'")]
        conn.execute(SEED_UPDATE, (ids,))
    assert _statuses(db, tenant) == {"included_in_training": 3}


def test_an_export_marks_what_it_wrote_and_the_next_one_is_empty(
    db: Db, app: Engine, tmp_path: Path
) -> None:
    tenant = _trades(db, app, TRADES)
    first = export_feedback(app, tenant, tmp_path / "first.csv")
    assert first.rows == TRADES
    with open(tmp_path / "first.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(FEEDBACK_COLUMNS)
    assert sorted(float(r["profit"]) for r in rows) == [float(i - 10) for i in range(TRADES)]
    assert {r["confidence_score"] for r in rows} == {"0.8500"}
    assert _statuses(db, tenant) == {"included_in_training": TRADES}
    second = export_feedback(app, tenant, tmp_path / "second.csv")
    assert second.rows == 0
    assert (tmp_path / "second.csv").read_text().count("\n") == 1  # the header only


def test_an_export_failing_midway_leaves_every_row_pending(
    db: Db, app: Engine, tmp_path: Path
) -> None:
    tenant = _trades(db, app, TRADES)
    # /dev/full accepts the open and fails the writes: the disk is full midway.
    with pytest.raises(ExportError, match="no row was marked"):
        export_feedback(app, tenant, "/dev/full")
    assert _statuses(db, tenant) == {"pending": TRADES}
    missing = tmp_path / "no-such-dir" / "out.csv"
    with pytest.raises(ExportError, match="cannot write"):
        export_feedback(app, tenant, missing)
    assert _statuses(db, tenant) == {"pending": TRADES}
    assert export_feedback(app, tenant, tmp_path / "ok.csv").rows == TRADES


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is not None,
                    reason="pyarrow is installed")
def test_parquet_without_pyarrow_is_one_clear_error(db: Db, app: Engine, tmp_path: Path) -> None:
    tenant = _trades(db, app, 2)
    with pytest.raises(ExportError, match="pip install pyarrow"):
        export_feedback(app, tenant, tmp_path / "x.parquet", fmt="parquet")
    assert _statuses(db, tenant) == {"pending": 2}
    assert not os.path.exists(tmp_path / "x.parquet")


def test_parquet_with_pyarrow(db: Db, app: Engine, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    tenant = _trades(db, app, 5)
    assert export_feedback(app, tenant, tmp_path / "x.parquet", fmt="parquet").rows == 5
    table = pq.read_table(tmp_path / "x.parquet")
    assert table.num_rows == 5 and table.column_names == list(FEEDBACK_COLUMNS)
    assert export_feedback(app, tenant, tmp_path / "y.parquet", fmt="parquet").rows == 0


