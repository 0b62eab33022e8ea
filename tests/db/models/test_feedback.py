"""The seed's ML feedback query, written with the models, returns the raw SQL's rows.

Shared by both server lanes: ``tests/timescale/models`` imports these tests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from suho_mt5.db import tenant_connection, tenant_session
from suho_mt5.models import (
    DealEntry,
    DealType,
    OrderStatus,
    OrderType,
    SignalExecution,
    TradeOrder,
    UserAccount,
)
from tests.db.models._support import tenant
from tests.db.schema._support import (
    TENANT_A,
    TENANT_B,
    Schema,
    TenantData,
    seed_two_tenants,
)
from tests.typing_example.models_usage import (
    ML_FEEDBACK_SQL,
    FeedbackRow,
    mark_feedback_processed,
    ml_feedback_rows,
    publish_signal,
)


@pytest.fixture(scope="module")
def feedback(db: Schema, app: Engine) -> dict[str, TenantData]:
    """Two tenants from the schema tests' seed, and for tenant A five more signals written
    with the models: executed, four of them closed (so pending feedback), one still open."""
    data = seed_two_tenants(db.engine)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    with tenant(app, TENANT_A) as session:
        account = session.get_one(UserAccount, data[TENANT_A].account_id)
        for n in range(5):
            at = base + timedelta(minutes=10 * n)
            signal = publish_signal(session, account, at=at,
                                    confidence=Decimal("0.5") + Decimal(n) / 20)
            execution = SignalExecution(
                time=at + timedelta(seconds=1), account=account, signal=signal,
                ticket=60_000 + n, actual_entry_price=Decimal("1.0954") + Decimal(n) / 10_000,
                slippage=Decimal("0.0001"), result_code=10009,
                spread_at_execution=Decimal("0.00012"),
                market_volatility=Decimal("0.003") + Decimal(n) / 1000)
            session.add(execution)
            if n < 4:
                session.add(TradeOrder(
                    time=at + timedelta(minutes=5), account=account, ticket=60_100 + n,
                    position_id=60_000 + n, symbol="EURUSD", order_type=OrderType.SELL,
                    deal_type=DealType.SELL, deal_entry=DealEntry.OUT, volume=Decimal("0.1"),
                    price=Decimal("1.0970"), profit=Decimal(n * 3 - 4), profit_pips=Decimal(n),
                    status=OrderStatus.CLOSED))
    return data


def _raw(app: Engine, tenant_id: str) -> list[FeedbackRow]:
    with tenant_connection(app, tenant_id) as conn:
        return [FeedbackRow(*row) for row in conn.execute(sa.text(ML_FEEDBACK_SQL))]


def test_the_ml_feedback_query_matches_the_raw_sql(
    app: Engine, feedback: dict[str, TenantData]
) -> None:
    for tenant_id, expected_rows in ((TENANT_A, 5), (TENANT_B, 1)):
        raw = _raw(app, tenant_id)
        with tenant(app, tenant_id) as session:
            orm = ml_feedback_rows(session)
        assert orm == raw
        assert len(orm) == expected_rows
    # The still-open trade is not there; closed ones carry their result.
    assert all(row.profit is not None and row.profit_pips is not None
               for row in _raw(app, TENANT_A))


def test_marking_feedback_processed_empties_the_query(
    app: Engine, feedback: dict[str, TenantData]
) -> None:
    # In one transaction, rolled back: the other tests see the feedback still pending.
    with tenant_session(app, TENANT_A) as session:
        signal_ids = session.scalars(
            sa.select(SignalExecution.signal_id)
            .where(SignalExecution.feedback_status == "pending")).all()
        assert mark_feedback_processed(session, [*signal_ids, uuid.uuid4()]) == 5
        assert ml_feedback_rows(session) == []
        assert session.connection().execute(sa.text(ML_FEEDBACK_SQL)).all() == []
        processed = session.scalars(
            sa.select(SignalExecution)
            .where(SignalExecution.feedback_status == "included_in_training")).all()
        assert len(processed) == 5
        assert all(e.feedback_processed_at is not None for e in processed)
        session.rollback()
    # Tenant B's results were never in reach.
    assert len(_raw(app, TENANT_B)) == 1
