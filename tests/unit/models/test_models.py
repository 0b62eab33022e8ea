"""The models against the migrations' offline SQL, and the guards that act before any I/O.

No server: the migrations are rendered with ``alembic upgrade head --sql``.
"""

from __future__ import annotations

import doctest
import importlib
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, configure_mappers

import suho_mt5.models as models
from suho_mt5.db import AccountIdentity, Edition, authenticate, tenant_session
from suho_mt5.errors import AuthenticationError, SuhoError, TenantError
from suho_mt5.migrations.drift import Drift, _describe
from suho_mt5.migrations.operations import render_sql
from suho_mt5.models import (
    AuditEvent,
    BalanceHourly,
    OrderStatus,
    PnlDaily,
    ReadOnlyModelError,
    TextEnum,
    TradeOrder,
    UserAccount,
    hypertables,
    metadata,
    view_metadata,
)
from suho_mt5.models.aggregates import ReadOnlyView

REPO_ROOT = Path(__file__).resolve().parents[3]
ALEMBIC_INI = REPO_ROOT / "alembic.ini"


@pytest.fixture(scope="module")
def offline_sql() -> str:
    """What the migrations send to a TimescaleDB server (CHECK constraints are the same on
    every edition; hypertables only exist on this one)."""
    return render_sql(ALEMBIC_INI, "heads", Edition.TIMESCALE)


@pytest.fixture(scope="module")
def postgresql_sql() -> str:
    """... and to plain PostgreSQL, where every index is spelled out (create_hypertable
    makes ``<table>_time_idx`` by itself on TimescaleDB)."""
    return render_sql(ALEMBIC_INI, "heads", Edition.POSTGRESQL)


@pytest.fixture
def no_server() -> Iterator[tuple[Engine, list[object]]]:
    """An engine that records every connection attempt (none may happen)."""
    engine = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    attempts: list[object] = []
    sa.event.listen(engine, "do_connect", lambda *args: attempts.append(args))
    try:
        yield engine, attempts
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- vs migrations


def _checks(sql: str) -> dict[str, tuple[str, list[str]]]:
    """``<name>: (column, values)`` of every ``CHECK (<column> IN ('a', 'b', ...))``."""
    found = re.findall(r"CONSTRAINT (\w+) CHECK \((\w+) IN \(([^)]*)\)\)", sql)
    return {name: (column, re.findall(r"'([^']*)'", values)) for name, column, values in found}


def test_every_enum_has_exactly_the_values_of_its_check_constraint(offline_sql: str) -> None:
    checks = _checks(offline_sql)
    enum_columns = {
        f"{table.name}_{column.name}_check": column
        for table in metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, TextEnum)
    }
    # Every enumerated CHECK of the migrations has its enum, and every enum its CHECK.
    assert set(checks) == set(enum_columns)
    for name, (column_name, values) in checks.items():
        column = enum_columns[name]
        assert column.name == column_name
        assert isinstance(column.type, TextEnum)
        assert [m.value for m in column.type.enum_class] == values, name


def test_hypertable_settings_match_the_migrations(offline_sql: str) -> None:
    created = {
        table: (time_column, interval)
        for table, time_column, interval in re.findall(
            r"create_hypertable\('public\.(\w+)', by_range\('(\w+)', INTERVAL '([^']+)'\)\)",
            offline_sql)
    }
    dimensions = {
        table: (column, int(partitions))
        for table, column, partitions in re.findall(
            r"add_dimension\('public\.(\w+)', by_hash\('(\w+)', (\d+)\)\)", offline_sql)
    }
    declared = hypertables()
    assert len(declared) == 8
    assert {name: (s.time_column, s.chunk_time_interval) for name, s in declared.items()} == created
    assert {name: (s.partitioning_column, s.number_partitions)
            for name, s in declared.items()} == dimensions


def test_read_only_classes_map_the_tenant_views_of_the_aggregates(offline_sql: str) -> None:
    views = dict(re.findall(
        r"CREATE VIEW (?:public\.)?(\w+) WITH \(security_barrier = true\) AS\s+"
        r"SELECT \* FROM (?:public\.)?(\w+)", offline_sql))
    classes = {m.class_ for m in ReadOnlyView.registry.mappers
               if issubclass(m.class_, ReadOnlyView)}
    assert {c.__tablename__: c.__aggregate__ for c in classes} == views
    assert set(view_metadata.tables) == set(views)
    for table in view_metadata.tables.values():
        assert table.info == {"is_view": True}


