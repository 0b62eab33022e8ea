"""CRUD through the models as the application role, on every table; every enum value
round-trips; new rows take the session's tenant.

Run on every engine by the ``backend`` fixture (``tests/db/conftest.py``). Each test
works in its own tenant, so they do not see each other's rows.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from suho_mt5.db import tenant_session
from suho_mt5.errors import TenantError
from suho_mt5.models import (
    AccountType,
    AuditEvent,
    BalanceHistory,
    Base,
    BrokerQuote,
    CatalogKind,
    ComplianceReport,
    ConsentType,
    DealEntry,
    DealType,
    FeedbackStatus,
    Heartbeat,
    HeartbeatStatus,
    OrderStatus,
    OrderType,
    ReportStatus,
    ReportType,
    RiskEvent,
    RiskSeverity,
    SignalAction,
    SignalExecution,
    SignalStatus,
    TextEnum,
    TimeseriesCatalogEntry,
    TradeOrder,
    TradingSignal,
    UserAccount,
    UserConsent,
    metadata,
)
from tests.db.models._support import role_engine, tenant
from tests.db.schema._support import Schema
from tests.typing_example.models_usage import open_account

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def new_tenant() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def compliance(db: Schema) -> Iterator[Engine]:
    engine = role_engine(db.url, "mt5_compliance")
    try:
        yield engine
    finally:
        engine.dispose()


def _account(app: Engine, tenant_id: str) -> uuid.UUID:
    with tenant(app, tenant_id) as session:
        account = open_account(session, user_id="user_1", broker_server="ICMarkets-Demo",
                               login=int(uuid.uuid4().int % 10**9) + 1)
        return account.account_id


# One valid row per time-series / tenant model, given an account and a signal.
def _rows(account_id: uuid.UUID, signal_id: uuid.UUID, i: int) -> dict[type[Base], Base]:
    t = T0 + timedelta(minutes=i)
    return {
        BalanceHistory: BalanceHistory(
            time=t, account_id=account_id, balance=Decimal("10000.1234"),
            equity=Decimal("10010.5000"), margin=Decimal("12.5"), free_margin=Decimal("9998"),
            margin_level=Decimal("80084.0000"), credit=Decimal("0"), leverage=500,
            currency="USD", sequence=i),
        BrokerQuote: BrokerQuote(
            time=t, account_id=account_id, symbol="EURUSD", bid=Decimal("1.09530000"),
            ask=Decimal("1.09545000"), last=Decimal("1.09537"), volume=Decimal("2.5"),
            spread_points=15, polygon_bid=Decimal("1.0953"), polygon_ask=Decimal("1.0954"),
            price_deviation=Decimal("0.25"), sequence=i),
        Heartbeat: Heartbeat(
            time=t, account_id=account_id, status=HeartbeatStatus.ONLINE, ea_version="1.0.0",
            terminal_build=4410, terminal_connected=True, trade_allowed=True, ping_ms=12,
            sequence=i),
        TradingSignal: TradingSignal(
            time=t - timedelta(seconds=30), signal_id=signal_id, account_id=account_id,
            symbol="EURUSD", action=SignalAction.BUY, entry_price=Decimal("1.0953"),
            stop_loss=Decimal("1.0932"), take_profit=Decimal("1.0982"), volume=Decimal("0.1"),
            expires_at=t + timedelta(hours=1), confidence_score=Decimal("0.8500"),
            model_version="v1", strategy_name="trend", polygon_bid=Decimal("1.0952"),
            polygon_ask=Decimal("1.0953"), broker_adjustment=Decimal("0.00002"),
            magic_number=42),
        SignalExecution: SignalExecution(
            time=t, account_id=account_id, signal_id=signal_id, ticket=9000 + i,
            actual_entry_price=Decimal("1.09535"), slippage=Decimal("0.00005"),
            executed_volume=Decimal("0.1"), result_code=10009,
            spread_at_execution=Decimal("0.00015"), market_volatility=Decimal("0.0042"),
            execution_latency_ms=35, sequence=i),
        TradeOrder: TradeOrder(
            time=t + timedelta(seconds=5), account_id=account_id, ticket=7000 + i,
            position_id=7000 + i, symbol="EURUSD", order_type=OrderType.BUY,
            deal_type=DealType.BUY, deal_entry=DealEntry.IN, volume=Decimal("0.1"),
            price=Decimal("1.0954"), stop_loss=Decimal("1.0932"),
            take_profit=Decimal("1.0982"), status=OrderStatus.OPEN, magic_number=42,
            comment="from signal", signal_id=signal_id, sequence=i),
        RiskEvent: RiskEvent(
            time=t, account_id=account_id, event_type="drawdown_limit",
            severity=RiskSeverity.WARNING, details={"drawdown": 0.05},
            threshold=Decimal("0.05"), observed_value=Decimal("0.051"), sequence=i),
        UserConsent: UserConsent(
            user_id="user_1", account_id=account_id, consent_type=ConsentType.ML_TRAINING,
            granted=True, granted_at=t, policy_version="2026-01", source="web"),
        AuditEvent: AuditEvent(
            time=t, event_type="account.created", account_id=account_id,
            payload={"by": "test"}),
    }


def _columns(obj: Base) -> dict[str, Any]:
    table = obj.__table__  # type: ignore[attr-defined]
    return {c.key: getattr(obj, c.key) for c in table.columns}


def test_crud_through_the_models_as_the_application_role(app: Engine) -> None:
    tenant_id = new_tenant()
    account_id = _account(app, tenant_id)
    signal_id = uuid.uuid4()
    written = _rows(account_id, signal_id, 1)

    expected = {cls: _columns(obj) for cls, obj in written.items() if cls is not AuditEvent}
    # Create: every tenant table the application writes.
    with tenant(app, tenant_id) as session:
        session.add_all(written.values())

    # Read back in a new session: every written column as written, tenant filled in.
    with tenant(app, tenant_id) as session:
        for cls, values in expected.items():
            (row,) = session.scalars(sa.select(cls)).all()
            read = _columns(row)
            assert read["tenant_id"] == tenant_id
            assert {k: read[k] for k, v in values.items() if v is not None} == {
                k: v for k, v in values.items() if v is not None}, cls.__name__
        account = session.get_one(UserAccount, account_id)
        assert account.tenant_id == tenant_id
        assert account.account_type is AccountType.DEMO
        # Relationships: account -> time series (write-only), signal <-> executions.
        assert session.scalars(account.orders.select()).one().ticket == 7001
        assert len(session.scalars(account.balances.select()).all()) == 1
        assert session.scalars(account.heartbeats.select()).one().ping_ms == 12
        signal = session.scalars(sa.select(TradingSignal)).one()
        assert [e.ticket for e in signal.executions] == [9001]
        assert signal.executions[0].signal is signal
        assert session.scalars(sa.select(TradeOrder)).one().signal is signal
        # The execution report's trigger marked the signal executed.
        assert signal.status is SignalStatus.EXECUTED
        assert [c.consent_type for c in account.consents] == [ConsentType.ML_TRAINING]

    # Update what the application may update.
    with tenant(app, tenant_id) as session:
        account = session.get_one(UserAccount, account_id)
        before = account.updated_at
        account.leverage = 100
        session.flush()
        assert account.updated_at >= before  # the trigger's value, read back
        order = session.scalars(sa.select(TradeOrder)).one()
        order.status = OrderStatus.CLOSED
        order.profit = Decimal("12.3400")
        risk = session.scalars(sa.select(RiskEvent)).one()
        risk.acknowledge("ops@tenant", at=T0 + timedelta(hours=1))
        consent = session.scalars(sa.select(UserConsent)).one()
        consent.revoked_at = T0 + timedelta(days=1)
    with tenant(app, tenant_id) as session:
        assert session.get_one(UserAccount, account_id).leverage == 100
        assert session.scalars(sa.select(RiskEvent)).one().acknowledged_by == "ops@tenant"
        # Closing the order closed the execution (trigger): ready for ML feedback.
        execution = session.scalars(sa.select(SignalExecution)).one()
        assert execution.trade_closed
        assert execution.profit == Decimal("12.3400")
        assert execution.feedback_status is FeedbackStatus.PENDING

    # Delete: an account without history can go; one with history cannot (foreign keys).
    spare = _account(app, tenant_id)
    with tenant(app, tenant_id) as session:
        session.delete(session.get_one(UserAccount, spare))
    with tenant(app, tenant_id) as session:
        assert session.get(UserAccount, spare) is None
    with pytest.raises(DBAPIError, match="foreign key"), tenant(app, tenant_id) as session:
        session.delete(session.get_one(UserAccount, account_id))


def test_what_the_application_role_may_not_do_is_refused(app: Engine) -> None:
    tenant_id = new_tenant()
    account_id = _account(app, tenant_id)
    with tenant(app, tenant_id) as session:
        session.add_all(_rows(account_id, uuid.uuid4(), 2).values())
    refused: list[Callable[[Session], object]] = [
        lambda s: s.execute(sa.update(BalanceHistory).values(balance=1)),  # no UPDATE
        lambda s: s.execute(sa.delete(TradeOrder)),  # no DELETE
        lambda s: s.execute(sa.select(AuditEvent)),  # insert-only
        lambda s: s.execute(sa.update(AuditEvent).values(actor="x")),
        lambda s: s.add(ComplianceReport(
            report_type=ReportType.RISK_SUMMARY, report_period_start=T0,
            report_period_end=T0 + timedelta(days=1), report_data={})),
        lambda s: s.execute(sa.update(TimeseriesCatalogEntry).values(retention=None)),
    ]
    for action in refused:
        with pytest.raises(DBAPIError, match="permission denied"), \
                tenant(app, tenant_id) as session:
            action(session)
            session.flush()


def test_compliance_reports_are_written_by_the_compliance_role(
    app: Engine, compliance: Engine
) -> None:
    tenant_id = new_tenant()
    with Session(compliance) as session, session.begin():
        report = ComplianceReport(
            tenant_id=tenant_id, report_type=ReportType.MONTHLY_TRADING,
            report_period_start=T0, report_period_end=T0 + timedelta(days=30),
            report_data={"total_trades": 3, "total_profit": "12.34"})
        session.add(report)
        session.flush()
        assert report.status is ReportStatus.FINAL
        # Whoever wrote it: the compliance login (a member of mt5_compliance) on a native
        # server, the role itself where it is switched to with SET ROLE (PGlite).
        assert report.generated_by == session.scalar(sa.text("SELECT current_user"))
        assert session.scalar(sa.text("SELECT pg_has_role(current_user, 'mt5_compliance', "
                                      "'MEMBER')"))
    with tenant(app, tenant_id) as session:
        (read,) = session.scalars(sa.select(ComplianceReport)).all()
        assert read.report_data == {"total_trades": 3, "total_profit": "12.34"}
        assert read.report_period_end - read.report_period_start == timedelta(days=30)
    with tenant(app, new_tenant()) as session:
        assert session.scalars(sa.select(ComplianceReport)).all() == []


def test_the_audit_log_is_written_without_reading_and_chained_by_the_database(
    app: Engine, compliance: Engine
) -> None:
    tenant_id = new_tenant()
    with tenant(app, tenant_id) as session:
        events = [AuditEvent(event_type="signal.generated", payload={"n": n}) for n in (1, 2)]
        session.add_all(events)
        session.flush()  # no RETURNING: mt5_app may not read the audit log
        ids = [e.event_id for e in events]
    with Session(compliance) as session:
        chain = session.scalars(
            sa.select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
            .order_by(AuditEvent.chain_seq)).all()
        assert [e.chain_seq for e in chain] == [1, 2]
        assert chain[0].prev_hash == "0" * 64
        assert chain[1].prev_hash == chain[0].row_hash
        assert [e.event_id for e in chain] == ids
        actors = {e.actor for e in chain}
    with app.connect() as conn:  # the app's login on a native server, else the role
        assert actors == {conn.execute(sa.text("SELECT current_user")).scalar_one()}


# --------------------------------------------------------------------------- enums


def _enum_columns() -> list[tuple[type[Base], str, type[enum.Enum]]]:
    mapped = {m.local_table: m.class_ for m in Base.registry.mappers}
    return [
        (mapped[table], column.key, column.type.enum_class)
        for table in metadata.sorted_tables
        for column in table.columns
        # Neither internal table is written through a tenant session.
        if isinstance(column.type, TextEnum)
        and table.name not in ("mt5_timeseries_catalog", "mt5_ingest_dead_letters")
    ]


def test_every_enum_value_round_trips(app: Engine, compliance: Engine) -> None:
    tenant_id = new_tenant()
    account_id = _account(app, tenant_id)
    written: dict[tuple[str, str], list[enum.Enum]] = {}
    cases = _enum_columns()
    assert len(cases) == 14  # 13, and mt5_user_accounts.margin_mode (revision 0010)
    with tenant(app, tenant_id) as session:
        n = 100
        for cls, key, enum_class in cases:
            if cls is ComplianceReport:
                continue
            for member in enum_class:
                n += 1
                signal_id = uuid.uuid4()
                rows = _rows(account_id, signal_id, n)
                if cls is SignalExecution:
                    session.add(rows[TradingSignal])
                    row = rows[SignalExecution]
                    # Results can only be pending or trained on once the trade closed.
                    row.trade_closed, row.closed_at = True, row.time
                    if member in (FeedbackStatus.INCLUDED_IN_TRAINING,
                                  FeedbackStatus.EXCLUDED):
                        row.feedback_processed_at = row.time
                elif cls is UserAccount:
                    row = UserAccount(user_id="u", broker_name="B", broker_server="B-1",
                                      mt5_login=n, mt5_account_number=str(n),
                                      account_type=AccountType.DEMO)
                else:
                    row = rows[cls]
                if cls is TradingSignal and member in (SignalAction.SELL,):
                    row.stop_loss, row.take_profit = row.take_profit, row.stop_loss
                setattr(row, key, member)
                session.add(row)
                written.setdefault((cls.__name__, key), []).append(member)
            session.flush()
    with Session(compliance) as session, session.begin():
        for key, enum_class in (("report_type", ReportType), ("status", ReportStatus)):
            for n, member in enumerate(enum_class):
                # One live report per tenant, type and period: each its own period.
                start = T0 + timedelta(days=n + 1 if key == "status" else 0)
                report = ComplianceReport(
                    tenant_id=tenant_id, report_type=ReportType.RISK_SUMMARY,
                    report_period_start=start, report_period_end=start + timedelta(days=1),
                    report_data={})
                setattr(report, key, member)
                session.add(report)
                written.setdefault(("ComplianceReport", key), []).append(member)

    with tenant(app, tenant_id) as session:
        for cls, key, enum_class in cases:
            column = getattr(cls, key)
            read = session.scalars(sa.select(column).distinct()).all()
            # (NULL where the column is nullable and a row left it unset: margin_mode)
            assert all(type(value) is enum_class for value in read if value is not None), (
                cls, key)
            assert set(read) >= set(written[(cls.__name__, key)]), (cls, key)
            assert set(written[(cls.__name__, key)]) == set(enum_class), (cls, key)
            # Raw text in the database is the enum's value.
            raw = session.execute(sa.text(
                f"SELECT DISTINCT CAST({column.expression.name} AS text) "  # type: ignore[attr-defined]
                f"FROM {cls.__tablename__}")).scalars().all()  # type: ignore[attr-defined]
            assert set(raw) >= {m.value for m in written[(cls.__name__, key)]}


def test_the_catalog_kinds_read_back_as_enums(app: Engine) -> None:
    with tenant(app, new_tenant()) as session:
        kinds = set(session.scalars(sa.select(TimeseriesCatalogEntry.kind)))
    assert kinds == set(CatalogKind)


def test_an_unknown_enum_value_is_refused_in_python(app: Engine) -> None:
    tenant_id = new_tenant()
    with pytest.raises(sa.exc.StatementError, match="is not a valid OrderStatus"), \
            tenant(app, tenant_id) as session:
        session.execute(sa.select(TradeOrder).where(TradeOrder.status == "shipped"))


# --------------------------------------------------------------------------- tenant fill


def test_new_rows_take_the_sessions_tenant(app: Engine) -> None:
    tenant_id = new_tenant()
    account_id = _account(app, tenant_id)
    with tenant(app, tenant_id) as session:
        event = RiskEvent(account_id=account_id, event_type="margin_call",
                          severity=RiskSeverity.HIGH, time=T0)
        session.add(event)
        session.flush()
        assert event.tenant_id == tenant_id
        assert event.details == {}  # the server default, read back


def test_a_row_of_another_tenant_is_refused_before_the_database(app: Engine) -> None:
    tenant_id = new_tenant()
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(app, "before_cursor_execute", record)
    try:
        with tenant_session(app, tenant_id) as session:
            session.add(UserAccount(tenant_id="someone_else", user_id="u", broker_name="B",
                                    broker_server="B-1", mt5_login=1,
                                    mt5_account_number="1", account_type=AccountType.REAL))
            with pytest.raises(TenantError, match="someone_else"):
                session.flush()
    finally:
        sa.event.remove(app, "before_cursor_execute", record)
    assert not any("INSERT" in s for s in statements)
