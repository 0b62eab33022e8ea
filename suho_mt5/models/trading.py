"""Trading: orders and deals, ML signals, and their executions (the feedback loop).

::

    TradingSignal ──< SignalExecution        (tenant_id, signal_id), no FK (hypertables)
          ▲                  │
          └──── TradeOrder ──┘ closes it      triggers fill the execution's result

Triggers in the database keep the loop closed: an execution report marks its signal
``executed`` (or ``rejected``); a closing order fills the execution's result and sets
``feedback_status = 'pending'``. Objects already loaded do not see those changes until
they are refreshed (``session.refresh(obj)`` or a new query after commit).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    FetchedValue,
    Index,
    Integer,
    PrimaryKeyConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from suho_mt5.models.base import (
    Base,
    BigInt,
    ColumnstoreSpec,
    Confidence,
    Money,
    Price,
    TenantId,
    TextEnum,
    Time,
    Timestamp,
    Uuid,
    account_fk,
    hypertable_options,
    legacy_idempotency_key,
    tenant_time_indexes,
    time_index,
)
from suho_mt5.models.enums import (
    DealEntry,
    DealType,
    FeedbackStatus,
    OrderStatus,
    OrderType,
    SignalAction,
    SignalStatus,
)

if TYPE_CHECKING:
    from suho_mt5.models.accounts import UserAccount

__all__ = ["SignalExecution", "TradeOrder", "TradingSignal"]

_ORDERS = "mt5_trade_orders"
_SIGNALS = "mt5_trading_signals"
_EXECUTIONS = "mt5_signal_executions"


class TradeOrder(Base):
    """One order, deal or position event as the EA reported it; ``status`` is the state
    after the event.

    About 50 rows per account per day, kept 7 years. A row with ``status = 'closed'``
    closes the trade of its ``signal_id`` (or of the execution with its ``ticket`` /
    ``position_id``) and fills that execution's result. No primary key in the database;
    the ORM identity is ``(account_id, ticket, time)``.
    """

    __tablename__ = _ORDERS
    __table_args__ = (
        account_fk(_ORDERS),
        legacy_idempotency_key(_ORDERS),
        time_index(_ORDERS),
        *tenant_time_indexes(_ORDERS),
        Index("mt5_trade_orders_ticket_idx", "tenant_id", "account_id", "ticket",
              text("time DESC")),
        Index("mt5_trade_orders_position_id_idx", "tenant_id", "account_id", "position_id",
              postgresql_where=text("position_id IS NOT NULL")),
        Index("mt5_trade_orders_signal_id_idx", "tenant_id", "signal_id",
              postgresql_where=text("signal_id IS NOT NULL")),
        Index("mt5_trade_orders_closed_idx", "tenant_id", text("time DESC"),
              postgresql_where=text("status = 'closed'")),
        hypertable_options("30 days", 2, columnstore=ColumnstoreSpec(
            ("tenant_id", "account_id"), "time DESC", "30 days",
            "bloom(signal_id), minmax(ticket), minmax(position_id)")),
    )
    __mapper_args__ = {"primary_key": ["account_id", "ticket", "time"]}  # noqa: RUF012

    time: Mapped[Time]
    tenant_id: Mapped[TenantId]
    account_id: Mapped[Uuid]
    ticket: Mapped[BigInt]
    position_id: Mapped[BigInt | None]
    symbol: Mapped[str]
    order_type: Mapped[OrderType] = mapped_column(TextEnum(OrderType))
    deal_type: Mapped[DealType | None] = mapped_column(TextEnum(DealType))
    deal_entry: Mapped[DealEntry | None] = mapped_column(TextEnum(DealEntry))
    volume: Mapped[Price]
    price: Mapped[Price]
    stop_loss: Mapped[Price | None]
    take_profit: Mapped[Price | None]
    profit: Mapped[Money] = mapped_column(server_default="0")
    commission: Mapped[Money] = mapped_column(server_default="0")
    swap: Mapped[Money] = mapped_column(server_default="0")
    fee: Mapped[Money] = mapped_column(server_default="0")
    profit_pips: Mapped[Price | None]
    status: Mapped[OrderStatus] = mapped_column(TextEnum(OrderStatus))
    magic_number: Mapped[BigInt | None]
    comment: Mapped[str | None]
    signal_id: Mapped[Uuid | None]
    sequence: Mapped[BigInt | None]

    account: Mapped[UserAccount] = relationship(back_populates="orders")
    #: The signal this order executes, if any. No foreign key (both are hypertables):
    #: assigning a signal sets ``signal_id``; the tenant is the order's own.
    signal: Mapped[TradingSignal | None] = relationship(
        primaryjoin="and_(remote(TradingSignal.tenant_id) == TradeOrder.tenant_id, "
        "remote(TradingSignal.signal_id) == foreign(TradeOrder.signal_id))",
    )


class TradingSignal(Base):
    """A trading instruction generated from an ML prediction for one account.

    Prices are already adjusted for the account's broker (``broker_adjustment`` = broker
    mid - Polygon mid); ``polygon_bid``/``polygon_ask`` are the market quote the model saw.
    The status moves ``pending`` → ``sent`` (the publisher) → ``executed``/``rejected`` (a
    trigger, when the execution report arrives). About 20 rows per account per day, kept
    90 days. ``signal_id`` is generated in Python at the flush (no ``RETURNING`` needed). The ORM
    identity is ``(signal_id, time)``, the primary key without ``tenant_id``.
    """

    __tablename__ = _SIGNALS
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "signal_id", "time", name="mt5_trading_signals_pkey"),
        account_fk(_SIGNALS),
        time_index(_SIGNALS),
        *tenant_time_indexes(_SIGNALS),
        Index("mt5_trading_signals_open_idx", "tenant_id", "account_id", "time",
              postgresql_where=text("status IN ('pending', 'sent')")),
        hypertable_options("7 days", 2, columnstore=ColumnstoreSpec(
            ("tenant_id", "account_id"), "time DESC", "7 days", "bloom(signal_id)")),
    )
    __mapper_args__ = {"primary_key": ["signal_id", "time"]}  # noqa: RUF012

    time: Mapped[Time]
    signal_id: Mapped[Uuid] = mapped_column(
        default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    tenant_id: Mapped[TenantId]
    account_id: Mapped[Uuid]
    symbol: Mapped[str]
    action: Mapped[SignalAction] = mapped_column(TextEnum(SignalAction))
    entry_price: Mapped[Price | None]
    stop_loss: Mapped[Price | None]
    take_profit: Mapped[Price | None]
    volume: Mapped[Price | None]
    expires_at: Mapped[Timestamp | None]
    confidence_score: Mapped[Confidence | None]
    model_version: Mapped[str | None]
    strategy_name: Mapped[str | None]
    polygon_bid: Mapped[Price | None]
    polygon_ask: Mapped[Price | None]
    broker_adjustment: Mapped[Price | None]
    magic_number: Mapped[BigInt | None]
    status: Mapped[SignalStatus] = mapped_column(
        TextEnum(SignalStatus), server_default="pending"
    )
    sent_at: Mapped[Timestamp | None]
    executed_at: Mapped[Timestamp | None]

    account: Mapped[UserAccount] = relationship(back_populates="signals")
    #: Execution reports of this signal, oldest first (no foreign key: hypertables).
    executions: Mapped[list[SignalExecution]] = relationship(
        primaryjoin="and_(TradingSignal.tenant_id == foreign(SignalExecution.tenant_id), "
        "TradingSignal.signal_id == foreign(SignalExecution.signal_id))",
        order_by="SignalExecution.time",
        viewonly=True,
    )


class SignalExecution(Base):
    """The EA's report of how it executed a signal, and later the trade's result.

    The execution columns come from the EA (fill price, slippage, MQL5 ``result_code``,
    spread and volatility at execution, latency). The result columns (``trade_closed``,
    ``close_price``, ``closed_at``, ``profit``, ``profit_pips``) are filled by a trigger
    when the closing order arrives, and ``feedback_status`` becomes ``pending``: the row is
    then ready for the ML feedback query. About 20 rows per account per day, kept 2 years.
    The ORM identity is ``(signal_id, time)``.
    """

    __tablename__ = _EXECUTIONS
    __table_args__ = (
        account_fk(_EXECUTIONS),
        legacy_idempotency_key(_EXECUTIONS),
        time_index(_EXECUTIONS),
        *tenant_time_indexes(_EXECUTIONS),
        Index("mt5_signal_executions_signal_id_idx", "tenant_id", "signal_id"),
        Index("mt5_signal_executions_ticket_idx", "tenant_id", "account_id", "ticket",
              postgresql_where=text("ticket > 0")),
        Index("mt5_signal_executions_feedback_idx", "tenant_id", text("time DESC"),
              postgresql_where=text("feedback_status = 'pending'")),
        hypertable_options("30 days", 2),
    )
    __mapper_args__ = {"primary_key": ["signal_id", "time"]}  # noqa: RUF012

    time: Mapped[Time]
    tenant_id: Mapped[TenantId]
    account_id: Mapped[Uuid]
    signal_id: Mapped[Uuid]
    ticket: Mapped[BigInt | None]
    actual_entry_price: Mapped[Price | None]
    slippage: Mapped[Price | None]
    executed_volume: Mapped[Price | None]
    result_code: Mapped[int | None] = mapped_column(Integer)
    spread_at_execution: Mapped[Price | None]
    market_volatility: Mapped[Price | None]
    execution_latency_ms: Mapped[int | None] = mapped_column(Integer)
    # The result columns may be set by the BEFORE INSERT trigger (a close that arrived
    # first): FetchedValue makes the ORM read them back instead of trusting its own None.
    trade_closed: Mapped[bool] = mapped_column(Boolean, server_default=false())
    close_price: Mapped[Price | None] = mapped_column(server_default=FetchedValue())
    closed_at: Mapped[Timestamp | None] = mapped_column(server_default=FetchedValue())
    profit: Mapped[Money | None] = mapped_column(server_default=FetchedValue())
    profit_pips: Mapped[Price | None] = mapped_column(server_default=FetchedValue())
    feedback_status: Mapped[FeedbackStatus] = mapped_column(
        TextEnum(FeedbackStatus), server_default="awaiting_close"
    )
    feedback_processed_at: Mapped[Timestamp | None]
    sequence: Mapped[BigInt | None]

    account: Mapped[UserAccount] = relationship(back_populates="executions")
    #: The signal executed. No foreign key (both are hypertables; a trigger checks the
    #: signal exists): the join is declared here, so assigning a signal sets ``signal_id``
    #: and the ORM inserts signals before the executions that report them.
    signal: Mapped[TradingSignal | None] = relationship(
        primaryjoin="and_(remote(TradingSignal.tenant_id) == SignalExecution.tenant_id, "
        "remote(TradingSignal.signal_id) == foreign(SignalExecution.signal_id))",
    )
