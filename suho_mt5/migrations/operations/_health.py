"""``health_check()``: one row per component of an install, for DBAs and for the seed's
"check database permissions" step. Revision 0001 creates it; revision 0009 replaces it so
that a tenant login, which reads through the ``mt5_tenant`` views, counts those.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["health_check_sql"]


def _array(names: Sequence[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{n}'" for n in names) + "]::text[]"


# health_check()'s rows about the time series (revision 0013): "tenant_grants" and "columnstore".
_SERIES_ROWS = """
    IF cardinality(time_series) > 0 THEN
        -- The time series have no row-level security: their tenant views are the only way
        -- in, so a tenant role's privilege on a table or chunk would read every tenant.
        SELECT array_agg(c.oid::regclass::text ORDER BY c.oid::regclass::text) INTO reachable
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'm', 'f', 'v')
          AND c.relname LIKE 'mt5\\_%' AND c.relname <> 'mt5_timeseries_catalog'
          -- views other than the raw aggregates are the tenant views of the aggregates
          AND (c.relkind <> 'v' OR c.relname LIKE 'mt5\\_agg\\_%');
        IF ts_version IS NOT NULL THEN
            -- every chunk (compressed ones included) and every internal hypertable and view
            EXECUTE $q$SELECT array_agg(c.oid::regclass::text) FROM pg_class c
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE c.relkind IN ('r', 'p', 'v')
                         AND ((n.nspname, c.relname) IN (SELECT schema_name, table_name
                                                         FROM _timescaledb_catalog.chunk
                                                         UNION ALL
                                                         SELECT schema_name, table_name
                                                         FROM _timescaledb_catalog.hypertable)
                              OR (n.nspname = '_timescaledb_internal'
                                  AND c.relname ~ '^_(partial|direct)_view_'))$q$
                INTO missing;
            reachable := reachable || coalesce(missing, '{}');
        END IF;
        SELECT array_agg(format('%s on %s', r, rel) ORDER BY r, rel) INTO granted
        FROM unnest(reachable) AS rel
        CROSS JOIN unnest(tenant_roles) AS r
        WHERE EXISTS (SELECT 1 FROM pg_roles x WHERE x.rolname = r)
          AND has_table_privilege(r, rel::regclass,
                'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER');
        component := 'tenant_grants';
        IF granted IS NULL THEN
            status := 'ok';
            detail := format('%s hold no privilege on the %s time series, their chunks or '
                             'aggregates: they read through the mt5_tenant views',
                             array_to_string(tenant_roles, ', '), cardinality(time_series));
        ELSE
            status := 'error';
            detail := 'tenant roles must reach rows through the mt5_tenant views only, but hold '
                      || 'privileges on: ' || array_to_string(granted, ', ');
        END IF;
        RETURN NEXT;

        component := 'columnstore';
        status := 'ok';
        IF edition = 'timescale' AND ts_version IS NOT NULL THEN
            EXECUTE $q$SELECT count(*) FILTER (WHERE h.compression_enabled),
                              (SELECT count(*) FROM timescaledb_information.chunks k
                               WHERE k.is_compressed AND k.hypertable_name = ANY($1))
                       FROM timescaledb_information.hypertables h
                       WHERE h.hypertable_schema = 'public' AND h.hypertable_name = ANY($1)$q$
                INTO readable, n USING time_series;
            detail := format('%s of %s time series have a columnstore; %s chunks converted',
                             readable, cardinality(time_series), n);
        ELSE
            detail := format('not available in the %s edition (TimescaleDB''s Timescale '
                             'license only): the time series stay uncompressed', edition);
        END IF;
        RETURN NEXT;
    END IF;
