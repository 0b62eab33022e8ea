"""Database access: engines, edition detection, tenant-scoped sessions, API-key
authentication. (The drift check needs the models: :mod:`suho_mt5.migrations.drift`.)"""

from suho_mt5.db._single_backend import MAX_MESSAGE_BYTES
from suho_mt5.db.auth import (
    AccountIdentity,
    account_digest,
    account_digests,
    authenticate,
    key_fingerprints,
)
from suho_mt5.db.edition import Edition, ServerInfo, detect_edition, inspect_server, parse_edition
from suho_mt5.db.engine import (
    DATABASE_URL_ENV,
    database_url_from_env,
    is_single_backend,
    make_engine,
    normalize_url,
    prepare_threshold,
    psycopg_conninfo,
    register_timescaledb_dialect,
)
from suho_mt5.db.tenant import (
    TENANT_SETTING,
    TenantSession,
    set_tenant,
    tenant_connection,
    tenant_session,
    tenant_sessionmaker,
    validate_tenant_id,
)

__all__ = [
    "DATABASE_URL_ENV",
    "MAX_MESSAGE_BYTES",
    "TENANT_SETTING",
    "AccountIdentity",
    "Edition",
    "ServerInfo",
    "TenantSession",
    "account_digest",
    "account_digests",
    "authenticate",
    "database_url_from_env",
    "detect_edition",
    "inspect_server",
    "is_single_backend",
    "key_fingerprints",
    "make_engine",
    "normalize_url",
    "parse_edition",
    "prepare_threshold",
    "psycopg_conninfo",
    "register_timescaledb_dialect",
    "set_tenant",
    "tenant_connection",
    "tenant_session",
    "tenant_sessionmaker",
    "validate_tenant_id",
]
