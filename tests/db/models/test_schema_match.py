"""The models match the migrated database exactly, and the drift check says so (or not).

Run on every engine by the ``backend`` fixture (``tests/db/conftest.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from suho_mt5.errors import DatabaseError
from suho_mt5.migrations.drift import Drift, check_drift
from suho_mt5.models import (
    TextEnum,
    TimeseriesCatalogEntry,
    hypertables,
    metadata,
    view_metadata,
)
from suho_mt5.models.aggregates import ReadOnlyView
from tests.db.schema._support import Schema

PROBE = "models_probe"


@pytest.fixture
def conn(db: Schema) -> Iterator[Connection]:
    """A superuser connection in a transaction that is always rolled back."""
    with db.engine.connect() as connection:
        trans = connection.begin()
        try:
            yield connection
        finally:
            trans.rollback()


# --------------------------------------------------------------------------- drift check


def test_drift_check_finds_nothing_on_a_freshly_migrated_database(conn: Connection) -> None:
    assert check_drift(conn) == []


def test_drift_check_takes_an_engine(db: Schema) -> None:
    assert check_drift(db.engine) == []


@pytest.mark.parametrize(
    ("ddl", "kind", "table", "words"),
    [
        # (the tenant view over the table goes first: it depends on every column)
        ("DROP VIEW mt5_tenant.mt5_trade_orders; ALTER TABLE mt5_trade_orders DROP COLUMN comment",
         "add_column", "mt5_trade_orders", ("comment",)),
        ("ALTER TABLE mt5_user_accounts ADD COLUMN nickname text",
         "remove_column", "mt5_user_accounts", ("nickname",)),
        # (on a table without a columnstore: TimescaleDB 2.23 refuses to change a column's
        # type where there is one)
        ("DROP VIEW mt5_tenant.mt5_signal_executions; "
         "ALTER TABLE mt5_signal_executions ALTER COLUMN execution_latency_ms TYPE bigint",
         "modify_type", "mt5_signal_executions", ("execution_latency_ms",)),
        ("ALTER TABLE mt5_risk_events ALTER COLUMN acknowledged_by SET NOT NULL",
         "modify_nullable", "mt5_risk_events", ("acknowledged_by",)),
        ("DROP INDEX mt5_trade_orders_closed_idx",
         "add_index", "mt5_trade_orders", ("mt5_trade_orders_closed_idx",)),
        ("CREATE INDEX mt5_extra_idx ON mt5_trading_signals (symbol)",
         "remove_index", "mt5_trading_signals", ("mt5_extra_idx",)),
        ("ALTER TABLE mt5_user_accounts DROP CONSTRAINT mt5_user_accounts_login_key",
         "add_constraint", "mt5_user_accounts", ("mt5_user_accounts_login_key",)),
        ("ALTER TABLE mt5_user_consents DROP CONSTRAINT mt5_user_consents_account_fkey",
         "add_fk", "mt5_user_consents", ("mt5_user_consents_account_fkey",)),
        ("CREATE TABLE mt5_scratch (id int)", "remove_table", "mt5_scratch", ("mt5_scratch",)),
    ],
    ids=["dropped-column", "extra-column", "type", "nullable", "dropped-index", "extra-index",
         "dropped-unique", "dropped-fk", "extra-table"],
)
def test_drift_check_reports_a_change_made_by_hand(
    conn: Connection, ddl: str, kind: str, table: str, words: tuple[str, ...]
) -> None:
    conn.exec_driver_sql(ddl)
    drift = check_drift(conn)
    assert len(drift) == 1, drift
    (found,) = drift
    assert isinstance(found, Drift)
    assert (found.kind, found.table) == (kind, table)
    assert all(word in str(found) for word in words), str(found)


def test_drift_check_ignores_what_timescaledb_makes_and_the_views(
    conn: Connection, db: Schema
) -> None:
    # Chunks live in _timescaledb_internal, aggregates and tenant views in public (not
    # tables); none of it is drift. With rows in a hypertable, chunks exist.
    conn.exec_driver_sql("SELECT set_config('app.current_tenant_id', 'tenant_x', true)")
    conn.exec_driver_sql(
        "INSERT INTO mt5_user_accounts (account_id, user_id, broker_name, broker_server, "
        "mt5_login, mt5_account_number, account_type) VALUES "
        "('00000000-0000-4000-8000-000000000001', 'u', 'B', 'B-1', 1, '1', 'demo')"
    )
    conn.exec_driver_sql(
        "INSERT INTO mt5_ea_heartbeat (time, account_id, status) VALUES "
        "(now(), '00000000-0000-4000-8000-000000000001', 'online'), "
        "(now() - interval '40 days', '00000000-0000-4000-8000-000000000001', 'online')"
    )
    if db.edition.has_hypertables:
        chunks = conn.exec_driver_sql(
            "SELECT count(*) FROM timescaledb_information.chunks "
            "WHERE hypertable_name = 'mt5_ea_heartbeat'"
        ).scalar_one()
        assert chunks >= 2
    assert check_drift(conn) == []
    # Classes mapped over views are skipped even when they share the tables' MetaData.
    combined = sa.MetaData()
    for table in (*metadata.tables.values(), *view_metadata.tables.values()):
        table.to_metadata(combined)
    assert check_drift(conn, combined) == []


def test_drift_check_refuses_a_connection_outside_the_public_schema(conn: Connection) -> None:
    # A search_path without public (the PGlite engine's session reset used to leave
    # pg_catalog): comparing the models with pg_catalog would report every table missing.
    conn.exec_driver_sql("SET LOCAL search_path TO pg_catalog")
    with pytest.raises(DatabaseError, match="search_path"):
        check_drift(conn)


# --------------------------------------------------------------------------- exact match

_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = CAST(:schema AS regnamespace) AND c.relname = ANY(:names)
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY 1, 2"""

