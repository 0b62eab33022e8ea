"""The declarative base, column types shared by every table, and hypertable settings.

Every model is mapped on :class:`Base`, whose :data:`metadata` holds exactly the tables the
Alembic migrations create (Alembic's ``target_metadata``, the drift check, pytest-alembic).
The read-only aggregate classes share the registry (so they can join to the tables) but
their views are kept in a separate :data:`view_metadata`: views are not tables, and a
comparison of tables must not see them.

ORM identities (``__mapper_args__["primary_key"]``) of the time-series tables, most of which
have no primary key in the database, never include ``tenant_id``: ``account_id`` and
``signal_id`` are unique on their own, and TimescaleDB 2.23 fails an UPDATE of a hypertable
under row-level security whose WHERE repeats ``tenant_id = ...`` ("variable not found in
subplan target list", timescaledb#6790), which is what the unit of work would send.

The migrations own the DDL. The models state the same columns, types, nullability,
server defaults, keys, foreign keys and indexes, under the same names; CHECK constraints
stay in the migrations (autogenerate does not compare them), and the enumerations that
mirror them are tested against the migrations' constraint text.
"""

from __future__ import annotations

import enum
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Final, TypeVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    ForeignKeyConstraint,
    Index,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.types import TypeDecorator

from suho_mt5._names import TENANT_DEFAULT_SQL
from suho_mt5.db import register_timescaledb_dialect

__all__ = [
    "TENANT_DEFAULT",
    "Base",
    "BigInt",
    "ColumnstoreSpec",
    "Confidence",
    "HypertableSpec",
    "Json",
    "Money",
    "Percent",
    "Price",
    "TenantId",
    "TextEnum",
    "Time",
    "Timestamp",
    "Uuid",
    "account_fk",
    "hypertable_options",
    "hypertable_spec",
    "idempotency_key",
    "legacy_idempotency_key",
    "metadata",
    "tenant_time_indexes",
    "time_index",
    "view_metadata",
]

# ``timescaledb_hypertable`` is validated against the ``timescaledb`` dialect when a Table is
# built; make sure the psycopg 3 variant is registered even without the package's entry
# point (a source checkout that was never pip-installed).
register_timescaledb_dialect()

#: Server default of every ``tenant_id``: the transaction's tenant (NULL when none is set,
#: which the NOT NULL constraint then refuses). Same text as ``suho_mt5.migrations.operations``.
TENANT_DEFAULT: Final = TENANT_DEFAULT_SQL

#: The tables of the migrations (``target_metadata``). No naming convention: every
#: constraint and index carries the explicit name the migrations give it.
metadata: Final = MetaData()
#: The tenant views the read-only aggregate classes are mapped over.
view_metadata: Final = MetaData()

# --------------------------------------------------------------------------- column types

#: ``timestamptz``: always an aware :class:`~datetime.datetime`.
Timestamp = Annotated[datetime, mapped_column(DateTime(timezone=True))]
#: The hypertable time column: ``timestamptz NOT NULL DEFAULT now()``.
Time = Annotated[
    datetime, mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
]
#: ``tenant_id text NOT NULL DEFAULT <current tenant>``.
TenantId = Annotated[
    str, mapped_column(Text, nullable=False, server_default=text(TENANT_DEFAULT))
]
Uuid = Annotated[uuid.UUID, mapped_column(UUID(as_uuid=True))]
BigInt = Annotated[int, mapped_column(BigInteger)]
#: Prices, lots and price differences: ``numeric(20,8)`` (protocol: int64 / 10^8).
Price = Annotated[Decimal, mapped_column(Numeric(20, 8))]
#: Money: ``numeric(20,4)`` (protocol: int64 / 10^4).
Money = Annotated[Decimal, mapped_column(Numeric(20, 4))]
#: Percentages: ``numeric(12,4)``.
Percent = Annotated[Decimal, mapped_column(Numeric(12, 4))]
#: Confidence in 0..1: ``numeric(5,4)``.
Confidence = Annotated[Decimal, mapped_column(Numeric(5, 4))]
#: ``jsonb`` objects.
Json = Annotated[dict[str, Any], mapped_column(JSONB)]

E = TypeVar("E", bound=enum.Enum)


class TextEnum(TypeDecorator[E]):
    """A Python enumeration stored in a ``text`` column (guarded by a CHECK constraint).

    The column stays plain ``text`` in the DDL, so the drift check sees no difference from
    the migrations; values are the enumeration's values, unknown ones are refused in Python
    before they reach the database.

    >>> from suho_mt5.models.enums import OrderStatus
    >>> t = TextEnum(OrderStatus)
    >>> t.process_bind_param("closed", None), t.process_result_value("open", None)
    ('closed', <OrderStatus.OPEN: 'open'>)
    """

    impl = Text
    cache_ok = True

    def __init__(self, enum_class: type[E]) -> None:
        super().__init__()
        self.enum_class = enum_class

    def process_bind_param(self, value: E | str | None, dialect: Dialect | None) -> str | None:
        if value is None:
            return None
        member = value if isinstance(value, self.enum_class) else self.enum_class(value)
        return str(member.value)

    def process_result_value(self, value: Any, dialect: Dialect | None) -> E | None:
        if value is None:
            return None
        return self.enum_class(value)

    def copy(self, **kw: Any) -> TextEnum[E]:
        return TextEnum(self.enum_class)

    def __repr__(self) -> str:
        return f"TextEnum({self.enum_class.__name__})"


# --------------------------------------------------------------------------- hypertables

_INTERVAL = re.compile(r"(\d+)\s*(minute|hour|day|week)s?")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}


