"""Compare the ORM models with a live database (``suho-mt5 db check``).

It lives beside the migrations, not in :mod:`suho_mt5.db`, because it needs the models:
``db`` stays below ``models`` and never imports them.

Alembic's autogenerate comparison does the work; this module decides what is *not* drift:
objects TimescaleDB creates by itself (its schemas, chunk tables, the default time index
of a hypertable), Alembic's own version table, and the read-only classes mapped over views.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    ForeignKeyConstraint,
    Index,
    MetaData,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Connection, Engine

from suho_mt5.errors import DatabaseError

__all__ = ["Drift", "check_drift", "comparison_options"]

#: Where the migrations build every suho-mt5 object.
_SCHEMA = "public"

_TIMESCALE_SCHEMAS = frozenset(
    {
        "_timescaledb_internal",
        "_timescaledb_catalog",
        "_timescaledb_config",
        "_timescaledb_cache",
        "_timescaledb_functions",
        "_timescaledb_debug",
        "timescaledb_information",
        "timescaledb_experimental",
        "toolkit_experimental",
    }
)


@dataclass(frozen=True, slots=True)
class Drift:
    """One difference between the models and the database."""

    #: Alembic's name for the change that would fix the database, e.g. ``remove_column``.
    kind: str
    table: str | None
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


def _is_timescale_generated(obj: Any, name: str | None) -> bool:
    if name is None:
        return False
    if isinstance(obj, Index):
        table = obj.table.name if obj.table is not None else ""
        # create_hypertable() adds "<table>_<time column>_idx" unless told not to.
        return name.startswith(("_hyper_", "_materialized_hypertable_")) or (
            name == f"{table}_time_idx"
        )
    return name.startswith(("_hyper_", "_materialized_hypertable_", "_compressed_hypertable_"))


def _include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    if type_ == "schema":
        return name is None or name not in _TIMESCALE_SCHEMAS
    if type_ == "table":
        return name != "alembic_version"
    return True


def _include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    if type_ == "table" and isinstance(obj, Table) and obj.info.get("is_view"):
        return False  # aggregates and views are mapped read-only; views are not tables
    return not (reflected and compare_to is None and _is_timescale_generated(obj, name))


def _where(kind: str) -> tuple[str, str]:
    # Alembic names the change that would make the database match the models: "add_*" means
    # the models have it and the database lacks it.
    return ("models", "database") if kind.startswith("add") else ("database", "models")


def _table_of(obj: Any) -> str | None:
    table = getattr(obj, "table", None)
    if table is None:
        table = getattr(obj, "parent", None)
    name = getattr(table, "name", None)
    return name if isinstance(name, str) else None


def _describe(diff: tuple[Any, ...]) -> Drift:
    kind = str(diff[0])
    obj = diff[-1]
    if kind in ("add_table", "remove_table") and isinstance(obj, Table):
        has, lacks = _where(kind)
        return Drift(kind, obj.name, f"table {obj.name} is in the {has}, not in the {lacks}")
    if kind in ("add_column", "remove_column") and isinstance(obj, Column):
        table = str(diff[2])
        has, lacks = _where(kind)
        return Drift(kind, table, f"column {table}.{obj.name} is in the {has}, not in the {lacks}")
    if kind in ("add_index", "remove_index") and isinstance(obj, Index):
        table_name = _table_of(obj)
        has, _ = _where(kind)
        return Drift(kind, table_name, f"index {obj.name} on {table_name} is only in the {has}")
    if kind in ("add_constraint", "remove_constraint", "add_fk", "remove_fk"):
        table_name = _table_of(obj)
        if isinstance(obj, UniqueConstraint):
            label = "unique constraint"
        elif isinstance(obj, ForeignKeyConstraint):
            label = "foreign key"
        else:
            label = "constraint"
        has, _ = _where(kind)
        return Drift(kind, table_name, f"{label} {getattr(obj, 'name', None)} on {table_name} "
                                       f"is only in the {has}")
    if kind.startswith("modify_") and len(diff) >= 7:
        # ("modify_type", schema, table, column, existing_kw, database value, model value)
        table, column = str(diff[2]), str(diff[3])
        what = kind.removeprefix("modify_")
        return Drift(kind, table, f"{table}.{column} {what}: database has {diff[-2]!s}, "
                                  f"models have {diff[-1]!s}")
    table_name = _table_of(obj) if not isinstance(obj, Table) else obj.name
    return Drift(kind, table_name, f"{kind}: {diff[1:]!r}")


def _flatten(diffs: Iterable[Any]) -> Iterable[tuple[Any, ...]]:
    for diff in diffs:
        # Column modifications come grouped as a list of tuples.
        if isinstance(diff, list):
            yield from diff
        else:
            yield diff


def comparison_options() -> dict[str, Any]:
    """Alembic autogenerate options that make a comparison mean what :func:`check_drift`
    means: TimescaleDB's own objects, ``alembic_version`` and view classes left out, types
    compared, server defaults not. The migrations' ``env.py`` passes them to
    ``context.configure`` so ``alembic revision --autogenerate`` and pytest-alembic see
    drift the same way."""
    return {
        "include_name": _include_name,
        "include_object": _include_object,
        "compare_type": True,
        "compare_server_default": False,
    }


def check_drift(bind: Connection | Engine, metadata: MetaData | None = None) -> list[Drift]:
    """Differences between ``metadata`` (default: the suho-mt5 models) and the database.

    An empty list means the models match the live schema: tables, columns (types and
    nullability), unique constraints, foreign keys and indexes; server defaults are not
    compared (the database spells them its own way). Raises
    :class:`~suho_mt5.errors.DatabaseError` when the connection's current schema is not
    ``public`` (the comparison would be meaningless). With an engine, one connection is
    used and released; with a connection, the check runs in its current transaction (so
    it sees uncommitted DDL).

    With a server at hand::

        with engine.connect() as conn:
            for drift in check_drift(conn):
                print(drift)   # e.g. "add_column: column mt5_trade_orders.comment is in
                               #      the models, not in the database"
    """
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return check_drift(conn, metadata)
    conn = bind
    # Imported here: Alembic's autogenerate machinery is only needed by this check.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    if metadata is None:
        from suho_mt5 import models

        metadata = models.metadata
    # The models have no schema: Alembic compares them with the tables the connection's
    # search_path shows, which must start with the schema the migrations build in. Another
    # one (e.g. pg_catalog, where a bare DISCARD ALL on the PGlite engine used to leave it)
    # would report every table missing.
    current = conn.execute(text("SELECT current_schema()")).scalar()
    if current != _SCHEMA:
        raise DatabaseError(
            f"the connection's current schema is {current!r}, not {_SCHEMA!r} where "
            "the suho-mt5 tables live: connect with search_path including public "
            "(e.g. options=-csearch_path=public) before checking for drift"
        )
    context = MigrationContext.configure(conn, opts=comparison_options())
    return [_describe(diff) for diff in _flatten(compare_metadata(context, metadata))]
