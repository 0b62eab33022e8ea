"""``mt5_timeseries_catalog``: what the migrations made time-series, and their policies."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import BigInteger, Integer, PrimaryKeyConstraint
from sqlalchemy.dialects.postgresql import INTERVAL
from sqlalchemy.orm import Mapped, mapped_column

from suho_mt5.models.base import Base, TextEnum, Timestamp
from suho_mt5.models.enums import CatalogKind

__all__ = ["TimeseriesCatalogEntry"]


class TimeseriesCatalogEntry(Base):
    """One hypertable or aggregate as the migrations declared it, on every edition.

    The custom Alembic operations record here what they built: a hypertable's time column,
    chunk interval and tenant partitions (also on plain PostgreSQL, where the table stays a
    table), an aggregate's source, bucket width and tenant view, and the retention and
    refresh policies. ``mt5_maintain()`` applies the policies where TimescaleDB jobs do not
    and records its last runs; the monitoring views read it. Everyone may read it; only the
    migrations and ``mt5_maintenance`` write it.
    """

    __tablename__ = "mt5_timeseries_catalog"
    __table_args__ = (
        PrimaryKeyConstraint(
            "relation_schema", "relation_name", name="mt5_timeseries_catalog_pkey"
        ),
        {
            "comment": "suho-mt5 internal: hypertables and aggregates with their declared "
            "retention and refresh policies"
        },
    )

    relation_schema: Mapped[str] = mapped_column(server_default="public")
    relation_name: Mapped[str]
    kind: Mapped[CatalogKind] = mapped_column(TextEnum(CatalogKind))
    time_column: Mapped[str | None]
    chunk_time_interval: Mapped[timedelta | None] = mapped_column(INTERVAL)
    tenant_column: Mapped[str | None]
    tenant_partitions: Mapped[int | None] = mapped_column(Integer)
    source_relation: Mapped[str | None]
    bucket_width: Mapped[timedelta | None] = mapped_column(INTERVAL)
    tenant_view: Mapped[str | None]
    retention: Mapped[timedelta | None] = mapped_column(INTERVAL)
    refresh_start_offset: Mapped[timedelta | None] = mapped_column(INTERVAL)
    refresh_end_offset: Mapped[timedelta | None] = mapped_column(INTERVAL)
    refresh_schedule: Mapped[timedelta | None] = mapped_column(INTERVAL)
    last_refresh_at: Mapped[Timestamp | None]
    last_retention_at: Mapped[Timestamp | None]
    last_retention_removed: Mapped[int | None] = mapped_column(BigInteger)
