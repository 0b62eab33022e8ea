"""Custom Alembic operations and helpers for suho-mt5 migrations.

Importing this package registers the operations on ``alembic.op`` (as alembic_utils does
with its entities), so a revision only needs::

    import suho_mt5.migrations.operations  # noqa: F401  (registers op.create_hypertable & co.)

    def upgrade() -> None:
        op.create_table("mt5_fills", ...)
        op.create_hypertable("mt5_fills", "time", chunk_time_interval="7 days")
        op.enable_tenant_rls("mt5_fills", cross_tenant={"mt5_ingest": ["INSERT"]})
        op.add_retention_policy("mt5_fills", "2 years")

    def downgrade() -> None:
        op.drop_hypertable("mt5_fills")

Each operation builds what the server's edition supports (``timescale`` / ``apache`` /
``postgresql``, see :func:`migration_edition`) and has a ``reverse()``. The objects they
create and drop are entities (:class:`Hypertable`, :class:`TenantRLS`,
:class:`ContinuousAggregate`, :class:`RetentionPolicy`, :class:`RefreshPolicy`,
:class:`Columnstore`) that declare
their parameters once; ``op.create_entity(entity)`` and ``op.drop_entity(entity)`` take
them directly. Revisions never import ORM models.

>>> from suho_mt5.db import Edition
>>> tenant_predicate()
"tenant_id = (SELECT NULLIF(current_setting('app.current_tenant_id', true), ''))"
>>> bucket_expr(Edition.TIMESCALE, "1 minute")
"time_bucket(INTERVAL '1 minute', time)"
"""

from suho_mt5._names import (
    ALL_ROLES,
    APP_ROLE,
    COMPLIANCE_ROLE,
    INGEST_ROLE,
    READONLY_ROLE,
    TENANT_ROLES,
)
from suho_mt5.migrations.operations._edition import (
    EDITION_ATTRIBUTE,
    RawSQL,
    choose_install_edition,
    execute_sql,
    migration_edition,
    remember_edition,
)
from suho_mt5.migrations.operations._entities import (
    MAINTENANCE_ROLE,
    OWNER_ROLE,
    AggregateRefresh,
    Columnstore,
    ContinuousAggregate,
    Entity,
    Hypertable,
    RefreshPolicy,
    RetentionPolicy,
    TenantRLS,
    aggregate_index_name,
    aggregate_index_sql,
)
from suho_mt5.migrations.operations._health import health_check_sql
from suho_mt5.migrations.operations._offline import (
    SCHEMA_FILES,
    SchemaFile,
    render_schema_files,
    render_sql,
)
from suho_mt5.migrations.operations._ops import (
    AddRefreshPolicyOp,
    AddRetentionPolicyOp,
    CreateContinuousAggregateOp,
    CreateEntityOp,
    CreateHypertableOp,
    DisableColumnstoreOp,
    DisableTenantRLSOp,
    DropContinuousAggregateOp,
    DropEntityOp,
    DropHypertableOp,
    EnableColumnstoreOp,
    EnableTenantRLSOp,
    EntityOp,
    RefreshContinuousAggregateOp,
    RemoveRefreshPolicyOp,
    RemoveRetentionPolicyOp,
)
from suho_mt5.migrations.operations._sql import (
    CATALOG_TABLE,
    DEFAULT_SCHEMA,
    TENANT_SETTING,
    IntervalLike,
    bucket_expr,
    first_expr,
    ident,
    interval_sql,
    last_expr,
    literal,
    qualified,
    tenant_default,
    tenant_predicate,
)
from suho_mt5.migrations.operations._tenant_views import (
    TENANT_SCHEMA,
    create_tenant_view_sql,
    replace_tenant_view_sql,
)

__all__ = [
    "ALL_ROLES",
    "APP_ROLE",
    "CATALOG_TABLE",
    "COMPLIANCE_ROLE",
    "DEFAULT_SCHEMA",
    "EDITION_ATTRIBUTE",
    "INGEST_ROLE",
    "MAINTENANCE_ROLE",
    "OWNER_ROLE",
    "READONLY_ROLE",
    "SCHEMA_FILES",
    "TENANT_ROLES",
    "TENANT_SCHEMA",
    "TENANT_SETTING",
    "AddRefreshPolicyOp",
    "AddRetentionPolicyOp",
    "AggregateRefresh",
    "Columnstore",
    "ContinuousAggregate",
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
    "Entity",
    "EntityOp",
    "Hypertable",
    "IntervalLike",
    "RawSQL",
    "RefreshContinuousAggregateOp",
    "RefreshPolicy",
    "RemoveRefreshPolicyOp",
    "RemoveRetentionPolicyOp",
    "RetentionPolicy",
    "SchemaFile",
    "TenantRLS",
    "aggregate_index_name",
    "aggregate_index_sql",
    "bucket_expr",
    "choose_install_edition",
    "create_tenant_view_sql",
    "execute_sql",
    "first_expr",
    "health_check_sql",
    "ident",
    "interval_sql",
    "last_expr",
    "literal",
    "migration_edition",
    "qualified",
    "remember_edition",
    "render_schema_files",
    "render_sql",
    "replace_tenant_view_sql",
    "tenant_default",
    "tenant_predicate",
]