"""


def health_check_sql(
    *,
    tenant_tables: Sequence[str],
    all_tables: Sequence[str],
    bcrypt_cost: int,
    pbkdf2_iterations: int,
    tenant_views: bool = False,
    or_replace: bool = False,
    time_series: Sequence[str] = (),
    tenant_roles: Sequence[str] = (),
    login_roles: bool = False,
) -> str:
    """``CREATE [OR REPLACE] FUNCTION health_check()``; with ``tenant_views`` its ``session``
    row also counts what the caller may do through the ``mt5_tenant`` views.

    ``tenant_tables`` must have row-level security ENABLEd and FORCEd. With ``time_series``
    (tables isolated by their tenant views alone, revision 0013) two more rows: the
    ``tenant_grants`` row is an error when one of ``tenant_roles`` holds any privilege on a
    table of ours, on a chunk or on any other relation in ``_timescaledb_internal``
    (docs/schema.md, trap 7); the ``columnstore`` row says how many time series have one and
    how many chunks it holds, or what the edition lacks."""
    readable = "has_table_privilege(to_regclass('public.' || t), 'SELECT')"
    writable = "has_table_privilege(to_regclass('public.' || t), 'INSERT')"
    if tenant_views:
        readable = (f"({readable} OR coalesce(has_table_privilege("
                    "to_regclass('mt5_tenant.' || t), 'SELECT'), false))")
        writable = (f"({writable} OR coalesce(has_table_privilege("
                    "to_regclass('mt5_tenant.' || t), 'INSERT'), false))")
    create = "CREATE OR REPLACE FUNCTION" if or_replace else "CREATE FUNCTION"
    declare_series = series_rows = ""
    if time_series:
        declare_series = (f"\n    time_series text[] := {_array(time_series)};"
                          f"\n    tenant_roles text[] := {_array(tenant_roles)};"
                          "\n    granted text[];\n    reachable text[];")
        series_rows = _SERIES_ROWS
    return f"""{create} health_check()
