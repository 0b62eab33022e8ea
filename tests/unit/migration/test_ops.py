"""The custom operations: generic create/drop over entities, registration, reverse(),
autogenerate rendering, offline SQL."""

from __future__ import annotations

import inspect
import io
from typing import Any

import pytest
from alembic.autogenerate import render_python_code
from alembic.migration import MigrationContext
from alembic.operations import Operations, ops

from suho_mt5.db import Edition
from suho_mt5.errors import MigrationError
from suho_mt5.migrations.operations import (
    AddRefreshPolicyOp,
    AddRetentionPolicyOp,
    ContinuousAggregate,
    CreateContinuousAggregateOp,
    CreateEntityOp,
    CreateHypertableOp,
    DisableTenantRLSOp,
    DropContinuousAggregateOp,
    DropEntityOp,
    DropHypertableOp,
    EnableTenantRLSOp,
    Entity,
    Hypertable,
    RefreshContinuousAggregateOp,
    RefreshPolicy,
    RemoveRefreshPolicyOp,
    RemoveRetentionPolicyOp,
    migration_edition,
)

pytestmark = pytest.mark.unit

FORWARD: list[Any] = [
    CreateHypertableOp("mt5_x", "time", chunk_time_interval="1 day", tenant_partitions=2),
    EnableTenantRLSOp("mt5_x", cross_tenant={"mt5_ingest": ["insert"]}),
    CreateContinuousAggregateOp("mt5_agg_x", "SELECT 1", source="mt5_x", bucket_width="1 hour",
                                unique_key=["bucket"], tenant_view="mt5_x_hourly",
                                reader_roles=["mt5_app"]),
    AddRetentionPolicyOp("mt5_x", "90 days"),
    AddRefreshPolicyOp("mt5_agg_x", start_offset="1 day", end_offset="1 hour",
                       schedule_interval="5 minutes"),
]
INVERSE = [DropHypertableOp, DisableTenantRLSOp, DropContinuousAggregateOp,
           RemoveRetentionPolicyOp, RemoveRefreshPolicyOp]


def offline(edition: Edition | None, build: Any) -> str:
    buffer = io.StringIO()
    opts: dict[str, Any] = {"as_sql": True, "output_buffer": buffer, "literal_binds": True,
                            "transaction_per_migration": True}
    if edition is not None:
        opts["suho_edition"] = edition
    ctx = MigrationContext.configure(dialect_name="postgresql", opts=opts)
    with ctx.begin_transaction(_per_migration=True):
        build(Operations(ctx))
    return buffer.getvalue()


@pytest.mark.parametrize("name", [
    "create_hypertable", "drop_hypertable", "enable_tenant_rls", "disable_tenant_rls",
    "create_continuous_aggregate", "drop_continuous_aggregate", "refresh_continuous_aggregate",
    "add_retention_policy", "remove_retention_policy", "add_refresh_policy",
    "remove_refresh_policy", "create_entity", "drop_entity", "enable_columnstore",
    "disable_columnstore",
])
def test_operations_are_registered(name: str) -> None:
    assert callable(getattr(Operations, name))


@pytest.mark.parametrize("op,inverse", list(zip(FORWARD, INVERSE, strict=True)))
def test_reverse_round_trips(op: Any, inverse: type) -> None:
    back = op.reverse()
    assert isinstance(back, inverse)
    again = back.reverse()
    assert type(again) is type(op)
    assert vars(again) == vars(op) or again is op


def test_an_operation_holds_an_entity_built_from_its_arguments() -> None:
    op = CreateHypertableOp("mt5_x", chunk_time_interval="1 day")
    assert op.entity == Hypertable("mt5_x", "time", chunk_time_interval="1 day")
    assert CreateHypertableOp(op.entity).entity is op.entity
    with pytest.raises(MigrationError, match="needs chunk_time_interval"):
        CreateHypertableOp("mt5_x")
    with pytest.raises(MigrationError, match="needs definition, source, bucket_width"):
        CreateContinuousAggregateOp("v", tenant_view=None)
    with pytest.raises(TypeError):  # a drop of an aggregate must say whether it has a view
        DropContinuousAggregateOp("v")


def test_every_entity_declares_its_parameters_once() -> None:
    """The op.<name>() functions forward to the entity: no parameter list of their own."""
    for name in ("create_hypertable", "drop_hypertable", "enable_tenant_rls",
                 "create_continuous_aggregate", "add_refresh_policy"):
        assert inspect.signature(getattr(Operations, name)).parameters.keys() == {
            "self", "args", "kw"}
    for cls in Entity.__subclasses__():
        assert cls.__doc__ and cls.create_sql is not Entity.create_sql, cls


