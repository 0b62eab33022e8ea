"""Tenant sessions are pool-safe, and the aggregate classes read one tenant and write
nothing.

Run on every engine by the ``backend`` fixture (``tests/db/conftest.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

from suho_mt5.db import tenant_session
from suho_mt5.models import (
    BalanceHistory,
    BalanceHourly,
    BrokerQuote,
    PnlDaily,
    PnlWeekly,
    QuoteOhlc1d,
    QuoteOhlc1h,
    QuoteOhlc1m,
    ReadOnlyModelError,
    TradeOrder,
    UserAccount,
)
from suho_mt5.models.aggregates import ReadOnlyView
from tests.db.models._support import role_engine, tenant
from tests.db.schema._support import (
    TENANT_A,
    TENANT_B,
    Schema,
    TenantData,
    seed_two_tenants,
)

AGGREGATES: tuple[type[ReadOnlyView], ...] = (
    BalanceHourly, PnlDaily, PnlWeekly, QuoteOhlc1m, QuoteOhlc1h, QuoteOhlc1d)


@pytest.fixture(scope="module")
def seeded(db: Schema) -> dict[str, TenantData]:
    data = seed_two_tenants(db.engine)
    if not db.edition.has_continuous_aggregates:
        # Materialized views show what the last refresh saw (mt5_maintain() in production).
        with db.engine.begin() as conn:
            for cls in AGGREGATES:
                conn.exec_driver_sql(f"REFRESH MATERIALIZED VIEW {cls.__aggregate__}")
    return data


@pytest.fixture
def pool_of_one(db: Schema) -> Iterator[Engine]:
    engine = role_engine(db.url, "mt5_app", poolclass=QueuePool, pool_size=1, max_overflow=0)
    try:
        yield engine
    finally:
        engine.dispose()


def _backend(session: Session) -> int:
    return int(session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def test_one_pooled_connection_serves_two_tenants_without_leaking(
    pool_of_one: Engine, seeded: dict[str, TenantData]
) -> None:
    engine = pool_of_one
    seen: dict[str, set[str]] = {}
    backends: set[int] = set()
    for tenant_id in (TENANT_A, TENANT_B, TENANT_A):
        with tenant_session(engine, tenant_id) as session, session.begin():
            backends.add(_backend(session))
            seen.setdefault(tenant_id, set()).update(
                session.scalars(sa.select(TradeOrder.tenant_id)).all())
            seen[tenant_id].update(session.scalars(sa.select(UserAccount.tenant_id)).all())
            accounts = session.scalars(sa.select(UserAccount.account_id)).all()
            assert accounts == [seeded[tenant_id].account_id]
            # The other tenant's account is not there, even by its key.
            other = TENANT_B if tenant_id == TENANT_A else TENANT_A
            assert session.get(UserAccount, seeded[other].account_id) is None
    assert seen == {TENANT_A: {TENANT_A}, TENANT_B: {TENANT_B}}
    assert len(backends) == 1  # one connection, reused

    # Outside any tenant transaction, on the same connection: nothing, and no tenant set.
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() in backends
        assert conn.execute(sa.text(
            "SELECT coalesce(current_setting('app.current_tenant_id', true), '')")
        ).scalar_one() == ""
        for table in ("mt5_user_accounts", "mt5_trade_orders", "mt5_account_balance_history",
                      "mt5_trading_signals", "mt5_signal_executions"):
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
    with Session(engine) as session:  # a plain session: no tenant, no rows
        assert session.scalars(sa.select(TradeOrder)).all() == []
        assert session.scalars(sa.select(BalanceHourly)).all() == []


def test_a_failed_tenant_transaction_leaves_no_tenant_behind(
    pool_of_one: Engine, seeded: dict[str, TenantData]
) -> None:
    with pytest.raises(DBAPIError), tenant(pool_of_one, TENANT_A) as session:
        assert session.scalars(sa.select(UserAccount)).all()
        session.execute(sa.text("SELECT 1 / 0"))
    with pool_of_one.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM mt5_user_accounts")).scalar_one() == 0


def test_a_tenant_cannot_write_into_another_tenants_account(
    app: Engine, seeded: dict[str, TenantData]
) -> None:
    with pytest.raises(DBAPIError), tenant(app, TENANT_B) as session:
        session.add(BalanceHistory(account_id=seeded[TENANT_A].account_id,
                                   balance=Decimal(1), equity=Decimal(1)))


# --------------------------------------------------------------------------- aggregates


def test_aggregates_show_the_sessions_tenant_only(
    app: Engine, seeded: dict[str, TenantData]
) -> None:
    for tenant_id in (TENANT_A, TENANT_B):
        with tenant(app, tenant_id) as session:
            for cls in AGGREGATES:
                rows = session.scalars(sa.select(cls)).all()
                assert rows, cls.__name__
                assert {r.tenant_id for r in rows} == {tenant_id}, cls.__name__
            hours = session.scalars(sa.select(BalanceHourly)).all()
            assert sum(h.samples for h in hours) == seeded[tenant_id].rows[
                "mt5_account_balance_history"]
            minutes = session.scalars(sa.select(QuoteOhlc1m)).all()
            assert sum(m.ticks for m in minutes) == seeded[tenant_id].rows["mt5_broker_quotes"]
            # A bucket's OHLC agrees with the raw quotes it summarises.
            first = minutes[0]
            raw = session.scalars(
                sa.select(BrokerQuote.bid)
                .where(BrokerQuote.account_id == first.account_id,
                       BrokerQuote.symbol == first.symbol,
                       BrokerQuote.time >= first.bucket,
                       BrokerQuote.time < first.bucket + timedelta(minutes=1))
                .order_by(BrokerQuote.time)).all()
            assert (first.bid_open, first.bid_close) == (raw[0], raw[-1])
            assert (first.bid_high, first.bid_low) == (max(raw), min(raw))
            pnl = session.scalars(sa.select(PnlDaily)).all()
            closed = session.scalars(
                sa.select(TradeOrder).where(TradeOrder.status == "closed")).all()
            assert sum(p.trades for p in pnl) == len(closed)
            assert sum(p.profit for p in pnl) == sum(o.profit for o in closed)


def test_aggregates_refuse_writes_in_the_orm(
    app: Engine, seeded: dict[str, TenantData]
) -> None:
    key = {"bucket": sa.func.now(), "tenant_id": TENANT_A,
           "account_id": seeded[TENANT_A].account_id}
    statements = [
        sa.insert(BalanceHourly).values(**key, samples=1),
        sa.update(BalanceHourly).values(samples=0),
        sa.delete(PnlDaily),
    ]
    with tenant_session(app, TENANT_A) as session:
        for statement in statements:
            with pytest.raises(ReadOnlyModelError):
                session.execute(statement)
        hour = session.scalars(sa.select(BalanceHourly)).first()
        assert hour is not None
        hour.samples += 1
        with pytest.raises(ReadOnlyModelError, match="read-only"):
            session.flush()
        session.rollback()
        session.delete(session.scalars(sa.select(BalanceHourly)).first())
        with pytest.raises(ReadOnlyModelError):
            session.flush()
        session.rollback()
        session.add(BalanceHourly(bucket=hour.bucket, tenant_id=TENANT_A,
                                  account_id=uuid.uuid4(), samples=1))
        with pytest.raises(ReadOnlyModelError):
            session.flush()


def test_aggregates_refuse_writes_in_the_database(
    app: Engine, seeded: dict[str, TenantData]
) -> None:
    # Core, around the ORM guards: the database has the last word.
    for cls in AGGREGATES:
        table = cls.__table__
        with pytest.raises(DBAPIError, match=r"permission denied|cannot delete from view"), \
                tenant(app, TENANT_A) as session:
            session.connection().execute(sa.delete(table))
    with app.connect() as conn:
        grants = conn.execute(sa.text(
            "SELECT v, has_table_privilege('mt5_app', v, 'SELECT'), "
            "has_table_privilege('mt5_app', v, 'INSERT, UPDATE, DELETE, TRUNCATE'), "
            "has_table_privilege('mt5_app', a, 'SELECT') "
            "FROM unnest(CAST(:views AS text[]), CAST(:aggs AS text[])) AS x(v, a)"),
            {"views": [c.__tablename__ for c in AGGREGATES],
             "aggs": [c.__aggregate__ for c in AGGREGATES]}).all()
    # Reading the view: yes. Writing it, or reading the aggregate behind it: no.
    assert [tuple(g[1:]) for g in grants] == [(True, False, False)] * len(AGGREGATES)