RETURNS TABLE (component text, status text, detail text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- One row per component; status is 'ok', 'warning' or 'error'. Runs as the caller and reads
-- catalogs only, so it also tells a role what it may do (the seed's "check permissions").
DECLARE
    expected text[] := {_array(all_tables)};
    tenant_tables text[] := {_array(tenant_tables)};{declare_series}
    edition text := public.mt5_schema_edition();
    ts_version text;
    missing text[];
    unprotected text[];
    n bigint;
    readable integer;
    writable integer;
    last_run timestamptz;{_LOGIN_ROLES_DECLARE if login_roles else ""}
BEGIN
    component := 'database';
    status := 'ok';
    detail := format('%s: %s', current_database(), split_part(version(), ' on ', 1));
    RETURN NEXT;

    SELECT extversion INTO ts_version FROM pg_extension WHERE extname = 'timescaledb';
    component := 'edition';
    IF edition <> 'postgresql' AND ts_version IS NULL THEN
        status := 'error';
        detail := format('schema built for the %s edition, but timescaledb is not installed', edition);
    ELSE
        status := 'ok';
        detail := edition || CASE WHEN ts_version IS NULL THEN ' (plain PostgreSQL)'
            ELSE format(' (timescaledb %s, license %s)', ts_version,
                        coalesce(current_setting('timescaledb.license', true), 'unknown')) END;
    END IF;
    RETURN NEXT;

    component := 'api_keys';
    status := 'ok';
    detail := CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgcrypto')
        THEN 'bcrypt through pgcrypto (cost {bcrypt_cost})'
        ELSE 'PBKDF2-HMAC-SHA256 fallback, {pbkdf2_iterations} iterations (pgcrypto is not installed)' END;
    RETURN NEXT;

    SELECT array_agg(t ORDER BY t) INTO missing
    FROM unnest(expected) AS t WHERE to_regclass('public.' || t) IS NULL;
    component := 'tables';
    IF missing IS NULL THEN
        status := 'ok';
        detail := format('all %s mt5_* tables present', cardinality(expected));
    ELSE
        status := 'error';
        detail := 'missing: ' || array_to_string(missing, ', ');
    END IF;
    RETURN NEXT;

    SELECT array_agg(t ORDER BY t) INTO unprotected
    FROM unnest(tenant_tables) AS t
    JOIN pg_class c ON c.oid = to_regclass('public.' || t)
    WHERE NOT (c.relrowsecurity AND c.relforcerowsecurity);
    SELECT count(*) INTO n FROM unnest(tenant_tables) AS t WHERE to_regclass('public.' || t) IS NOT NULL;
    component := 'row_level_security';
    IF unprotected IS NULL THEN
        status := 'ok';
        detail := format('ENABLE + FORCE on all %s tenant tables present', n);
    ELSE
        status := 'error';
        detail := 'not ENABLEd and FORCEd: ' || array_to_string(unprotected, ', ');
    END IF;
    RETURN NEXT;
{series_rows}
    component := 'maintenance';
    IF edition = 'timescale' AND ts_version IS NOT NULL THEN
        EXECUTE $q$SELECT count(*) FROM timescaledb_information.job_stats s
                   JOIN timescaledb_information.jobs j USING (job_id)
                   WHERE j.hypertable_name LIKE 'mt5\\_%' AND s.last_run_status = 'Failed'$q$ INTO n;
        status := CASE WHEN n = 0 THEN 'ok' ELSE 'warning' END;
        detail := format('TimescaleDB policies; %s job(s) whose last run failed', n);
    ELSE
        SELECT max(greatest(last_refresh_at, last_retention_at)) INTO last_run FROM mt5_timeseries_catalog;
        status := CASE WHEN last_run IS NOT NULL AND last_run < now() - INTERVAL '2 days'
                       THEN 'warning' ELSE 'ok' END;
        detail := 'CALL mt5_maintain() applies retention and refreshes aggregates; last run: '
            || coalesce(last_run::text, 'never');
    END IF;
    RETURN NEXT;

    SELECT count(*) FILTER (WHERE {readable}),
           count(*) FILTER (WHERE {writable})
      INTO readable, writable
    FROM unnest(expected) AS t WHERE to_regclass('public.' || t) IS NOT NULL;
    component := 'session';
    status := CASE WHEN readable + writable = 0 THEN 'warning' ELSE 'ok' END;
    detail := format('role %s, tenant %s; may read %s and insert into %s of the mt5_* tables',
        current_user,
        coalesce(NULLIF(current_setting('app.current_tenant_id', true), ''), '(none)'),
        readable, writable);
    RETURN NEXT;{_LOGIN_ROLES if login_roles else ""}
END
$fn$"""


_LOGIN_ROLES_DECLARE = """
    found text;"""

# Revision 0014 (docs/security.md): mt5_owner and mt5_maintenance are LOGIN roles with no
# password on the timescale edition (TimescaleDB's jobs run as their owner); a password or
# a trust rule in pg_hba.conf lets anyone who reaches the server log in as them. Only a
# superuser can read pg_authid and pg_hba_file_rules: others get 'ok' and say so.
_LOGIN_ROLES = """

    component := 'login_roles';
    BEGIN
        SELECT string_agg(x, '; ' ORDER BY x) INTO found FROM (
            SELECT format('%s has a password', a.rolname) AS x
            FROM pg_authid a
            WHERE a.rolname IN ('mt5_owner', 'mt5_maintenance') AND a.rolpassword IS NOT NULL
            UNION ALL
            SELECT format('%s may log in with no password: pg_hba.conf line %s (%s %s trust)',
                          r.name, h.line_number, h.type, array_to_string(h.user_name, ','))
            FROM pg_hba_file_rules h,
                 (VALUES ('mt5_owner'), ('mt5_maintenance')) AS r(name)
            WHERE h.auth_method = 'trust' AND h.error IS NULL
              AND ('all' = ANY(h.user_name) OR r.name = ANY(h.user_name)
                   OR ('+' || r.name) = ANY(h.user_name))
        ) s;
        status := CASE WHEN found IS NULL THEN 'ok' ELSE 'warning' END;
        detail := coalesce(found, 'mt5_owner and mt5_maintenance: no password, no trust rule');
    EXCEPTION WHEN insufficient_privilege THEN
        status := 'ok';
        detail := 'pg_authid and pg_hba_file_rules are not visible to this role (a superuser sees them)';
    WHEN OTHERS THEN  -- an engine without pg_hba.conf (PGlite)
        status := 'ok';
        detail := 'pg_hba_file_rules cannot be read here: ' || SQLERRM;
    END;
    RETURN NEXT;"""
