"""Names every layer shares: the tenant setting, the database roles, the tenant-id rule.

This module imports nothing of suho-mt5 (and nothing outside the standard library), so the
protocol, the database layer, the migrations, the ingest layer and the gateway can all use
it without pulling each other in.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "ALL_ROLES",
    "APP_ROLE",
    "COMPLIANCE_ROLE",
    "INGEST_ROLE",
    "MAINTENANCE_ROLE",
    "OWNER_ROLE",
    "READONLY_ROLE",
    "TENANT_DEFAULT_SQL",
    "TENANT_ID_PATTERN",
    "TENANT_ID_RULE",
    "TENANT_ROLES",
    "TENANT_SCHEMA",
    "TENANT_SEARCH_PATH",
    "TENANT_SETTING",
]

#: The PostgreSQL setting that names the current tenant. Always set transaction-locally
#: (``set_config(..., true)``): a session-wide value would leak to the next user of a pooled
#: connection (docs/schema.md, trap 6).
TENANT_SETTING: Final = "app.current_tenant_id"

#: SQL for "the transaction's tenant, NULL when none or an empty one is set": the server
#: default of every ``tenant_id`` column and the right-hand side of every tenant filter.
TENANT_DEFAULT_SQL: Final = f"NULLIF(current_setting('{TENANT_SETTING}', true), '')"

#: The schema of the tenant views, the tenant roles' only way to the data (docs/schema.md,
#: "Tenant isolation"); tenant sessions put it first on the search path.
TENANT_SCHEMA: Final = "mt5_tenant"
#: The search path of a tenant session: the tenant views, then everything else.
TENANT_SEARCH_PATH: Final = f"{TENANT_SCHEMA}, public"

#: Owns the schema objects.
OWNER_ROLE: Final = "mt5_owner"
#: Owns and refreshes the aggregates, runs maintenance; sees every tenant.
MAINTENANCE_ROLE: Final = "mt5_maintenance"
#: Application role: reads and writes the current tenant's rows only.
APP_ROLE: Final = "mt5_app"
#: Read-only analytics: reads the current tenant's rows only.
READONLY_ROLE: Final = "mt5_readonly"
#: The Data Bridge: inserts time-series rows for every tenant.
INGEST_ROLE: Final = "mt5_ingest"
#: Compliance reporting: reads every tenant, writes reports, consents and audit events.
COMPLIANCE_ROLE: Final = "mt5_compliance"
#: Roles whose access is limited to the tenant in :data:`TENANT_SETTING`.
TENANT_ROLES: Final = (APP_ROLE, READONLY_ROLE)
#: Every role the init revision creates, in dependency-free order.
ALL_ROLES: Final = (
    OWNER_ROLE,
    MAINTENANCE_ROLE,
    APP_ROLE,
    READONLY_ROLE,
    INGEST_ROLE,
    COMPLIANCE_ROLE,
)

#: A tenant id: letters, digits and a few separators, enough for slugs, UUIDs and
#: e-mail-like ids, and nothing that could be mistaken for SQL or a setting list in a log.
#: Note that ``.`` is allowed, and a NATS subject token cannot hold it: the ingest layer
#: escapes tenant ids before they reach a subject.
TENANT_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")
#: :data:`TENANT_ID_PATTERN` in words, for error messages.
TENANT_ID_RULE: Final = (
    "1-128 characters, letters, digits and '_.:@-', starting with a letter or digit"
)
