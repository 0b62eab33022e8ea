"""init: extensions, roles, utility functions (schemas/00-init-migration.sql)

Builds, per edition:

* extensions: ``uuid-ossp`` always (the seed's Quick Start calls ``uuid_generate_v4()``),
  ``pgcrypto`` when the server offers it (checked when the SQL runs, so one offline script
  serves both kinds of server), ``timescaledb`` on the timescale and apache editions;
* ``mt5_schema_edition()``: the edition this database was built for, read by every later
  revision so upgrades and downgrades keep to it;
* the six roles (created only if missing: roles are shared by every database of a
  cluster), and on TimescaleDB the internal chunk schema closed to everyone but the owner
  and maintenance roles (docs/schema.md, trap 7);
* ``mt5_timeseries_catalog``: the hypertables and aggregates and their declared policies;
* ``health_check()``, ``generate_api_key()``, ``hash_api_key()``, ``verify_api_key()``.

Revision ID: 0001
Revises:
Create Date: 2026-11-24 23:20:00
"""

from collections.abc import Sequence

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.migrations.operations import (
    choose_install_edition,
    execute_sql,
    health_check_sql,
    migration_edition,
)

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# name, attributes enforced on every upgrade (also on roles that already existed), comment
ROLES: tuple[tuple[str, str, str], ...] = (
    ("mt5_owner", "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
     "suho-mt5: owns the mt5 schema objects; subject to row-level security (FORCE)"),
    ("mt5_maintenance", "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS",
     "suho-mt5: owns and refreshes the aggregates, runs mt5_maintain(); sees every tenant"),
    ("mt5_app", "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
     "suho-mt5: application, reads and writes the tenant in app.current_tenant_id only"),
    ("mt5_readonly", "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
     "suho-mt5: read-only analytics of the tenant in app.current_tenant_id"),
    # BYPASSRLS is revision 0009's to set (COPY into hypertables), not enforced here: roles
    # are shared by the cluster, and migrating another database must not take it away.
    ("mt5_ingest", "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION",
     "suho-mt5: Data Bridge, inserts time-series rows of every tenant"),
    ("mt5_compliance", "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
     "suho-mt5: compliance, reads every tenant, writes reports, consents, audit events"),
)
# TimescaleDB refuses to run a background job whose owner cannot log in: the roles owning
# retention (mt5_owner) and refresh (mt5_maintenance) jobs get LOGIN, without a password.
JOB_OWNERS = ("mt5_owner", "mt5_maintenance")

TENANT_TABLES = (
    "mt5_user_accounts",
    "mt5_account_balance_history",
    "mt5_broker_quotes",
    "mt5_ea_heartbeat",
    "mt5_trade_orders",
    "mt5_trading_signals",
    "mt5_signal_executions",
    "mt5_risk_events",
    "mt5_user_consents",
    "mt5_compliance_reports",
)
ALL_TABLES = (*TENANT_TABLES, "mt5_audit_log")

#: PBKDF2 iterations of the fallback API-key hash (no pgcrypto): ~45 ms on the WebAssembly
#: TimescaleDB engine, ~35 ms on native PostgreSQL 15 (measured, see docs/schema.md).
PBKDF2_ITERATIONS = 25000
BCRYPT_COST = 12

_PGCRYPTO_SCHEMA = (
    "(SELECT n.nspname FROM pg_catalog.pg_extension e "
    "JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pgcrypto')"
)


