"""The tenant views of schema ``mt5_tenant`` (docs/schema.md, "Tenant isolation").

A tenant view is ``SELECT *`` of its table, and PostgreSQL fixes a view's columns when it is
created: a revision that adds a column to a table with a tenant view calls
:func:`replace_tenant_view_sql` afterwards (``CREATE OR REPLACE VIEW`` may append columns), or
the tenant roles never see the new column. A schema test compares every view with its table.
"""

from __future__ import annotations

from suho_mt5._names import TENANT_SCHEMA
from suho_mt5.migrations.operations._sql import tenant_predicate

__all__ = ["TENANT_SCHEMA", "create_tenant_view_sql", "replace_tenant_view_sql"]


def _view_sql(verb: str, table: str) -> str:
    return (
        f"{verb} {TENANT_SCHEMA}.{table} WITH (security_barrier = true) AS "
        f"SELECT * FROM public.{table} WHERE {tenant_predicate()} "
        "WITH CASCADED CHECK OPTION"
    )


def create_tenant_view_sql(table: str) -> str:
    """``CREATE VIEW mt5_tenant.<table>``: the tenant's rows of ``public.<table>``.

    ``security_barrier`` keeps a caller's functions from seeing rows before the tenant filter
    has run; ``WITH CASCADED CHECK OPTION`` refuses to insert or update a row into another
    tenant (or with no tenant set) through the view.
    """
    return _view_sql("CREATE VIEW", table)


def replace_tenant_view_sql(table: str) -> str:
    """``CREATE OR REPLACE VIEW``: the same, picking up columns added to the table since."""
    return _view_sql("CREATE OR REPLACE VIEW", table)
