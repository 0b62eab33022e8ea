"""tenant views: tenant roles reach rows only through security-barrier views in ``mt5_tenant``

On a real TimescaleDB server the tenant roles could not run a single query: revision 0001
revoked USAGE on ``_timescaledb_internal`` from PUBLIC, and the extension needs it in every
session. Granting it back alone would reopen what that revoke closed: chunks carry the
hypertable's grants but not its row-level security (docs/schema.md, trap 7), so a tenant role
with a grant on a hypertable reads every tenant from its chunks and from ``pg_stats`` on them.

This revision takes the other way out (docs/schema.md, "Tenant isolation"):

* ``mt5_app`` and ``mt5_readonly`` lose every privilege on the ``public.mt5_*`` tables, so no
  chunk, no statistics row and no raw aggregate is readable by them;
* schema ``mt5_tenant`` holds one view per table with the same name, owned by ``mt5_owner``,
  ``security_barrier``, filtered on the transaction's tenant, ``WITH CASCADED CHECK OPTION``
  (a row of another tenant, or with no tenant set, can neither be read nor written), and the
  tenant roles get exactly the privileges on the views they had on the tables;
* row-level security stays on every table as a second, independent layer (the views' owner
  is subject to it through FORCE);
* USAGE on TimescaleDB's internal schema goes back to PUBLIC, as the extension expects;
* ``mt5_ingest`` gets BYPASSRLS, so that the Data Bridge can COPY into the hypertables
  (its policies already let it through every tenant for what it is granted).

Tenant sessions put ``mt5_tenant`` first on the search path
(:func:`suho_mt5.db.set_tenant`), so the ORM models and the seed's unqualified SQL resolve to
the views; service roles keep reading and writing the tables.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 12:00:00
"""

from collections.abc import Sequence

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.migrations.operations import (
    TENANT_SCHEMA,
    create_tenant_view_sql,
    execute_sql,
    health_check_sql,
    migration_edition,
)

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = TENANT_SCHEMA

# table -> (privileges of mt5_app, privileges of mt5_readonly), as revisions 0002-0004 granted
# them on the tables; they move to the views unchanged.
TENANT_GRANTS: tuple[tuple[str, str, str], ...] = (
    ("mt5_user_accounts", "SELECT, INSERT, UPDATE, DELETE", "SELECT"),
    ("mt5_account_balance_history", "SELECT, INSERT", "SELECT"),
    ("mt5_broker_quotes", "SELECT, INSERT", "SELECT"),
    ("mt5_ea_heartbeat", "SELECT, INSERT", "SELECT"),
    ("mt5_trade_orders", "SELECT, INSERT, UPDATE", "SELECT"),
    ("mt5_trading_signals", "SELECT, INSERT, UPDATE", "SELECT"),
    ("mt5_signal_executions", "SELECT, INSERT, UPDATE", "SELECT"),
    ("mt5_audit_log", "INSERT", ""),
    ("mt5_risk_events", "SELECT, INSERT, UPDATE", "SELECT"),
    ("mt5_user_consents", "SELECT, INSERT, UPDATE", "SELECT"),
    ("mt5_compliance_reports", "SELECT", "SELECT"),
)
TENANT_ROLES = ("mt5_app", "mt5_readonly")
# as revision 0001 has them
HEALTH_TENANT_TABLES = tuple(t for t, _, _ in TENANT_GRANTS if t != "mt5_audit_log")
ALL_TABLES = (*HEALTH_TENANT_TABLES, "mt5_audit_log")
BCRYPT_COST = 12
PBKDF2_ITERATIONS = 25000


def _health_check(*, tenant_views: bool) -> str:
    return health_check_sql(tenant_tables=HEALTH_TENANT_TABLES, all_tables=ALL_TABLES,
                            bcrypt_cost=BCRYPT_COST, pbkdf2_iterations=PBKDF2_ITERATIONS,
                            tenant_views=tenant_views, or_replace=True)


def _grants(table: str) -> list[tuple[str, str]]:
    app, readonly = next((a, r) for t, a, r in TENANT_GRANTS if t == table)
    return [(role, privs) for role, privs in zip(TENANT_ROLES, (app, readonly), strict=True) if privs]


def upgrade() -> None:
    edition = migration_edition()
    execute_sql(f"CREATE SCHEMA {SCHEMA} AUTHORIZATION mt5_owner")
    execute_sql(
        f"COMMENT ON SCHEMA {SCHEMA} IS 'suho-mt5: the tenant roles'' only way to the data: one "
        "security-barrier view per table, filtered on app.current_tenant_id'"
    )
    execute_sql(f"REVOKE ALL ON SCHEMA {SCHEMA} FROM PUBLIC")
    execute_sql(f"GRANT USAGE ON SCHEMA {SCHEMA} TO {', '.join(TENANT_ROLES)}")
    for table, _, _ in TENANT_GRANTS:
        # The tenant roles' grants go first: with them, TimescaleDB also takes them off every
        # existing chunk (new chunks copy the hypertable's grants, which no longer name them).
        execute_sql(f"REVOKE ALL ON public.{table} FROM {', '.join(TENANT_ROLES)}")
        view = f"{SCHEMA}.{table}"
        execute_sql(create_tenant_view_sql(table))
        execute_sql(f"ALTER VIEW {view} OWNER TO mt5_owner")
        execute_sql(
            f"COMMENT ON VIEW {view} IS 'suho-mt5: public.{table}, rows of the tenant in "
            "app.current_tenant_id only (read and write)'"
        )
        for role, privileges in _grants(table):
            execute_sql(f"GRANT {privileges} ON {view} TO {role}")
    # COPY FROM refuses a table under row-level security for a role subject to it
    # ("COPY FROM not supported with row-level security"), and the Data Bridge writes with
    # COPY. mt5_ingest's policies already let it through to every tenant for exactly what it
    # is granted (INSERT on the time series, SELECT on accounts and signals), so BYPASSRLS
    # widens nothing it can do; it lets it COPY. Attributes are not inherited: the bridge's
    # login needs BYPASSRLS itself (docs/schema.md, Roles).
    execute_sql("ALTER ROLE mt5_ingest BYPASSRLS")
    # A tenant login's "session" row counts what it may do through the views.
    execute_sql(_health_check(tenant_views=True))
    if edition.has_hypertables:
        # Revision 0001 closed this schema; the extension reads its catalog through it in
        # every session. Nothing in it is readable by a tenant role any more (see above).
        execute_sql("GRANT USAGE ON SCHEMA _timescaledb_internal TO PUBLIC")


def downgrade() -> None:
    edition = migration_edition()
    execute_sql(_health_check(tenant_views=False))
    execute_sql("ALTER ROLE mt5_ingest NOBYPASSRLS")
    if edition.has_hypertables:
        execute_sql("REVOKE USAGE ON SCHEMA _timescaledb_internal FROM PUBLIC")
    for table, _, _ in reversed(TENANT_GRANTS):
        execute_sql(f"DROP VIEW {SCHEMA}.{table}")
        for role, privileges in _grants(table):
            execute_sql(f"GRANT {privileges} ON public.{table} TO {role}")
    execute_sql(f"DROP SCHEMA {SCHEMA}")
