"""Custom Alembic operations: generic create/drop operations over the entities of
:mod:`._entities`, registered on :class:`alembic.operations.Operations` when
:mod:`suho_mt5.migrations.operations` is imported (the way alembic_utils does it).

Each entity declares its parameters once; ``op.create_hypertable(*args, **kw)`` is
``op.create_entity(Hypertable(*args, **kw))``, and the reverse of a create is the drop of
the same entity (and back). Every operation builds what the edition supports
(docs/schema.md, "Editions"):

============================  ==========================  ===============================
operation                     timescale                   apache / postgresql
============================  ==========================  ===============================
create_hypertable             hypertable, time + hash     apache: same; postgresql:
                              (tenant) dimensions         ``<table>_<time>_idx`` index
enable_columnstore            columnstore + policy        nothing (they lack it)
create_continuous_aggregate   continuous aggregate        materialized view + unique index
add_retention_policy          ``add_retention_policy``    recorded for ``mt5_maintain()``
add_refresh_policy            continuous-aggregate        recorded for ``mt5_maintain()``
                              policy, owned by the
                              aggregate's owner
enable_tenant_rls             ENABLE + FORCE + policy     same
============================  ==========================  ===============================

The operations assume the migration runs as the session user (a superuser, or a role that
may ``SET ROLE`` to the owners named here); they ``SET LOCAL ROLE`` only around the
TimescaleDB calls whose job owner is the current user, and ``RESET ROLE`` after.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, ClassVar

from alembic.autogenerate import renderers
from alembic.autogenerate.api import AutogenContext
from alembic.operations import MigrateOperation, Operations

from suho_mt5.db import Edition
from suho_mt5.errors import MigrationError
from suho_mt5.migrations.operations._edition import execute_sql, migration_edition
from suho_mt5.migrations.operations._entities import (
    AggregateRefresh,
    Columnstore,
    ContinuousAggregate,
    Entity,
    Hypertable,
    RefreshPolicy,
    RetentionPolicy,
    TenantRLS,
)

__all__ = [
    "AddRefreshPolicyOp",
    "AddRetentionPolicyOp",
    "CreateContinuousAggregateOp",
    "CreateEntityOp",
    "CreateHypertableOp",
    "DisableColumnstoreOp",
    "DisableTenantRLSOp",
    "DropContinuousAggregateOp",
    "DropEntityOp",
    "DropHypertableOp",
    "EnableColumnstoreOp",
    "EnableTenantRLSOp",
    "EntityOp",
    "RefreshContinuousAggregateOp",
    "RemoveRefreshPolicyOp",
    "RemoveRetentionPolicyOp",
]

log = logging.getLogger(__name__)

#: entity class -> (its create operation, its drop operation)
_PAIRS: dict[type[Entity], dict[bool, type[EntityOp]]] = {}


class EntityOp(MigrateOperation):
    """Create (``creates = True``) or drop one entity. A subclass per entity and direction
    names the ``op.<name>(...)`` that builds the entity from its arguments."""

    entity_class: ClassVar[type[Entity]]
    creates: ClassVar[bool]
    #: ``op.<name>``; the generic ``op.create_entity``/``op.drop_entity`` have none.
    name: ClassVar[str | None] = None

    def __init__(self, *args: Any, **kw: Any) -> None:
        """The entity, or the arguments that build one (those of ``op.<name>``)."""
        entity = args[0] if len(args) == 1 and isinstance(args[0], Entity) and not kw else (
            self.entity_class(*args, **kw))
        if self.creates and (missing := entity.missing()):
            raise MigrationError(f"{self.name or 'create_entity'}() needs "
                                 f"{', '.join(missing)}")
        self.entity = entity

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name is None:
            return
        _PAIRS.setdefault(cls.entity_class, {})[cls.creates] = cls

        # A function of its own per operation: alembic proxies it as op.<name> and rewrites
        # its docstring.
        def invoke(cls: type[EntityOp], operations: Operations, *args: Any, **kw: Any) -> None:
            operations.invoke(cls(*args, **kw))

        invoke.__doc__ = (f"``op.{cls.name}(...)``: "
                          f"{'create' if cls.creates else 'drop'} a "
                          f":class:`{cls.entity_class.__name__}` built from the arguments.")
        cls.invoke = classmethod(invoke)  # type: ignore[attr-defined]
        Operations.register_operation(cls.name, "invoke")(cls)

    def reverse(self) -> EntityOp:
        if self.creates is False and (missing := self.entity.missing()):
            raise NotImplementedError(
                f"the dropped {type(self.entity).__name__}'s {', '.join(missing)} "
                "is not known: write its create by hand")
        return _PAIRS[type(self.entity)][not self.creates](self.entity)

    def sql(self, edition: Edition) -> list[str]:
        return self.entity.create_sql(edition) if self.creates else self.entity.drop_sql(edition)


@Operations.register_operation("create_entity", "create")
class CreateEntityOp(EntityOp):
    """``op.create_entity(Hypertable("mt5_x", chunk_time_interval="1 day"))``"""

    creates = True

    @classmethod
    def create(cls, operations: Operations, entity: Entity) -> None:
        """Create ``entity``."""
        operations.invoke(_PAIRS[type(entity)][True](entity))


@Operations.register_operation("drop_entity", "drop")
class DropEntityOp(EntityOp):
    """``op.drop_entity(Hypertable("mt5_x"))``"""

    creates = False

    @classmethod
    def drop(cls, operations: Operations, entity: Entity) -> None:
        """Drop ``entity``."""
        operations.invoke(_PAIRS[type(entity)][False](entity))


class CreateHypertableOp(CreateEntityOp):
    """``op.create_hypertable("mt5_x", "time", chunk_time_interval="1 day")``"""

    entity_class, name = Hypertable, "create_hypertable"


class DropHypertableOp(DropEntityOp):
    """``op.drop_hypertable("mt5_x")``: use it instead of ``drop_table``."""

    entity_class, name = Hypertable, "drop_hypertable"


class EnableColumnstoreOp(CreateEntityOp):
    """``op.enable_columnstore("mt5_x", segmentby=["tenant_id"], orderby="time DESC",
    after="2 days")`` (timescale; nothing elsewhere)"""

    entity_class, name = Columnstore, "enable_columnstore"


class DisableColumnstoreOp(DropEntityOp):
    """``op.disable_columnstore("mt5_x")``: every chunk back to the rowstore, then off."""

    entity_class, name = Columnstore, "disable_columnstore"


class EnableTenantRLSOp(CreateEntityOp):
    """``op.enable_tenant_rls("mt5_x", cross_tenant={"mt5_ingest": ["INSERT"]})``"""

    entity_class, name = TenantRLS, "enable_tenant_rls"


class DisableTenantRLSOp(DropEntityOp):
    """``op.disable_tenant_rls("mt5_x", cross_tenant=...)`` (the arguments of the enable)."""

    entity_class, name = TenantRLS, "disable_tenant_rls"


class CreateContinuousAggregateOp(CreateEntityOp):
    """``op.create_continuous_aggregate("mt5_agg_x", "SELECT ...", source="mt5_x", ...)``"""

    entity_class, name = ContinuousAggregate, "create_continuous_aggregate"


class DropContinuousAggregateOp(DropEntityOp):
    """``op.drop_continuous_aggregate("mt5_agg_x", tenant_view="mt5_x_view")``"""

    entity_class, name = ContinuousAggregate, "drop_continuous_aggregate"


class AddRetentionPolicyOp(CreateEntityOp):
    """``op.add_retention_policy("mt5_broker_quotes", "90 days")``"""

    entity_class, name = RetentionPolicy, "add_retention_policy"


class RemoveRetentionPolicyOp(DropEntityOp):
    """``op.remove_retention_policy("mt5_broker_quotes", drop_after="90 days")``"""

    entity_class, name = RetentionPolicy, "remove_retention_policy"


class AddRefreshPolicyOp(CreateEntityOp):
    """``op.add_refresh_policy("mt5_agg_x", start_offset="3 days", end_offset="1 hour",
    schedule_interval="30 minutes")``"""

    entity_class, name = RefreshPolicy, "add_refresh_policy"


class RemoveRefreshPolicyOp(DropEntityOp):
    """``op.remove_refresh_policy("mt5_agg_x")``"""

    entity_class, name = RefreshPolicy, "remove_refresh_policy"


class RefreshContinuousAggregateOp(CreateEntityOp):
    """``op.refresh_continuous_aggregate("mt5_agg_x")``: refresh an aggregate now.

    timescale: ``CALL refresh_continuous_aggregate(...)`` cannot run in a transaction block
    (docs/schema.md, trap 5): it runs in ``autocommit_block()``, so the migration's work so
    far is committed first; offline scripts get ``COMMIT;`` before and ``BEGIN;`` after it.
    Put it last in a revision. When the migration runs inside a transaction its caller
    holds, the refresh is skipped with a warning in the log: that transaction is not ours to
    commit. Other editions: ``REFRESH MATERIALIZED VIEW`` in the migration's transaction.
    A refresh cannot be undone: ``reverse()`` is another refresh.
    """

    entity_class, name = AggregateRefresh, "refresh_continuous_aggregate"

    def reverse(self) -> EntityOp:
        return RefreshContinuousAggregateOp(self.entity)


@Operations.implementation_for(EntityOp)
def _run(operations: Operations, operation: EntityOp) -> None:
    for statement in operation.sql(migration_edition(operations.get_context())):
        execute_sql(statement, operations)


@Operations.implementation_for(RefreshContinuousAggregateOp)
def _refresh(operations: Operations, operation: RefreshContinuousAggregateOp) -> None:
    ctx = operations.get_context()
    if not migration_edition(ctx).has_continuous_aggregates:
        _run(operations, operation)
    elif not ctx.as_sql and getattr(ctx, "_in_external_transaction", False):
        # The caller holds the transaction (a connection handed over already inside one):
        # it cannot be committed from here, and the refresh cannot run inside it.
        log.warning(
            "not refreshing %s now: the migration runs inside the caller's transaction; "
            "its refresh policy (or CALL refresh_continuous_aggregate) will materialize it",
            operation.entity.view_name,  # type: ignore[attr-defined]
        )
    else:
        with ctx.autocommit_block():
            _run(operations, operation)


def _plain(value: Any) -> Any:
    """Tuples as lists, so rendered calls read like the revisions people write."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@renderers.dispatch_for(EntityOp)
def _render(ctx: AutogenContext, operation: EntityOp) -> str:
    """``op.<name>(<positional fields>, <keyword fields>)`` for autogenerated revisions."""
    entity = operation.entity
    if operation.name is None:
        return f"op.{'create' if operation.creates else 'drop'}_entity({entity!r})"
    # The base class's ``schema`` comes first in fields(); revisions name it last.
    fields = sorted(dataclasses.fields(entity), key=lambda f: (f.kw_only, f.name == "schema"))
    args = [repr(_plain(getattr(entity, f.name))) for f in fields if not f.kw_only]
    args += [f"{f.name}={_plain(getattr(entity, f.name))!r}" for f in fields if f.kw_only]
    return f"op.{operation.name}({', '.join(args)})"
