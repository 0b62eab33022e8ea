"""Account and market time series: balance history, broker quotes, EA heartbeats.

Hypertables (time + hash(tenant) dimensions) on TimescaleDB, plain tables with the same
indexes on PostgreSQL. They have no primary key in the database; the ORM identity of a row
is its idempotency key ``(account_id, [symbol,] time, sequence)``. Tenant roles may read
and insert them, not change them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, Integer
from sqlalchemy.orm import Mapped, mapped_column, relationship

from suho_mt5.models.base import (
    Base,
    BigInt,
    ColumnstoreSpec,
    Money,
    Percent,
    Price,
    TenantId,
    TextEnum,
    Time,
    Uuid,
    account_fk,
    hypertable_options,
    idempotency_key,
    time_index,
)
from suho_mt5.models.enums import HeartbeatStatus

if TYPE_CHECKING:
    from suho_mt5.models.accounts import UserAccount

__all__ = ["BalanceHistory", "BrokerQuote", "Heartbeat"]

_BALANCE = "mt5_account_balance_history"
_QUOTES = "mt5_broker_quotes"
_HEARTBEAT = "mt5_ea_heartbeat"


class BalanceHistory(Base):
    """A snapshot of an account's balance, equity and margin as the EA reported it.

    About 2,880 rows per account per day (one every 30 s), kept 2 years. ``sequence`` is
    the EA's packet sequence: with account and time, the key that makes redelivered
    packets harmless. ``margin_level`` is 0 when no margin is in use.
    """

    __tablename__ = _BALANCE
    __table_args__ = (
        account_fk(_BALANCE),
        idempotency_key(_BALANCE),
        time_index(_BALANCE),
        hypertable_options("7 days", 4, columnstore=ColumnstoreSpec(
            ("tenant_id", "account_id"), "time DESC", "2 days", "minmax(sequence)")),
    )
    __mapper_args__ = {"primary_key": ["account_id", "time", "sequence"]}  # noqa: RUF012

    time: Mapped[Time]
    tenant_id: Mapped[TenantId]
    account_id: Mapped[Uuid]
    balance: Mapped[Money]
    equity: Mapped[Money]
    margin: Mapped[Money] = mapped_column(server_default="0")
    free_margin: Mapped[Money | None]
    margin_level: Mapped[Percent | None]
    credit: Mapped[Money] = mapped_column(server_default="0")
    leverage: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str | None]
    sequence: Mapped[BigInt | None]

    account: Mapped[UserAccount] = relationship(back_populates="balances")


class BrokerQuote(Base):
    """A bid/ask quote of one symbol at the user's broker, with the Polygon market quote of
    the same moment when reconciliation has matched one.

    ``price_deviation`` is broker mid - Polygon mid in pips, filled by reconciliation.
    About 86,400 rows per symbol per day, kept 90 days.
    """

    __tablename__ = _QUOTES
    __table_args__ = (
        account_fk(_QUOTES),
        idempotency_key(_QUOTES, by=("symbol",)),
        time_index(_QUOTES),
        hypertable_options("1 day", 4, columnstore=ColumnstoreSpec(
            ("tenant_id", "account_id", "symbol"), "time DESC", "2 days", "minmax(sequence)")),
    )
    __mapper_args__ = {  # noqa: RUF012
        "primary_key": ["account_id", "symbol", "time", "sequence"]
    }

    time: Mapped[Time]
    tenant_id: Mapped[TenantId]
    account_id: Mapped[Uuid]
    symbol: Mapped[str]
    bid: Mapped[Price]
    ask: Mapped[Price]
    last: Mapped[Price | None]
    volume: Mapped[Price | None]
    spread_points: Mapped[int | None] = mapped_column(Integer)
    polygon_bid: Mapped[Price | None]
    polygon_ask: Mapped[Price | None]
    price_deviation: Mapped[Price | None]
    sequence: Mapped[BigInt | None]

    account: Mapped[UserAccount] = relationship(back_populates="quotes")

    @property
    def mid(self) -> Decimal:
        """``(bid + ask) / 2``."""
        return (self.bid + self.ask) / 2


class Heartbeat(Base):
    """The EA's periodic sign of life: status, versions, terminal state and latency.

    About 2,880 rows per account per day, kept 30 days. The latest row per account is the
    EA's current status (the seed's connectivity query).
    """

    __tablename__ = _HEARTBEAT
    __table_args__ = (
        account_fk(_HEARTBEAT),
        idempotency_key(_HEARTBEAT),
        time_index(_HEARTBEAT),
        hypertable_options("1 day", 4, columnstore=ColumnstoreSpec(
            ("tenant_id", "account_id"), "time DESC", "2 days", "minmax(sequence)")),
    )
    __mapper_args__ = {"primary_key": ["account_id", "time", "sequence"]}  # noqa: RUF012

    time: Mapped[Time]
    tenant_id: Mapped[TenantId]
    account_id: Mapped[Uuid]
    status: Mapped[HeartbeatStatus] = mapped_column(TextEnum(HeartbeatStatus))
    ea_version: Mapped[str | None]
    terminal_build: Mapped[int | None] = mapped_column(Integer)
    terminal_connected: Mapped[bool | None] = mapped_column(Boolean)
    trade_allowed: Mapped[bool | None] = mapped_column(Boolean)
    ping_ms: Mapped[int | None] = mapped_column(Integer)
    sequence: Mapped[BigInt | None]

    account: Mapped[UserAccount] = relationship(back_populates="heartbeats")
