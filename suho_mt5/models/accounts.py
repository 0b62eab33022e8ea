"""``mt5_user_accounts``: the MT5 trading accounts, anchor of every tenant's data."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    Boolean,
    FetchedValue,
    Index,
    Integer,
    PrimaryKeyConstraint,
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import Mapped, WriteOnlyMapped, mapped_column, relationship

from suho_mt5.models.base import Base, TenantId, TextEnum, Uuid
from suho_mt5.models.enums import AccountType, MarginMode

if TYPE_CHECKING:
    from suho_mt5.models.compliance import RiskEvent, UserConsent
    from suho_mt5.models.market import BalanceHistory, BrokerQuote, Heartbeat
    from suho_mt5.models.trading import SignalExecution, TradeOrder, TradingSignal

__all__ = ["UserAccount"]



class UserAccount(Base):
    """One MT5 trading account of one user of one tenant.

    Every other tenant table points at an account through ``(tenant_id, account_id)``, so a
    row can only reference an account of its own tenant. ``api_key_hash`` holds the
    bcrypt (or PBKDF2) hash of the EA's API key, never the key: set it with the
    ``hash_api_key()`` SQL function and check keys with :func:`suho_mt5.db.authenticate`.
    ``updated_at`` is maintained by a trigger.

    Time-series collections can hold millions of rows, so they are write-only
    (:class:`~sqlalchemy.orm.WriteOnlyCollection`: ``.select()`` gives a query to filter,
    ``.add()`` appends) and the ORM never loads or nulls them. An account with history
    cannot be deleted (the foreign keys refuse); GDPR erasure pseudonymises instead.
    """

    __tablename__ = "mt5_user_accounts"
    __table_args__ = (
        PrimaryKeyConstraint("account_id", name="mt5_user_accounts_pkey"),
        UniqueConstraint("tenant_id", "account_id", name="mt5_user_accounts_tenant_account_key"),
        UniqueConstraint(
            "tenant_id", "broker_server", "mt5_login", name="mt5_user_accounts_login_key"
        ),
        Index("mt5_user_accounts_tenant_id_user_id_idx", "tenant_id", "user_id"),
    )

    account_id: Mapped[Uuid] = mapped_column(
        default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    tenant_id: Mapped[TenantId]
    user_id: Mapped[str]
    broker_name: Mapped[str]
    broker_server: Mapped[str]
    mt5_login: Mapped[int] = mapped_column(BigInteger)
    mt5_account_number: Mapped[str]
    account_type: Mapped[AccountType] = mapped_column(TextEnum(AccountType))
    api_key_hash: Mapped[str | None]
    currency: Mapped[str] = mapped_column(server_default="USD")
    leverage: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    #: Netting, exchange or hedging (MQL5 ``ACCOUNT_MARGIN_MODE``); NULL while unknown.
    margin_mode: Mapped[MarginMode | None] = mapped_column(TextEnum(MarginMode))
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    #: Set by a trigger on every UPDATE (the ORM reads it back after a flush).
    updated_at: Mapped[datetime] = mapped_column(
        server_default=text("now()"), server_onupdate=FetchedValue()
    )

    balances: WriteOnlyMapped[BalanceHistory] = relationship(
        back_populates="account", lazy="write_only", passive_deletes=True
    )
    quotes: WriteOnlyMapped[BrokerQuote] = relationship(
        back_populates="account", lazy="write_only", passive_deletes=True
    )
    heartbeats: WriteOnlyMapped[Heartbeat] = relationship(
        back_populates="account", lazy="write_only", passive_deletes=True
    )
    orders: WriteOnlyMapped[TradeOrder] = relationship(
        back_populates="account", lazy="write_only", passive_deletes=True
    )
    signals: WriteOnlyMapped[TradingSignal] = relationship(
        back_populates="account", lazy="write_only", passive_deletes=True
    )
    executions: WriteOnlyMapped[SignalExecution] = relationship(
        back_populates="account", lazy="write_only", passive_deletes=True
    )
    risk_events: WriteOnlyMapped[RiskEvent] = relationship(
        back_populates="account", lazy="write_only", passive_deletes=True
    )
    consents: Mapped[list[UserConsent]] = relationship(
        back_populates="account", passive_deletes=True
    )

    def __repr__(self) -> str:
        return (
            f"UserAccount(account_id={self.account_id!s}, tenant_id={self.tenant_id!r}, "
            f"broker_server={self.broker_server!r}, mt5_login={self.mt5_login!r})"
        )