def test_the_tables_are_the_migrations_tables(offline_sql: str) -> None:
    created = set(re.findall(r"CREATE TABLE (\w+) \(", offline_sql)) - {"alembic_version"}
    assert set(metadata.tables) == created
    # the seed's 11, the time-series catalog, the bridge's dead letters (0010), and
    # compliance's chain heads, GDPR subject keys and account settings (0011)
    assert len(created) == 16


def test_every_key_and_index_is_named_as_in_the_migrations(postgresql_sql: str) -> None:
    for table in metadata.tables.values():
        for item in (*table.constraints, *table.indexes):
            if isinstance(item, sa.PrimaryKeyConstraint) and not item.columns:
                continue  # hypertables without a primary key
            assert isinstance(item.name, str), (table.name, item)
            assert re.search(rf"\b{item.name}\b", postgresql_sql), (table.name, item.name)


def test_the_mappers_configure_without_warnings() -> None:
    # filterwarnings = error: an overlapping relationship would fail here.
    configure_mappers()
    for mapper in models.Base.registry.mappers:
        assert mapper.primary_key, mapper
        table = mapper.local_table
        assert isinstance(table, sa.Table)
        if models.hypertable_spec(table) is not None and table.name != "mt5_audit_log":
            # The unit of work's UPDATE ... WHERE <identity> must not name tenant_id
            # (timescaledb#6790); the audit log is never updated.
            assert "tenant_id" not in {c.name for c in mapper.primary_key}, table.name


def test_text_enum_binds_values_and_refuses_strangers() -> None:
    t = TextEnum(OrderStatus)
    assert t.process_bind_param(OrderStatus.CLOSED, None) == "closed"
    assert t.process_bind_param("open", None) == "open"
    assert t.process_bind_param(None, None) is None
    assert t.process_result_value("rejected", None) is OrderStatus.REJECTED
    with pytest.raises(ValueError, match="shipped"):
        t.process_bind_param("shipped", None)
    assert repr(t) == "TextEnum(OrderStatus)"
    assert t.copy().enum_class is OrderStatus


def test_hypertable_spec_intervals() -> None:
    spec = hypertables()["mt5_trade_orders"]
    assert spec.chunk_interval.days == 30
    assert models.HypertableSpec("x", "time", "2 weeks", None, None).chunk_interval.days == 14
    with pytest.raises(ValueError, match="simple interval"):
        _ = models.HypertableSpec("x", "time", "1 fortnight", None, None).chunk_interval
    assert models.hypertable_spec(metadata.tables["mt5_user_accounts"]) is None


# --------------------------------------------------------------------------- guards, no I/O


def test_read_only_classes_refuse_every_write_before_any_io(
    no_server: tuple[Engine, list[object]]
) -> None:
    engine, attempts = no_server
    hour = BalanceHourly(bucket=datetime.now(UTC), tenant_id="t", account_id=uuid.uuid4(),
                         samples=1)
    with Session(engine) as session:
        session.add(hour)
        with pytest.raises(ReadOnlyModelError, match="BalanceHourly is read-only"):
            session.flush()
        session.expunge_all()
        for statement in (sa.insert(BalanceHourly).values(samples=1),
                          sa.update(PnlDaily).values(trades=0),
                          sa.delete(BalanceHourly)):
            with pytest.raises(ReadOnlyModelError):
                session.execute(statement)
    assert attempts == []
    assert issubclass(ReadOnlyModelError, SuhoError)
    assert issubclass(ReadOnlyModelError, TypeError)


def test_a_tenant_session_refuses_another_tenants_row_before_any_io(
    no_server: tuple[Engine, list[object]]
) -> None:
    engine, attempts = no_server
    with tenant_session(engine, "tenant_a") as session:
        session.add(TradeOrder(tenant_id="tenant_b", ticket=1))
        with pytest.raises(TenantError, match="tenant_b"):
            session.flush()
    assert attempts == []


