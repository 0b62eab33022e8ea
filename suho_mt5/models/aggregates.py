"""Read-only classes over the aggregates' tenant views.

Each aggregate (a continuous aggregate on TimescaleDB, a materialized view elsewhere) is
closed to tenant roles: it has no row-level security of its own (docs/schema.md, trap 2). These
classes map the ``security_barrier`` views that keep the current tenant's rows, so a
:class:`~suho_mt5.db.TenantSession` reads its own tenant's figures only.

Writing through them is impossible: the ORM refuses new, changed or deleted instances and
ORM ``insert()``/``update()``/``delete()`` statements with :class:`ReadOnlyModelError`
before anything is sent, and the database grants tenant roles nothing but SELECT on the
views (and the views are not updatable anyway).

On TimescaleDB the minute bars are real time (the newest buckets are computed from the raw
rows at query time) and the others materialized only: they show what their refresh policy
last materialized (docs/schema.md, "Aggregates"). Elsewhere every view shows what
``mt5_maintain()`` last refreshed. Hourly and daily bars are built on the finer bars, the
weekly P&L on the daily one (hierarchical aggregates).
The natural key ``(bucket, tenant_id, account_id[, symbol])`` is the mapped primary key;
the views have none.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import BigInteger, DateTime, MetaData, Numeric, event
from sqlalchemy.orm import (
    Mapped,
    Mapper,
    ORMExecuteState,
    Session,
    UOWTransaction,
    mapped_column,
)

from suho_mt5.errors import ReadOnlyModelError
from suho_mt5.models.base import Base, Uuid, view_metadata

__all__ = [
    "BalanceHourly",
    "PnlDaily",
    "PnlWeekly",
    "QuoteOhlc1d",
    "QuoteOhlc1h",
    "QuoteOhlc1m",
    "ReadOnlyModelError",
    "ReadOnlyView",
]


class ReadOnlyView(Base):
    """Base of the read-only classes: mapped over views in :data:`view_metadata`."""

    __abstract__ = True
    metadata: ClassVar[MetaData] = view_metadata

    #: The aggregate behind the tenant view (closed to tenant roles).
    __aggregate__: ClassVar[str]
    #: Bucket width of the aggregate.
    __bucket_width__: ClassVar[str]


# Numbers aggregated by the database come back as plain numeric (no precision).
_Sum = Numeric()


def _bucket() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), primary_key=True)


class BalanceHourly(ReadOnlyView):
    """Hourly OHLC of an account's balance and equity (the seed's "last 24 h balance").

    ``margin_level_min`` is the lowest margin level while margin was in use (None if it
    never was); ``samples`` the number of balance snapshots in the hour.
    """

    __tablename__ = "mt5_balance_hourly"
    __table_args__ = {"info": {"is_view": True}}  # noqa: RUF012
    __aggregate__ = "mt5_agg_balance_hourly"
    __bucket_width__ = "1 hour"

    bucket: Mapped[datetime] = _bucket()
    tenant_id: Mapped[str] = mapped_column(primary_key=True)
    account_id: Mapped[Uuid] = mapped_column(primary_key=True)
    balance_open: Mapped[Decimal] = mapped_column(_Sum)
    balance_high: Mapped[Decimal] = mapped_column(_Sum)
    balance_low: Mapped[Decimal] = mapped_column(_Sum)
    balance_close: Mapped[Decimal] = mapped_column(_Sum)
    equity_open: Mapped[Decimal] = mapped_column(_Sum)
    equity_high: Mapped[Decimal] = mapped_column(_Sum)
    equity_low: Mapped[Decimal] = mapped_column(_Sum)
    equity_close: Mapped[Decimal] = mapped_column(_Sum)
    margin_level_min: Mapped[Decimal | None] = mapped_column(_Sum)
    samples: Mapped[int] = mapped_column(BigInteger)


class _Pnl(ReadOnlyView):
    __abstract__ = True

    bucket: Mapped[datetime] = _bucket()
    tenant_id: Mapped[str] = mapped_column(primary_key=True)
    account_id: Mapped[Uuid] = mapped_column(primary_key=True)
    symbol: Mapped[str] = mapped_column(primary_key=True)
    trades: Mapped[int] = mapped_column(BigInteger)
    wins: Mapped[int] = mapped_column(BigInteger)
    losses: Mapped[int] = mapped_column(BigInteger)
    volume: Mapped[Decimal] = mapped_column(_Sum)
    profit: Mapped[Decimal] = mapped_column(_Sum)
    commission: Mapped[Decimal] = mapped_column(_Sum)
    swap: Mapped[Decimal] = mapped_column(_Sum)
    fee: Mapped[Decimal] = mapped_column(_Sum)
    net_profit: Mapped[Decimal] = mapped_column(_Sum)


class PnlDaily(_Pnl):
    """Daily profit and loss of closed trades per account and symbol.

    ``net_profit`` = profit + commission + swap + fee.
    """

    __tablename__ = "mt5_pnl_daily"
    __table_args__ = {"info": {"is_view": True}}  # noqa: RUF012
    __aggregate__ = "mt5_agg_pnl_daily"
    __bucket_width__ = "1 day"


class PnlWeekly(_Pnl):
    """Weekly profit and loss per account and symbol (the seed's "weekly P&L summary"),
    built on the daily P&L; weeks start on Monday, 00:00 UTC."""

    __tablename__ = "mt5_pnl_weekly"
    __table_args__ = {"info": {"is_view": True}}  # noqa: RUF012
    __aggregate__ = "mt5_agg_pnl_weekly"
    __bucket_width__ = "7 days"


class _QuoteOhlc(ReadOnlyView):
    __abstract__ = True

    bucket: Mapped[datetime] = _bucket()
    tenant_id: Mapped[str] = mapped_column(primary_key=True)
    account_id: Mapped[Uuid] = mapped_column(primary_key=True)
    symbol: Mapped[str] = mapped_column(primary_key=True)
    bid_open: Mapped[Decimal] = mapped_column(_Sum)
    bid_high: Mapped[Decimal] = mapped_column(_Sum)
    bid_low: Mapped[Decimal] = mapped_column(_Sum)
    bid_close: Mapped[Decimal] = mapped_column(_Sum)
    ask_open: Mapped[Decimal] = mapped_column(_Sum)
    ask_high: Mapped[Decimal] = mapped_column(_Sum)
    ask_low: Mapped[Decimal] = mapped_column(_Sum)
    ask_close: Mapped[Decimal] = mapped_column(_Sum)
    spread_avg: Mapped[Decimal] = mapped_column(_Sum)
    spread_max: Mapped[Decimal] = mapped_column(_Sum)
    #: Broker mid - Polygon mid, in pips (None until reconciliation filled it).
    deviation_avg: Mapped[Decimal | None] = mapped_column(_Sum)
    deviation_max_abs: Mapped[Decimal | None] = mapped_column(_Sum)
    volume: Mapped[Decimal | None] = mapped_column(_Sum)
    ticks: Mapped[int] = mapped_column(BigInteger)
    #: Sums behind the averages, so coarser bars are exact: ``spread_avg = spread_sum /
    #: ticks``, ``deviation_avg = deviation_sum / deviation_count``.
    spread_sum: Mapped[Decimal] = mapped_column(_Sum)
    deviation_sum: Mapped[Decimal | None] = mapped_column(_Sum)
    deviation_count: Mapped[int] = mapped_column(BigInteger)


class QuoteOhlc1m(_QuoteOhlc):
    """One-minute OHLC of broker bid and ask per account and symbol, with spread and
    Polygon deviation (the seed's "symbol quote OHLC"). Kept 90 days."""

    __tablename__ = "mt5_quotes_ohlc_1m"
    __table_args__ = {"info": {"is_view": True}}  # noqa: RUF012
    __aggregate__ = "mt5_agg_quotes_ohlc_1m"
    __bucket_width__ = "1 minute"


class QuoteOhlc1h(_QuoteOhlc):
    """One-hour OHLC of broker bid and ask per account and symbol, built on the minute
    bars. Kept 2 years."""

    __tablename__ = "mt5_quotes_ohlc_1h"
    __table_args__ = {"info": {"is_view": True}}  # noqa: RUF012
    __aggregate__ = "mt5_agg_quotes_ohlc_1h"
    __bucket_width__ = "1 hour"


class QuoteOhlc1d(_QuoteOhlc):
    """One-day OHLC of broker bid and ask per account and symbol, built on the hourly bars.
    Kept 2 years."""

    __tablename__ = "mt5_quotes_ohlc_1d"
    __table_args__ = {"info": {"is_view": True}}  # noqa: RUF012
    __aggregate__ = "mt5_agg_quotes_ohlc_1d"
    __bucket_width__ = "1 day"


# --------------------------------------------------------------------------- the guards


def _is_read_only(obj_or_class: Any) -> bool:
    cls = obj_or_class if isinstance(obj_or_class, type) else type(obj_or_class)
    return issubclass(cls, ReadOnlyView)


def _refuse(what: str, cls: type[Any]) -> ReadOnlyModelError:
    return ReadOnlyModelError(
        f"{cls.__name__} is read-only (it maps the view {cls.__tablename__}): cannot {what}"
    )


@event.listens_for(Session, "before_flush")
def _refuse_flush(session: Session, flush_context: UOWTransaction, instances: Any) -> None:
    for what, objects in (("insert", session.new), ("update", session.dirty),
                          ("delete", session.deleted)):
        for obj in objects:
            if _is_read_only(obj) and (what != "update" or session.is_modified(obj)):
                raise _refuse(what, type(obj))


@event.listens_for(Session, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    for mapper in state.all_mappers:
        if _is_read_only(mapper.class_):
            raise _refuse("run INSERT, UPDATE or DELETE", mapper.class_)


def _refuse_persist(mapper: Mapper[Any], connection: Any, target: Any) -> None:
    # A last line behind the session guards (a flush through a custom session class).
    raise _refuse("be written", type(target))


for _event in ("before_insert", "before_update", "before_delete"):
    event.listen(ReadOnlyView, _event, _refuse_persist, propagate=True)