@dataclass(frozen=True, slots=True)
class ColumnstoreSpec:
    """A hypertable's columnstore (TimescaleDB compression, timescale edition), as the model
    declares it: what each batch is segmented and ordered by, extra sparse indexes, and how
    long after its chunk ends a chunk is converted (docs/schema.md, "Columnstore").

    >>> ColumnstoreSpec(("tenant_id", "account_id"), "time DESC", "2 days").after_interval
    datetime.timedelta(days=2)
    """

    segmentby: tuple[str, ...]
    orderby: str
    after: str
    sparse_index: str | None = None

    @property
    def after_interval(self) -> timedelta:
        """:attr:`after` as a :class:`~datetime.timedelta`."""
        return _interval(self.after)


def _interval(text_: str) -> timedelta:
    match = _INTERVAL.fullmatch(text_.strip())
    if match is None:
        raise ValueError(f"not a simple interval: {text_!r}")
    return timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


@dataclass(frozen=True, slots=True)
class HypertableSpec:
    """A hypertable's dimensions (and columnstore), as the model declares them.

    >>> spec = HypertableSpec("mt5_x", "time", "1 day", "tenant_id", 4)
    >>> spec.chunk_interval
    datetime.timedelta(days=1)
    """

    table: str
    time_column: str
    chunk_time_interval: str
    partitioning_column: str | None
    number_partitions: int | None
    columnstore: ColumnstoreSpec | None = None

    @property
    def chunk_interval(self) -> timedelta:
        """:attr:`chunk_time_interval` as a :class:`~datetime.timedelta`."""
        return _interval(self.chunk_time_interval)


def hypertable_options(
    chunk_time_interval: str,
    number_partitions: int,
    *,
    time_column_name: str = "time",
    partitioning_column: str = "tenant_id",
    columnstore: ColumnstoreSpec | None = None,
) -> dict[str, dict[str, Any]]:
    """``__table_args__`` entry declaring a hypertable with a hash(tenant) dimension.

    ``time_column_name`` and ``chunk_time_interval`` are sqlalchemy-timescaledb's own keys;
    ``partitioning_column`` and ``number_partitions`` add the tenant dimension the
    migrations create with ``add_dimension``, and ``columnstore`` the columnstore revision
    0013 enables (sqlalchemy-timescaledb ignores them).
    """
    options: dict[str, Any] = {
        "time_column_name": time_column_name,
        "chunk_time_interval": chunk_time_interval,
        "partitioning_column": partitioning_column,
        "number_partitions": number_partitions,
    }
    if columnstore is not None:
        options["columnstore"] = columnstore
    return {"timescaledb_hypertable": options}


def hypertable_spec(table: Table) -> HypertableSpec | None:
    """The hypertable settings declared on ``table``, or None for a regular table."""
    options: dict[str, Any] = table.dialect_options["timescaledb"]["hypertable"] or {}
    if not options:
        return None
    return HypertableSpec(
        table=table.name,
        time_column=options["time_column_name"],
        chunk_time_interval=options.get("chunk_time_interval", "7 days"),
        partitioning_column=options.get("partitioning_column"),
        number_partitions=options.get("number_partitions"),
        columnstore=options.get("columnstore"),
    )


class Base(DeclarativeBase):
    """Declarative base of every suho-mt5 model (tables in :data:`metadata`)."""

    metadata = metadata
    type_annotation_map = {  # noqa: RUF012  (read by SQLAlchemy at class creation)
        datetime: DateTime(timezone=True),
        uuid.UUID: UUID(as_uuid=True),
        dict[str, Any]: JSONB,
        str: Text,
    }


# --------------------------------------------------------------------------- shared table args
# The migrations build these with the same helper shapes (0002-0004); the names must match.


def account_fk(table: str) -> ForeignKeyConstraint:
    """``(tenant_id, account_id)`` → ``mt5_user_accounts``: an account of the row's tenant."""
    return ForeignKeyConstraint(
        ["tenant_id", "account_id"],
        ["mt5_user_accounts.tenant_id", "mt5_user_accounts.account_id"],
        name=f"{table}_account_fkey",
    )


def idempotency_key(table: str, *, by: tuple[str, ...] = ()) -> UniqueConstraint:
    """The Data Bridge's ``ON CONFLICT DO NOTHING`` key ``(tenant_id, account_id, *by, time,
    sequence)``. It must contain ``time`` and ``tenant_id``, the hypertable's dimensions
    (docs/schema.md, trap 8); with ``time`` before ``sequence`` it also serves every query of
    one account (and symbol) over time (revision 0013)."""
    return UniqueConstraint(
        "tenant_id", "account_id", *by, "time", "sequence", name=f"{table}_idempotency_key"
    )


def legacy_idempotency_key(table: str) -> UniqueConstraint:
    """``(tenant_id, account_id, sequence, time)``: the key of the tables whose rows are few
    (orders, executions, risk events), as revisions 0003 and 0004 made it."""
    return UniqueConstraint(
        "tenant_id", "account_id", "sequence", "time", name=f"{table}_idempotency_key"
    )


def time_index(table: str) -> Index:
    """``<table>_time_idx (time DESC)``: made by ``create_hypertable`` on TimescaleDB and by
    the migration itself on plain PostgreSQL, under the same name."""
    return Index(f"{table}_time_idx", text("time DESC"))


def tenant_time_indexes(table: str, *, by: tuple[str, ...] | None = ("account_id",)) -> list[Index]:
    """``(tenant_id, time DESC)`` and, with ``by``, ``(tenant_id, *by, time DESC)``."""
    indexes = [Index(f"{table}_tenant_id_time_idx", "tenant_id", text("time DESC"))]
    if by:
        indexes.append(
            Index(f"{table}_tenant_id_{'_'.join(by)}_time_idx", "tenant_id", *by,
                  text("time DESC"))
        )
    return indexes