# Keys, unique constraints and foreign keys; CHECK constraints stay in the migrations.
_CONSTRAINTS = """
SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid)
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
WHERE c.relnamespace = CAST(:schema AS regnamespace) AND c.relname = ANY(:names)
  AND k.contype IN ('p', 'u', 'f')
ORDER BY 1, 2"""

_INDEXES = """
SELECT tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = :schema AND tablename = ANY(:names)
ORDER BY 1, 2"""


def _catalog(conn: Connection, schema: str, names: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    def rows(query: str) -> list[tuple[Any, ...]]:
        result = conn.execute(sa.text(query), {"schema": schema, "names": names})
        return [
            tuple(re.sub(rf"\b({schema}|public)\.", "", v) if isinstance(v, str) else v
                  for v in row)
            for row in result
        ]

    return {"columns": rows(_COLUMNS), "constraints": rows(_CONSTRAINTS),
            "indexes": rows(_INDEXES)}


def test_the_models_build_exactly_the_tables_the_migrations_build(conn: Connection) -> None:
    """Columns (type, NOT NULL, server default), keys, unique constraints, foreign keys and
    indexes (columns, order, predicates), compared as PostgreSQL itself describes them:
    the models' DDL is created in a scratch schema and rolled back."""
    names = sorted(metadata.tables)
    conn.exec_driver_sql(f"CREATE SCHEMA {PROBE}")
    conn.exec_driver_sql(f"SET LOCAL search_path TO {PROBE}, public")
    metadata.create_all(conn.execution_options(schema_translate_map={None: PROBE}))
    conn.exec_driver_sql("SET LOCAL search_path TO public")

    built = _catalog(conn, PROBE, names)
    migrated = _catalog(conn, "public", names)
    for part in ("columns", "constraints", "indexes"):
        assert built[part] == migrated[part], part
    # Sanity: every table was there to compare.
    assert {row[0] for row in migrated["columns"]} == set(names)


def test_the_read_only_classes_match_their_views(conn: Connection) -> None:
    names = sorted(view_metadata.tables)
    conn.exec_driver_sql(f"CREATE SCHEMA {PROBE}")
    view_metadata.create_all(conn.execution_options(schema_translate_map={None: PROBE}))
    # A view's columns are all nullable and it has no keys: compare names and types.
    built = [row[:3] for row in _catalog(conn, PROBE, names)["columns"]]
    views = [row[:3] for row in _catalog(conn, "public", names)["columns"]]
    assert built == views
    assert {row[0] for row in views} == set(names)
    kinds = dict(conn.execute(sa.text(
        "SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace "
        "AND relname = ANY(:names)"), {"names": names}).all())
    assert kinds == dict.fromkeys(names, "v")


def _enum_columns() -> list[tuple[str, str, TextEnum[Any]]]:
    return [
        (table.name, column.name, column.type)
        for table in metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, TextEnum)
    ]


def test_every_enum_has_exactly_the_values_of_its_check_constraint(conn: Connection) -> None:
    defs = dict(conn.execute(sa.text(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'c' AND connamespace = 'public'::regnamespace")).all())
    checked = 0
    for table, column, type_ in _enum_columns():
        definition = defs[f"{table}_{column}_check"]
        values = re.findall(r"'([^']*)'::text", definition)
        assert values == [m.value for m in type_.enum_class], (table, column, definition)
        checked += 1
    assert checked >= 14


def test_hypertable_settings_match_the_migrations_catalog(db: Schema) -> None:
    """Every edition records what ``create_hypertable`` was asked for, also where the table
    stays a table (postgresql)."""
    with Session(db.engine) as session:
        entries = session.scalars(
            sa.select(TimeseriesCatalogEntry).where(TimeseriesCatalogEntry.kind == "hypertable")
        ).all()
    recorded = {
        e.relation_name: (e.time_column, e.chunk_time_interval, e.tenant_column,
                          e.tenant_partitions)
        for e in entries
    }
    declared = {
        name: (s.time_column, s.chunk_interval, s.partitioning_column, s.number_partitions)
        for name, s in hypertables().items()
    }
    assert recorded == declared


def test_aggregate_classes_name_the_aggregates_behind_their_views(db: Schema) -> None:
    with Session(db.engine) as session:
        entries = session.scalars(
            sa.select(TimeseriesCatalogEntry).where(TimeseriesCatalogEntry.kind == "aggregate")
        ).all()
    recorded = {e.tenant_view: (e.relation_name, e.bucket_width) for e in entries}
    declared = {
        mapper.class_.__tablename__: (mapper.class_.__aggregate__, mapper.class_.__bucket_width__)
        for mapper in ReadOnlyView.registry.mappers
        if issubclass(mapper.class_, ReadOnlyView)
    }
    assert set(recorded) == set(declared)
    for view, (aggregate, width) in declared.items():
        assert recorded[view][0] == aggregate
        assert recorded[view][1].total_seconds() == {"1 minute": 60, "1 hour": 3600,
                                                     "1 day": 86400, "7 days": 604800}[width]