def test_a_tenant_session_fills_in_its_tenant(no_server: tuple[Engine, list[object]]) -> None:
    engine, _ = no_server
    event = AuditEvent(event_type="x.y")
    account = UserAccount()
    with tenant_session(engine, "tenant_a") as session:
        session.add_all([event, account])
        with pytest.raises(sa.exc.OperationalError):  # the fill happened, then the connect
            session.flush()
    assert (event.tenant_id, account.tenant_id) == ("tenant_a", "tenant_a")


@pytest.mark.parametrize("account_id", ["", "not-a-uuid", "1234", 42, None])
def test_a_malformed_account_id_is_refused_before_any_io(
    no_server: tuple[Engine, list[object]], account_id: Any
) -> None:
    engine, attempts = no_server
    with pytest.raises(AuthenticationError, match=r"^invalid account id or API key$"):
        authenticate(engine, account_id, "key")
    with pytest.raises(AuthenticationError, match=r"^invalid account id or API key$"):
        authenticate(engine, uuid.uuid4(), None)  # type: ignore[arg-type]
    assert attempts == []
    assert AccountIdentity("t", "u", uuid.UUID(int=0)).user_id == "u"


# --------------------------------------------------------------------------- drift texts


def test_drift_descriptions_say_where_each_side_stands() -> None:
    table = metadata.tables["mt5_trade_orders"]
    column = table.c.comment
    index = next(i for i in table.indexes if i.name == "mt5_trade_orders_closed_idx")
    fk = next(iter(table.foreign_key_constraints))
    cases: list[tuple[tuple[Any, ...], str]] = [
        (("add_table", table), "table mt5_trade_orders is in the models, not in the database"),
        (("remove_column", None, "mt5_trade_orders", column),
         "column mt5_trade_orders.comment is in the database, not in the models"),
        (("add_index", index),
         "index mt5_trade_orders_closed_idx on mt5_trade_orders is only in the models"),
        (("remove_fk", fk),
         "foreign key mt5_trade_orders_account_fkey on mt5_trade_orders is only in the database"),
        (("modify_nullable", None, "mt5_trade_orders", "comment", {}, True, False),
         "mt5_trade_orders.comment nullable: database has True, models have False"),
    ]
    for diff, text in cases:
        drift = _describe(diff)
        assert isinstance(drift, Drift)
        assert drift.table == "mt5_trade_orders"
        assert str(drift) == f"{diff[0]}: {text}"


# --------------------------------------------------------------------------- API and docs


def test_the_public_api_is_exported_and_sorted() -> None:
    assert models.__all__ == sorted(models.__all__)
    for name in models.__all__:
        assert getattr(models, name) is not None
    import suho_mt5
    import suho_mt5.db

    for module in (suho_mt5, suho_mt5.db):
        for name in ("AccountIdentity", "authenticate"):
            assert name in module.__all__
    assert {"Drift", "check_drift"} <= set(suho_mt5.__all__)


@pytest.mark.parametrize(
    "module",
    ["suho_mt5.models", "suho_mt5.models.base", "suho_mt5.db.auth",
     "suho_mt5.migrations.drift"],
)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), raise_on_error=False)
    assert result.failed == 0


def test_sqlalchemy_timescaledb_reads_the_hypertable_option() -> None:
    """The option is sqlalchemy-timescaledb's own (its DDL compiler builds
    ``create_hypertable`` from it), available through the psycopg 3 dialect."""
    from sqlalchemy.engine import make_url
    from sqlalchemy_timescaledb.dialect import TimescaledbDDLCompiler

    from suho_mt5.db._timescaledb_dialect import TimescaledbPsycopgDialect

    assert make_url("timescaledb+psycopg://u@h/db").get_dialect() is TimescaledbPsycopgDialect
    table = metadata.tables["mt5_broker_quotes"]
    ddl = TimescaledbDDLCompiler.ddl_hypertable(
        table.name, table.dialect_options["timescaledb"]["hypertable"])
    sql = " ".join(str(ddl.statement).split())
    assert "create_hypertable( 'mt5_broker_quotes', 'time', " \
           "chunk_time_interval => INTERVAL '1 day'" in sql
