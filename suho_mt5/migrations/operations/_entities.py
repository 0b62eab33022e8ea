"""What the custom operations create and drop, as value objects (the way alembic_utils models
its entities): each entity declares its parameters once, as dataclass fields, and knows the
SQL that creates and drops it on each edition.

The operations in :mod:`._ops` are generic: ``op.create_hypertable(...)`` builds a
:class:`Hypertable` from its arguments and creates it; ``op.drop_hypertable(...)`` builds one
and drops it; the reverse of one is the other, carrying the same entity. A drop needs only
the entity's identity, so a bare drop cannot be reversed (:meth:`Entity.missing`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import ClassVar

from suho_mt5 import _names
from suho_mt5.db import Edition
from suho_mt5.errors import MigrationError
from suho_mt5.migrations.operations._sql import (
    CATALOG_TABLE,
    DEFAULT_SCHEMA,
    TENANT_SETTING,
    IntervalLike,
    as_role,
    catalog_delete,
    catalog_update,
    check_rls_sql,
    do_block,
    ident,
    interval_sql,
    literal,
    qualified,
    tenant_predicate,
)

__all__ = [
    "AggregateRefresh",
    "Columnstore",
    "ContinuousAggregate",
    "Entity",
    "Hypertable",
    "RefreshPolicy",
    "RetentionPolicy",
    "TenantRLS",
    "aggregate_index_name",
    "aggregate_index_sql",
]

#: Roles the schema is built around (created by the init revision).
OWNER_ROLE = _names.OWNER_ROLE
MAINTENANCE_ROLE = _names.MAINTENANCE_ROLE

RLS_COMMANDS = {
    "SELECT": "USING (true)",
    "DELETE": "USING (true)",
    "INSERT": "WITH CHECK (true)",
    "UPDATE": "USING (true) WITH CHECK (true)",
    "ALL": "USING (true) WITH CHECK (true)",
}


@dataclass(frozen=True)
class Entity:
    """A database object the custom operations create and drop."""

    _: KW_ONLY
    schema: str | None = None

    #: Fields a drop may leave out (None) but a create needs.
    needed_to_create: ClassVar[tuple[str, ...]] = ()

    @property
    def schema_name(self) -> str:
        return self.schema or DEFAULT_SCHEMA

    def missing(self) -> list[str]:
        """The fields a create needs that this entity does not know."""
        return [name for name in self.needed_to_create if getattr(self, name) is None]

    def create_sql(self, edition: Edition) -> list[str]:
        raise NotImplementedError

    def drop_sql(self, edition: Edition) -> list[str]:
        raise NotImplementedError


@dataclass(frozen=True)
class Hypertable(Entity):
    """A time-series table: time dimension + hash(tenant) dimension.

    On plain PostgreSQL the table stays a table and gets the ``(time DESC)`` index
    ``create_hypertable`` would have made, under the same name, so that the models and the
    drift check see the same indexes on every edition. Recorded in
    ``mt5_timeseries_catalog`` either way (monitoring views, ``mt5_maintain()``). Dropping
    it drops the table (TimescaleDB cannot turn a hypertable back into a table).
    """

    table_name: str
    time_column: str = "time"
    _: KW_ONLY
    chunk_time_interval: IntervalLike | None = None
    tenant_column: str | None = "tenant_id"
    tenant_partitions: int = 4

    needed_to_create: ClassVar[tuple[str, ...]] = ("chunk_time_interval",)

    def create_sql(self, edition: Edition) -> list[str]:
        table, schema, time_column = self.table_name, self.schema_name, self.time_column
        assert self.chunk_time_interval is not None
        rel = qualified(table, schema)
        if self.tenant_column is not None and self.tenant_partitions < 1:
            raise MigrationError(f"tenant_partitions must be >= 1, got {self.tenant_partitions}")
        interval = interval_sql(self.chunk_time_interval)
        stmts: list[str] = []
        if edition.has_hypertables:
            stmts.append(f"SELECT create_hypertable({literal(rel)}, "
                         f"by_range({literal(time_column)}, {interval}))")
            if self.tenant_column is not None:
                stmts.append(f"SELECT add_dimension({literal(rel)}, "
                             f"by_hash({literal(self.tenant_column)}, {self.tenant_partitions}))")
        else:
            stmts.append(f"CREATE INDEX {ident(f'{table}_{time_column}_idx')} "
                         f"ON {rel} ({ident(time_column)} DESC)")
        tenant = self.tenant_column
        stmts.append(
            f"INSERT INTO {ident(CATALOG_TABLE)} (relation_schema, relation_name, kind, "
            "time_column, chunk_time_interval, tenant_column, tenant_partitions) VALUES ("
            f"{literal(schema)}, {literal(table)}, 'hypertable', {literal(time_column)}, "
            f"{interval}, {literal(tenant) if tenant else 'NULL'}, "
            f"{self.tenant_partitions if tenant else 'NULL'})"
        )
        return stmts

    def drop_sql(self, edition: Edition) -> list[str]:
        return [f"DROP TABLE {qualified(self.table_name, self.schema_name)}",
                catalog_delete(self.table_name, self.schema_name)]


@dataclass(frozen=True)
class Columnstore(Entity):
    """The columnstore (TimescaleDB compression) of a hypertable, and the policy that
    converts its chunks once they are older than ``after``.

    timescale only: TimescaleDB under the Apache license and plain PostgreSQL have no
    columnstore, and there this creates nothing (the tables stay in the rowstore;
    ``health_check()`` says so). ``segmentby`` columns stay plain values, one per batch of up
    to 1,000 rows, and lead the compressed chunk's index; ``orderby`` orders the rows of a
    batch and gives every batch the min/max of its columns; ``sparse_index`` adds more
    (``bloom(col)``, ``minmax(col)``). The policy's job runs as ``owner`` (converting a chunk
    needs the table's owner). Columnstore and row-level security exclude each other
    (docs/schema.md, trap 3): a table with row security is refused with a clear message.
    Dropping converts every chunk back to the rowstore first, which can take long.
    """

    table_name: str
    _: KW_ONLY
    segmentby: Sequence[str] | None = None
    orderby: str | None = None
    sparse_index: str | None = None
    after: IntervalLike | None = None
    owner: str | None = OWNER_ROLE

    needed_to_create: ClassVar[tuple[str, ...]] = ("segmentby", "orderby", "after")

    def __post_init__(self) -> None:
        if self.segmentby is not None:
            object.__setattr__(self, "segmentby", tuple(self.segmentby))

    def create_sql(self, edition: Edition) -> list[str]:
        if not edition.has_columnstore:
            return []
        assert self.segmentby is not None and self.orderby is not None
        assert self.after is not None
        rel = qualified(self.table_name, self.schema_name)
        options = [
            "timescaledb.enable_columnstore = true",
            f"timescaledb.segmentby = {literal(', '.join(ident(c) for c in self.segmentby))}",
            f"timescaledb.orderby = {literal(self.orderby)}",
        ]
        if self.sparse_index:
            options.append(f"timescaledb.sparse_index = {literal(self.sparse_index)}")
        return [
            do_block(
                "    IF EXISTS (SELECT 1 FROM pg_class c\n"
                f"               WHERE c.oid = {literal(rel)}::regclass\n"
                "                 AND (c.relrowsecurity OR c.relforcerowsecurity)) THEN\n"
                f"        RAISE EXCEPTION 'cannot enable the columnstore of %: it has row-level "
                "security, and TimescaleDB cannot combine the two', "
                f"{literal(rel)} USING ERRCODE = 'feature_not_supported';\n"
                "    END IF;"),
            f"ALTER TABLE {rel} SET ({', '.join(options)})",
            *as_role(self.owner, f"CALL add_columnstore_policy({literal(rel)}, "
                                 f"after => {interval_sql(self.after)})"),
        ]

    def drop_sql(self, edition: Edition) -> list[str]:
        if not edition.has_columnstore:
            return []
        rel = qualified(self.table_name, self.schema_name)
        return [
            f"CALL remove_columnstore_policy({literal(rel)}, if_exists => true)",
            f"SELECT count(decompress_chunk(c, true)) FROM show_chunks({literal(rel)}) c",
            f"ALTER TABLE {rel} SET (timescaledb.enable_columnstore = false)",
        ]


@dataclass(frozen=True)
class TenantRLS(Entity):
    """Row-level security ENABLEd and FORCEd on a tenant table, with a fail-closed policy.

    The policy (``FOR ALL TO PUBLIC``) admits a row only when its tenant column equals
    ``(SELECT NULLIF(current_setting(<setting>, true), ''))``: no tenant or an empty tenant
    sees nothing and inserts nothing, and the sub-select is evaluated once per statement.
    ``cross_tenant`` adds permissive policies for roles that work across tenants, e.g.
    ``{"mt5_ingest": ["INSERT"], "mt5_compliance": ["SELECT"]}``. On TimescaleDB a
    hypertable with columnstore is refused, and the flags are checked afterwards both ways
    (docs/schema.md, trap 3).
    """

    table_name: str
    _: KW_ONLY
    tenant_column: str = "tenant_id"
    setting: str = TENANT_SETTING
    policy_name: str = "tenant_isolation"
    cross_tenant: Mapping[str, Sequence[str]] | None = None

    def __post_init__(self) -> None:
        frozen = {role: tuple(c.upper() for c in commands)
                  for role, commands in (self.cross_tenant or {}).items()}
        for role, commands in frozen.items():
            for command in commands:
                if command not in RLS_COMMANDS:
                    raise MigrationError(f"unknown policy command {command!r} for role {role!r}")
        object.__setattr__(self, "cross_tenant", frozen)

    def _cross_policies(self) -> list[tuple[str, str, str]]:
        """(policy name, role, command) of every cross-tenant policy."""
        return [(f"{role}_{command.lower()}", role, command)
                for role, commands in sorted((self.cross_tenant or {}).items())
                for command in commands]

    def create_sql(self, edition: Edition) -> list[str]:
        table, schema = self.table_name, self.schema_name
        rel = qualified(table, schema)
        stmts: list[str] = []
        if edition.has_hypertables:
            # Columnstore and RLS exclude each other (docs/schema.md, trap 3): refuse with a
            # clear message instead of TimescaleDB's, before anything is half-done.
            stmts.append(do_block(
                "    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables h\n"
                f"               WHERE h.hypertable_schema = {literal(schema)}\n"
                f"                 AND h.hypertable_name = {literal(table)}\n"
                "                 AND h.compression_enabled) THEN\n"
                f"        RAISE EXCEPTION 'cannot enable tenant row-level security on %: it has "
                "columnstore (compression) enabled, and TimescaleDB cannot combine the two', "
                f"{literal(rel)} USING ERRCODE = 'feature_not_supported';\n"
                "    END IF;"))
        predicate = tenant_predicate(self.tenant_column, self.setting)
        stmts += [
            f"ALTER TABLE {rel} ENABLE ROW LEVEL SECURITY",
            f"ALTER TABLE {rel} FORCE ROW LEVEL SECURITY",
            f"CREATE POLICY {ident(self.policy_name)} ON {rel} AS PERMISSIVE FOR ALL TO PUBLIC "
            f"USING ({predicate}) WITH CHECK ({predicate})",
        ]
        stmts += [f"CREATE POLICY {ident(name)} ON {rel} AS PERMISSIVE FOR {command} "
                  f"TO {ident(role)} {RLS_COMMANDS[command]}"
                  for name, role, command in self._cross_policies()]
        stmts.append(check_rls_sql(table, schema, expected=True))
        return stmts

    def drop_sql(self, edition: Edition) -> list[str]:
        rel = qualified(self.table_name, self.schema_name)
        return [
            f"DROP POLICY {ident(self.policy_name)} ON {rel}",
            *(f"DROP POLICY {ident(name)} ON {rel}" for name, _, _ in self._cross_policies()),
            f"ALTER TABLE {rel} NO FORCE ROW LEVEL SECURITY",
            f"ALTER TABLE {rel} DISABLE ROW LEVEL SECURITY",
            check_rls_sql(self.table_name, self.schema_name, expected=False),
        ]


def _index_column(column: str) -> tuple[str, str]:
    name, _, order = column.partition(" ")
    if order.strip().upper() not in ("", "ASC", "DESC"):
        raise MigrationError(f"not a column of an index: {column!r}")
    return name, order.strip().upper()


def aggregate_index_name(view_name: str, columns: Sequence[str]) -> str:
    """``<aggregate>_<col>_..._idx``, the name :class:`ContinuousAggregate` gives an index.

    >>> aggregate_index_name("mt5_agg_x", ["tenant_id", "bucket DESC"])
    'mt5_agg_x_tenant_id_bucket_idx'
    """
    return f"{view_name}_{'_'.join(_index_column(c)[0] for c in columns)}_idx"


def aggregate_index_sql(view_name: str, columns: Sequence[str],
                        schema: str = DEFAULT_SCHEMA) -> str:
    """``CREATE INDEX`` on an aggregate (on TimescaleDB the index goes to its
    materialization hypertable, in ``_timescaledb_internal``)."""
    cols = ", ".join(f"{ident(n)} {o}".rstrip() for n, o in map(_index_column, columns))
    return (f"CREATE INDEX {ident(aggregate_index_name(view_name, columns))} "
            f"ON {qualified(view_name, schema)} ({cols})")


def _rls_guc(source: str) -> str:
    # One transaction-local marker per source table, so two aggregates on two tables in one
    # migration do not mix up what to restore.
    return "suho_mt5.rls_restore_" + re.sub(r"[^a-z0-9_]", "_", source.lower())


def _suspend_rls_sql(source: str, schema: str) -> str:
    rel = literal(qualified(source, schema))
    guc = literal(_rls_guc(source))
    return do_block(
        "    -- TimescaleDB refuses a continuous aggregate on a table with row security (ENABLEd\n"
        "    -- or FORCEd), docs/schema.md, trap 1: switch both off for the length of this\n"
        "    -- transaction.\n"
        "    PERFORM set_config("
        f"{guc}, (SELECT CASE WHEN c.relrowsecurity THEN 'e' ELSE '' END || "
        "CASE WHEN c.relforcerowsecurity THEN 'f' ELSE '' END "
        f"FROM pg_class c WHERE c.oid = {rel}::regclass), true);\n"
        f"    IF strpos(current_setting({guc}), 'e') > 0 THEN\n"
        f"        EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', {rel});\n"
        "    END IF;\n"
        f"    IF strpos(current_setting({guc}), 'f') > 0 THEN\n"
        f"        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', {rel});\n"
        "    END IF;"
    )


def _restore_rls_sql(source: str, schema: str) -> str:
    rel = literal(qualified(source, schema))
    guc = literal(_rls_guc(source))
    return do_block(
        f"    IF strpos(current_setting({guc}), 'e') > 0 THEN\n"
        f"        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', {rel});\n"
        "    END IF;\n"
        f"    IF strpos(current_setting({guc}), 'f') > 0 THEN\n"
        f"        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', {rel});\n"
        "    END IF;\n"
        "    IF EXISTS (SELECT 1 FROM pg_class c\n"
        f"               WHERE c.oid = {rel}::regclass\n"
        "                 AND ((strpos(current_setting("
        f"{guc}), 'e') > 0) IS DISTINCT FROM c.relrowsecurity\n"
        "                  OR (strpos(current_setting("
        f"{guc}), 'f') > 0) IS DISTINCT FROM c.relforcerowsecurity)) THEN\n"
        "        RAISE EXCEPTION 'row-level security of % was not restored', "
        f"{rel} USING ERRCODE = 'object_not_in_prerequisite_state';\n"
        "    END IF;\n"
        f"    PERFORM set_config({guc}, '', true);"
    )


@dataclass(frozen=True)
class ContinuousAggregate(Entity):
    """An aggregate over a tenant hypertable, closed to everyone but its owner, plus a
    ``security_barrier`` view that shows the current tenant's rows of it.

    timescale: a continuous aggregate created ``WITH NO DATA`` (refresh it with
    ``op.refresh_continuous_aggregate`` or a refresh policy). If ``source`` has row-level
    security, it is switched off and back on around the ``CREATE`` in the same transaction
    (docs/schema.md, trap 1) and verified. Other editions: a materialized view with a unique
    index on ``unique_key`` so ``REFRESH ... CONCURRENTLY`` works.

    ``owner`` (default ``mt5_maintenance``, which has ``BYPASSRLS``) owns and refreshes it;
    a refresh by an owner subject to row security would materialize nothing (trap 4).
    ``reader_roles`` may read ``tenant_view``; nobody gets the aggregate itself (trap 2).

    ``indexes``: column lists of the indexes tenant queries need, tenant first (a column
    written ``"bucket DESC"`` is descending), on every edition. On timescale TimescaleDB's own
    per-column indexes (``create_group_indexes``) are not made when ``indexes`` are given:
    ``(account_id, bucket)`` serves no query that is filtered on the tenant first.
    ``source`` may be another aggregate (a hierarchical aggregate).
    """

    view_name: str
    definition: str | None = None
    _: KW_ONLY
    source: str | None = None
    bucket_width: IntervalLike | None = None
    unique_key: Sequence[str] | None = None
    tenant_view: str | None  # no default: a drop must say whether there is one
    reader_roles: Sequence[str] = ()
    owner: str | None = MAINTENANCE_ROLE
    tenant_view_owner: str | None = OWNER_ROLE
    tenant_column: str = "tenant_id"
    setting: str = TENANT_SETTING
    materialized_only: bool = False
    indexes: Sequence[Sequence[str]] = ()

    needed_to_create: ClassVar[tuple[str, ...]] = (
        "definition", "source", "bucket_width", "unique_key")

    def __post_init__(self) -> None:
        if self.unique_key is not None:
            object.__setattr__(self, "unique_key", tuple(self.unique_key))
        object.__setattr__(self, "reader_roles", tuple(self.reader_roles))
        object.__setattr__(self, "indexes", tuple(tuple(cols) for cols in self.indexes))

    def create_sql(self, edition: Edition) -> list[str]:
        name, schema = self.view_name, self.schema_name
        assert self.definition is not None and self.source is not None
        assert self.bucket_width is not None and self.unique_key is not None
        rel = qualified(name, schema)
        body = self.definition.strip().rstrip(";")
        stmts: list[str] = []
        if edition.has_continuous_aggregates:
            only = "true" if self.materialized_only else "false"
            groups = ", timescaledb.create_group_indexes = false" if self.indexes else ""
            stmts += [
                _suspend_rls_sql(self.source, schema),
                f"CREATE MATERIALIZED VIEW {rel} WITH (timescaledb.continuous, "
                f"timescaledb.materialized_only = {only}{groups}) AS\n{body}\nWITH NO DATA",
                _restore_rls_sql(self.source, schema),
            ]
        else:
            stmts += [
                f"CREATE MATERIALIZED VIEW {rel} AS\n{body}\nWITH DATA",
                # REFRESH ... CONCURRENTLY (readers are not blocked) needs a unique index.
                f"CREATE UNIQUE INDEX {ident(f'{name}_key')} ON {rel} "
                f"({', '.join(ident(c) for c in self.unique_key)})",
            ]
        stmts += [aggregate_index_sql(name, columns, schema) for columns in self.indexes]
        if self.owner:
            # The owner refreshes it; it must see every tenant (BYPASSRLS), docs/schema.md,
            # trap 4.
            stmts.append(f"ALTER MATERIALIZED VIEW {rel} OWNER TO {ident(self.owner)}")
        # Aggregates have no row security of their own (docs/schema.md, trap 2): nobody reads
        # them directly.
        stmts.append(f"REVOKE ALL ON {rel} FROM PUBLIC")
        if self.tenant_view:
            view = qualified(self.tenant_view, schema)
            if self.tenant_view_owner:
                stmts.append(f"GRANT SELECT ON {rel} TO {ident(self.tenant_view_owner)}")
            stmts.append(f"CREATE VIEW {view} WITH (security_barrier = true) AS\n"
                         f"SELECT * FROM {rel}\n"
                         f"WHERE {tenant_predicate(self.tenant_column, self.setting)}")
            if self.tenant_view_owner:
                stmts.append(f"ALTER VIEW {view} OWNER TO {ident(self.tenant_view_owner)}")
            stmts.append(f"REVOKE ALL ON {view} FROM PUBLIC")
            readers = sorted(set(self.reader_roles))
            if readers:
                stmts.append(f"GRANT SELECT ON {view} TO {', '.join(ident(r) for r in readers)}")
        tenant_view = literal(self.tenant_view) if self.tenant_view else "NULL"
        stmts.append(
            f"INSERT INTO {ident(CATALOG_TABLE)} (relation_schema, relation_name, kind, "
            "source_relation, bucket_width, tenant_view) VALUES ("
            f"{literal(schema)}, {literal(name)}, 'aggregate', {literal(self.source)}, "
            f"{interval_sql(self.bucket_width)}, {tenant_view})"
        )
        return stmts

    def drop_sql(self, edition: Edition) -> list[str]:
        stmts = [f"DROP VIEW {qualified(self.tenant_view, self.schema_name)}"
                 ] if self.tenant_view else []
        return [*stmts, f"DROP MATERIALIZED VIEW {qualified(self.view_name, self.schema_name)}",
                catalog_delete(self.view_name, self.schema_name)]


@dataclass(frozen=True)
class AggregateRefresh(Entity):
    """Refreshing an aggregate now (``op.refresh_continuous_aggregate``): on timescale
    ``CALL refresh_continuous_aggregate``, which must run outside a transaction block
    (docs/schema.md, trap 5); elsewhere ``REFRESH MATERIALIZED VIEW``."""

    view_name: str
    _: KW_ONLY
    concurrently: bool = False

    def create_sql(self, edition: Edition) -> list[str]:
        rel = qualified(self.view_name, self.schema_name)
        if edition.has_continuous_aggregates:
            return [f"CALL refresh_continuous_aggregate({literal(rel)}, NULL, NULL)"]
        how = "CONCURRENTLY " if self.concurrently else ""
        return [f"REFRESH MATERIALIZED VIEW {how}{rel}",
                catalog_update(self.view_name, self.schema_name, {"last_refresh_at": "now()"})]

    drop_sql = create_sql  # a refresh cannot be undone: its reverse is another refresh


@dataclass(frozen=True)
class RetentionPolicy(Entity):
    """Drop data older than ``drop_after`` from a hypertable or aggregate.

    timescale: ``add_retention_policy`` run as ``owner`` (the job runs as its owner, and
    TimescaleDB wants the relation's owner). Other editions: the period is recorded in
    ``mt5_timeseries_catalog`` and ``CALL mt5_maintain()`` applies it (``drop_chunks`` on
    apache, batched ``DELETE`` on postgresql).
    """

    relation: str
    drop_after: IntervalLike | None = None
    _: KW_ONLY
    owner: str | None = OWNER_ROLE

    needed_to_create: ClassVar[tuple[str, ...]] = ("drop_after",)

    def create_sql(self, edition: Edition) -> list[str]:
        assert self.drop_after is not None
        interval = interval_sql(self.drop_after)
        rel = literal(qualified(self.relation, self.schema_name))
        stmts = as_role(self.owner, f"SELECT add_retention_policy({rel}, drop_after => "
                                    f"{interval})") if edition.has_continuous_aggregates else []
        return [*stmts, catalog_update(self.relation, self.schema_name,
                                       {"retention": interval}, must_exist=True)]

    def drop_sql(self, edition: Edition) -> list[str]:
        rel = literal(qualified(self.relation, self.schema_name))
        stmts = [f"SELECT remove_retention_policy({rel}, if_exists => true)"
                 ] if edition.has_continuous_aggregates else []
        return [*stmts, catalog_update(self.relation, self.schema_name, {"retention": "NULL"})]


@dataclass(frozen=True)
class RefreshPolicy(Entity):
    """Refresh an aggregate on a schedule, over ``[now - start_offset, now - end_offset)``
    (``None``: unbounded).

    timescale: ``add_continuous_aggregate_policy`` run as ``owner`` (default
    ``mt5_maintenance``), so the job runs as a role that sees every tenant. Other editions:
    recorded for ``CALL mt5_maintain()``, which refreshes the materialized view.
    """

    view_name: str
    _: KW_ONLY
    start_offset: IntervalLike | None = None
    end_offset: IntervalLike | None = None
    schedule_interval: IntervalLike | None = None
    owner: str | None = MAINTENANCE_ROLE

    needed_to_create: ClassVar[tuple[str, ...]] = ("schedule_interval",)

    def create_sql(self, edition: Edition) -> list[str]:
        assert self.schedule_interval is not None
        start, end, schedule = (
            "NULL" if value is None else interval_sql(value)
            for value in (self.start_offset, self.end_offset, self.schedule_interval))
        rel = literal(qualified(self.view_name, self.schema_name))
        stmts = as_role(self.owner, f"SELECT add_continuous_aggregate_policy({rel}, "
                                    f"start_offset => {start}, end_offset => {end}, "
                                    f"schedule_interval => {schedule})"
                        ) if edition.has_continuous_aggregates else []
        values = {"refresh_start_offset": start, "refresh_end_offset": end,
                  "refresh_schedule": schedule}
        return [*stmts, catalog_update(self.view_name, self.schema_name, values, must_exist=True)]

    def drop_sql(self, edition: Edition) -> list[str]:
        rel = literal(qualified(self.view_name, self.schema_name))
        stmts = [f"SELECT remove_continuous_aggregate_policy({rel}, if_exists => true)"
                 ] if edition.has_continuous_aggregates else []
        values = dict.fromkeys(("refresh_start_offset", "refresh_end_offset",
                                "refresh_schedule"), "NULL")
        return [*stmts, catalog_update(self.view_name, self.schema_name, values)]


#: Every entity class, for tests and the generic operations.
ENTITIES: tuple[type[Entity], ...] = (
    Hypertable, Columnstore, TenantRLS, ContinuousAggregate, AggregateRefresh, RetentionPolicy,
    RefreshPolicy)