def test_generic_create_and_drop_take_entities() -> None:
    entity = RefreshPolicy("mt5_agg_x", schedule_interval="1 hour")
    sql = offline(Edition.POSTGRESQL, lambda o: (o.create_entity(entity), o.drop_entity(entity)))
    assert "refresh_schedule = INTERVAL '1 hour'" in sql and "refresh_schedule = NULL" in sql
    create = CreateEntityOp(entity)
    assert isinstance(create.reverse(), DropEntityOp)
    aggregate = ContinuousAggregate("v", tenant_view=None)
    assert type(CreateEntityOp(RefreshPolicy("v", schedule_interval="1 hour")).reverse()) is (
        RemoveRefreshPolicyOp)
    assert DropEntityOp(aggregate).sql(Edition.APACHE)[0] == "DROP MATERIALIZED VIEW public.v"
    assert "op.create_entity(RefreshPolicy(" in render_python_code(ops.UpgradeOps(ops=[create]))


def test_reverse_of_a_bare_drop_is_not_guessed() -> None:
    with pytest.raises(NotImplementedError, match="definition, source, bucket_width"):
        DropContinuousAggregateOp("v", tenant_view=None).reverse()
    with pytest.raises(NotImplementedError, match="chunk_time_interval"):
        DropHypertableOp("t").reverse()
    with pytest.raises(NotImplementedError):
        RemoveRetentionPolicyOp("t").reverse()
    with pytest.raises(NotImplementedError):
        RemoveRefreshPolicyOp("v").reverse()


def test_autogenerate_renders_the_operations() -> None:
    code = render_python_code(ops.UpgradeOps(ops=[*FORWARD, RefreshContinuousAggregateOp("v")]))
    assert "op.create_hypertable('mt5_x', 'time', chunk_time_interval='1 day'" in code
    assert "op.enable_tenant_rls('mt5_x'" in code and "{'mt5_ingest': ['INSERT']}" in code
    assert "op.create_continuous_aggregate('mt5_agg_x', 'SELECT 1', source='mt5_x'" in code
    assert "op.add_retention_policy('mt5_x', '90 days', owner='mt5_owner'" in code
    assert "op.add_refresh_policy('mt5_agg_x', start_offset='1 day'" in code
    assert "op.refresh_continuous_aggregate('v', concurrently=False, schema=None)" in code
    compile(code.replace("    ", ""), "<rendered>", "exec")


def test_offline_needs_an_edition() -> None:
    with pytest.raises(MigrationError, match="-x edition"):
        offline(None, lambda o: migration_edition(o.get_context()))


def test_offline_refresh_leaves_the_transaction_on_timescale_only() -> None:
    ts = offline(Edition.TIMESCALE, lambda o: o.refresh_continuous_aggregate("v"))
    assert ts.split() == ["BEGIN;", "COMMIT;", "CALL", "refresh_continuous_aggregate('public.v',",
                          "NULL,", "NULL);", "BEGIN;", "COMMIT;"]
    pg = offline(Edition.POSTGRESQL, lambda o: o.refresh_continuous_aggregate("v"))
    assert "COMMIT;" in pg and pg.count("BEGIN;") == 1
    assert "REFRESH MATERIALIZED VIEW public.v;" in pg


def test_offline_sql_is_verbatim() -> None:
    """No bind-parameter parsing (':1') and no doubled percent signs in DO blocks."""
    sql = offline(Edition.TIMESCALE, lambda o: o.create_continuous_aggregate(
        "mt5_agg_x", "SELECT '{\"a\":1}'::jsonb AS j", source="mt5_x", bucket_width="1 hour",
        unique_key=["j"], tenant_view=None))
    assert "'{\"a\":1}'::jsonb" in sql and "%%" not in sql
    assert "EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY'" in sql


@pytest.mark.parametrize("edition", list(Edition))
def test_every_operation_generates_offline(edition: Edition) -> None:
    def build(o: Operations) -> None:
        for op in FORWARD:
            o.invoke(op)
        for op in reversed(FORWARD):
            o.invoke(op.reverse())

    sql = offline(edition, build)
    assert sql.count("CREATE POLICY") == 2 and sql.count("DROP POLICY") == 2
    assert ("add_retention_policy" in sql) is edition.has_continuous_aggregates