def _array(names: Sequence[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{n}'" for n in names) + "]::text[]"


def _roles_sql(login_roles: Sequence[str]) -> str:
    rows = ",\n        ".join(
        f"('{name}', '{attrs}', {'true' if name in login_roles else 'false'}, '{comment}')"
        for name, attrs, comment in ROLES
    )
    return f"""DO $suho$
DECLARE
    spec record;
BEGIN
    FOR spec IN SELECT * FROM (VALUES
        {rows}
    ) AS r(name, attributes, login, note)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = spec.name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', spec.name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by the migration of another database of this cluster
            END;
        END IF;
        -- Enforced on roles that already existed too: isolation depends on them.
        EXECUTE format('ALTER ROLE %I %s', spec.name, spec.attributes);
        IF spec.login THEN
            EXECUTE format('ALTER ROLE %I LOGIN', spec.name);
        END IF;
        EXECUTE format('COMMENT ON ROLE %I IS %L', spec.name, spec.note);
    END LOOP;
END
$suho$"""


DROP_ROLES_SQL = f"""DO $suho$
DECLARE
    role_name text;
    role_oid oid;
BEGIN
    -- Roles are shared by every database of the cluster: drop one only when nothing in any
    -- database depends on it any more and no role outside suho-mt5 was granted it.
    FOREACH role_name IN ARRAY {_array([r[0] for r in reversed(ROLES)])} LOOP
        SELECT oid INTO role_oid FROM pg_catalog.pg_roles WHERE rolname = role_name;
        IF role_oid IS NULL THEN
            CONTINUE;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_shdepend d
                   WHERE d.refclassid = 'pg_catalog.pg_authid'::regclass
                     AND d.refobjid = role_oid) THEN
            RAISE NOTICE 'keeping role %: objects in this or another database depend on it', role_name;
            CONTINUE;
        END IF;
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                   JOIN pg_catalog.pg_roles r ON r.oid = m.member
                   WHERE m.roleid = role_oid AND r.rolname NOT LIKE 'mt5\\_%') THEN
            RAISE NOTICE 'keeping role %: it is granted to other roles', role_name;
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format('DROP ROLE %I', role_name);
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'keeping role %: another database started using it meanwhile', role_name;
        END;
    END LOOP;
END
$suho$"""

EXTENSIONS_SQL = """DO $suho$
BEGIN
    -- bcrypt API-key hashes when the server has pgcrypto; hash_api_key() falls back to
    -- PBKDF2-HMAC-SHA256 in plain SQL where it has not (e.g. the PGlite TimescaleDB engine).
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'pgcrypto') THEN
        CREATE EXTENSION IF NOT EXISTS pgcrypto;
    END IF;
END
$suho$"""

CATALOG_SQL = """CREATE TABLE mt5_timeseries_catalog (
    relation_schema text NOT NULL DEFAULT 'public',
    relation_name text NOT NULL,
    kind text NOT NULL,
    time_column text,
    chunk_time_interval interval,
    tenant_column text,
    tenant_partitions integer,
    source_relation text,
    bucket_width interval,
    tenant_view text,
    retention interval,
    refresh_start_offset interval,
    refresh_end_offset interval,
    refresh_schedule interval,
    last_refresh_at timestamptz,
    last_retention_at timestamptz,
    last_retention_removed bigint,
    CONSTRAINT mt5_timeseries_catalog_pkey PRIMARY KEY (relation_schema, relation_name),
    CONSTRAINT mt5_timeseries_catalog_kind_check CHECK (kind IN ('hypertable', 'aggregate')),
    CONSTRAINT mt5_timeseries_catalog_shape_check CHECK (
        (kind = 'hypertable' AND time_column IS NOT NULL AND chunk_time_interval IS NOT NULL)
        OR (kind = 'aggregate' AND source_relation IS NOT NULL AND bucket_width IS NOT NULL)),
    CONSTRAINT mt5_timeseries_catalog_retention_check CHECK (retention IS NULL OR retention > INTERVAL '0')
)"""

PBKDF2_SQL = """CREATE FUNCTION mt5_pbkdf2_sha256(password bytea, salt bytea, iterations integer)
RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
-- PBKDF2-HMAC-SHA256 (RFC 8018) with a 32-byte result, on core sha256() only.
-- HMAC's inner and outer pads depend on the password alone, so they are built once.
DECLARE
    k bytea := password;
    ipad bytea;
    opad bytea;
    u bytea;
    t bit(256);
    i integer;
BEGIN
    IF iterations < 1 THEN
        RAISE EXCEPTION 'PBKDF2 needs at least one iteration' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(k) > 64 THEN
        k := sha256(k);
    END IF;
    k := k || decode(repeat('00', 64 - octet_length(k)), 'hex');
    ipad := k;
    opad := k;
    FOR i IN 0..63 LOOP
        ipad := set_byte(ipad, i, get_byte(k, i) # 54);   -- 0x36
        opad := set_byte(opad, i, get_byte(k, i) # 92);   -- 0x5c
    END LOOP;
    u := sha256(opad || sha256(ipad || salt || '\\x00000001'::bytea));
    t := ('x' || encode(u, 'hex'))::bit(256);
    FOR i IN 2..iterations LOOP
        u := sha256(opad || sha256(ipad || u));
        t := t # ('x' || encode(u, 'hex'))::bit(256);
    END LOOP;
    RETURN decode(
           lpad(to_hex(substring(t FROM 1 FOR 64)::bigint), 16, '0')
        || lpad(to_hex(substring(t FROM 65 FOR 64)::bigint), 16, '0')
        || lpad(to_hex(substring(t FROM 129 FOR 64)::bigint), 16, '0')
        || lpad(to_hex(substring(t FROM 193 FOR 64)::bigint), 16, '0'), 'hex');
END
$fn$"""

GENERATE_API_KEY_SQL = f"""CREATE FUNCTION generate_api_key()
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
-- 64 hex characters (256 bits) from the server's CSPRNG.
DECLARE
    crypto name := {_PGCRYPTO_SCHEMA};
    key text;
BEGIN
    IF crypto IS NOT NULL THEN
        EXECUTE format('SELECT encode(%I.gen_random_bytes(32), ''hex'')', crypto) INTO key;
    ELSE
        -- gen_random_uuid() draws 122 bits from pg_strong_random(), the same CSPRNG;
        -- SHA-256 folds three of them (366 bits) into 256 uniform bits.
        key := encode(sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                             || uuid_send(gen_random_uuid())), 'hex');
    END IF;
    RETURN key;
END
$fn$"""

HASH_API_KEY_SQL = f"""CREATE FUNCTION hash_api_key(api_key text)
RETURNS text
LANGUAGE plpgsql VOLATILE STRICT
SET search_path = pg_catalog, pg_temp
AS $fn$
-- bcrypt (cost {BCRYPT_COST}) through pgcrypto when it is installed, else
-- '$pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>'. Both carry their own parameters.
DECLARE
    crypto name := {_PGCRYPTO_SCHEMA};
    salt bytea;
    hashed text;
BEGIN
    IF api_key = '' THEN
        RAISE EXCEPTION 'an API key must not be empty' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(convert_to(api_key, 'UTF8')) > 72 THEN
        -- bcrypt ignores everything after 72 bytes; refuse rather than truncate silently.
        RAISE EXCEPTION 'an API key must be at most 72 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF crypto IS NOT NULL THEN
        EXECUTE format('SELECT %1$I.crypt($1, %1$I.gen_salt(''bf'', {BCRYPT_COST}))', crypto)
            INTO hashed USING api_key;
        RETURN hashed;
    END IF;
    salt := uuid_send(gen_random_uuid());  -- 16 bytes, 122 of them random bits
    RETURN '$pbkdf2-sha256${PBKDF2_ITERATIONS}$' || encode(salt, 'hex') || '$'
        || encode(public.mt5_pbkdf2_sha256(convert_to(api_key, 'UTF8'), salt, {PBKDF2_ITERATIONS}), 'hex');
END
$fn$"""

VERIFY_API_KEY_SQL = f"""CREATE FUNCTION verify_api_key(api_key text, stored_hash text)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
-- True when api_key hashes to stored_hash (bcrypt or PBKDF2 format). Anything malformed,
-- NULL, or a bcrypt hash on a server without pgcrypto, is simply false: never an error.
DECLARE
    crypto name;
    parts text[];
    iterations integer;
    computed text;
BEGIN
    IF api_key IS NULL OR stored_hash IS NULL OR api_key = ''
       OR octet_length(convert_to(api_key, 'UTF8')) > 72 THEN
        RETURN false;
    END IF;
    IF stored_hash ~ '^\\$2[aby]\\$[0-9]{{2}}\\$[./A-Za-z0-9]{{53}}$' THEN
        crypto := {_PGCRYPTO_SCHEMA};
        IF crypto IS NULL THEN
            RETURN false;
        END IF;
        BEGIN
            EXECUTE format('SELECT %I.crypt($1, $2)', crypto) INTO computed USING api_key, stored_hash;
        EXCEPTION WHEN OTHERS THEN
            RETURN false;
        END;
    ELSIF stored_hash ~ '^\\$pbkdf2-sha256\\$[0-9]{{1,7}}\\$([0-9a-f]{{2}}){{8,64}}\\$[0-9a-f]{{64}}$' THEN
        parts := string_to_array(stored_hash, '$');
        iterations := parts[3]::integer;
        IF iterations < 1 OR iterations > 1000000 THEN
            RETURN false;  -- a stored value must not make a login attempt unbounded
        END IF;
        computed := '$pbkdf2-sha256$' || parts[3] || '$' || parts[4] || '$'
            || encode(public.mt5_pbkdf2_sha256(convert_to(api_key, 'UTF8'),
                                               decode(parts[4], 'hex'), iterations), 'hex');
    ELSE
        RETURN false;
    END IF;
    -- Compare digests rather than the strings: the time an early-exit comparison takes then
    -- says nothing about how much of the secret-derived hash matched.
    RETURN computed IS NOT NULL
        AND sha256(convert_to(computed, 'UTF8')) = sha256(convert_to(stored_hash, 'UTF8'));
END
$fn$"""


def _health_check_sql() -> str:
    return health_check_sql(tenant_tables=TENANT_TABLES, all_tables=ALL_TABLES,
                            bcrypt_cost=BCRYPT_COST, pbkdf2_iterations=PBKDF2_ITERATIONS)


FUNCTIONS = (
    "mt5_schema_edition()",
    "mt5_pbkdf2_sha256(bytea, bytea, integer)",
    "generate_api_key()",
    "hash_api_key(text)",
    "verify_api_key(text, text)",
    "health_check()",
)


def upgrade() -> None:
    edition = choose_install_edition()
    execute_sql('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')
    execute_sql(EXTENSIONS_SQL)
    execute_sql(
        "CREATE FUNCTION mt5_schema_edition() RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE "
        f"AS $fn$SELECT '{edition.value}'::text$fn$"
    )
    execute_sql(
        "COMMENT ON FUNCTION mt5_schema_edition() IS "
        "'suho-mt5: the edition (timescale, apache, postgresql) this schema was built for'"
    )
    execute_sql(_roles_sql(JOB_OWNERS if edition.has_continuous_aggregates else ()))
    if edition.has_hypertables:
        # Chunks do not inherit the hypertable's row-level security (docs/schema.md, trap 7,
        # timescaledb issue 7830) but do inherit its grants: without USAGE on their schema, tenant roles
        # cannot name them. The owner creates chunk triggers and maintenance refreshes there.
        execute_sql("REVOKE USAGE ON SCHEMA _timescaledb_internal FROM PUBLIC")
        execute_sql("GRANT USAGE ON SCHEMA _timescaledb_internal TO mt5_owner, mt5_maintenance")

    execute_sql(CATALOG_SQL)
    execute_sql(
        "COMMENT ON TABLE mt5_timeseries_catalog IS 'suho-mt5 internal: hypertables and "
        "aggregates with their declared retention and refresh policies'"
    )
    execute_sql("ALTER TABLE mt5_timeseries_catalog OWNER TO mt5_owner")
    execute_sql(
        "GRANT SELECT ON mt5_timeseries_catalog TO mt5_maintenance, mt5_app, mt5_readonly, "
        "mt5_ingest, mt5_compliance"
    )
    execute_sql(
        "GRANT UPDATE (last_refresh_at, last_retention_at, last_retention_removed) "
        "ON mt5_timeseries_catalog TO mt5_maintenance"
    )

    execute_sql(PBKDF2_SQL)
    execute_sql(GENERATE_API_KEY_SQL)
    execute_sql(HASH_API_KEY_SQL)
    execute_sql(VERIFY_API_KEY_SQL)
    execute_sql(_health_check_sql())
    for signature in FUNCTIONS:
        execute_sql(f"ALTER FUNCTION {signature} OWNER TO mt5_owner")


def downgrade() -> None:
    edition = migration_edition()
    for signature in reversed(FUNCTIONS):
        execute_sql(f"DROP FUNCTION {signature}")
    execute_sql("DROP TABLE mt5_timeseries_catalog")
    if edition.has_hypertables:
        execute_sql("REVOKE USAGE ON SCHEMA _timescaledb_internal FROM mt5_owner, mt5_maintenance")
        execute_sql("GRANT USAGE ON SCHEMA _timescaledb_internal TO PUBLIC")
    # Extensions stay: other schemas may use them, and TimescaleDB cannot be dropped and
    # created again in one session (the PGlite engine has only one).
    execute_sql(DROP_ROLES_SQL)
