"""Pure SQL text builders for the custom operations (no connection, no Alembic state).

Everything here takes the :class:`~suho_mt5.db.Edition` as an argument and returns SQL
strings, so the same code produces the online DDL and the offline ``--sql`` scripts, and
unit tests can read the result without a server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta

from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS

from suho_mt5._names import TENANT_SETTING
from suho_mt5.db import Edition
from suho_mt5.errors import MigrationError

__all__ = [
    "CATALOG_TABLE",
    "DEFAULT_SCHEMA",
    "TENANT_SETTING",
    "IntervalLike",
    "bucket_expr",
    "first_expr",
    "ident",
    "interval_sql",
    "last_expr",
    "literal",
    "qualified",
    "tenant_default",
    "tenant_predicate",
]

#: The schema every suho-mt5 object lives in.
DEFAULT_SCHEMA = "public"
#: Internal table recording hypertables, aggregates and their declared policies.
CATALOG_TABLE = "mt5_timeseries_catalog"

IntervalLike = str | timedelta

_PLAIN_IDENT = re.compile(r"[a-z_][a-z0-9_]*")
_SETTING_NAME = re.compile(r"[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*")
_INTERVAL_UNIT = (
    r"(microseconds?|milliseconds?|seconds?|secs?|minutes?|mins?|hours?|days?|weeks?|"
    r"months?|mons?|years?)"
)
_INTERVAL_PART = rf"\d+(\.\d+)?\s*{_INTERVAL_UNIT}"
_INTERVAL_TEXT = re.compile(rf"\s*{_INTERVAL_PART}(\s+{_INTERVAL_PART})*\s*")


def ident(name: str) -> str:
    """Quote an SQL identifier only when PostgreSQL needs it, so generated SQL stays readable.

    >>> ident("mt5_trade_orders"), ident("Weird Name"), ident("user")
    ('mt5_trade_orders', '"Weird Name"', '"user"')
    """
    if not name:
        raise MigrationError("empty SQL identifier")
    if _PLAIN_IDENT.fullmatch(name) and name not in RESERVED_WORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def qualified(name: str, schema: str | None = None) -> str:
    """``schema.name`` with both parts quoted as needed (``name`` alone without a schema)."""
    return f"{ident(schema)}.{ident(name)}" if schema else ident(name)


def literal(value: str) -> str:
    """An SQL string literal.

    >>> literal("it's")
    "'it''s'"
    """
    if "\x00" in value:
        raise MigrationError("NUL characters cannot appear in SQL literals")
    return "'" + value.replace("'", "''") + "'"


def interval_sql(value: IntervalLike) -> str:
    """``INTERVAL '...'`` for a :class:`~datetime.timedelta` or a plain interval text.

    Only simple ``<number> <unit>`` lists are accepted: these strings end up in DDL.

    >>> interval_sql("7 days"), interval_sql(timedelta(hours=1))
    ("INTERVAL '7 days'", "INTERVAL '3600 seconds'")
    """
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
        if seconds <= 0:
            raise MigrationError(f"interval must be positive, got {value!r}")
        text = f"{int(seconds)} seconds" if seconds.is_integer() else f"{seconds} seconds"
    else:
        if not _INTERVAL_TEXT.fullmatch(value):
            raise MigrationError(f"not a simple interval such as '7 days': {value!r}")
        text = " ".join(value.split())
    return f"INTERVAL {literal(text)}"


def _setting(setting: str) -> str:
    if not _SETTING_NAME.fullmatch(setting):
        raise MigrationError(f"not a custom setting name such as 'app.tenant': {setting!r}")
    return setting


def tenant_default(setting: str = TENANT_SETTING) -> str:
    """Server default of a ``tenant_id`` column: the current tenant, NULL when unset or empty.

    >>> tenant_default()
    "NULLIF(current_setting('app.current_tenant_id', true), '')"
    """
    return f"NULLIF(current_setting({literal(_setting(setting))}, true), '')"


def tenant_predicate(column: str = "tenant_id", setting: str = TENANT_SETTING) -> str:
    """The row filter of every tenant policy and tenant view.

    The setting is read in a sub-select so it is evaluated once per statement (an InitPlan)
    rather than once per row, and the tenant index can be used (docs/schema.md, trap 9).
    ``NULLIF(..., '')`` turns an empty tenant into NULL, and ``col = NULL`` is never true:
    no tenant or an empty tenant sees no rows and can insert none, without a cast error.

    >>> tenant_predicate()
    "tenant_id = (SELECT NULLIF(current_setting('app.current_tenant_id', true), ''))"
    """
    return f"{ident(column)} = (SELECT {tenant_default(setting)})"


def bucket_expr(edition: Edition, width: IntervalLike, column: str = "time") -> str:
    """A time-bucket expression that gives the same buckets on every edition.

    TimescaleDB's ``time_bucket`` and PostgreSQL's ``date_bin`` with TimescaleDB's default
    origin (Monday 2000-01-03 UTC) agree for every width, weeks included.

    >>> bucket_expr(Edition.POSTGRESQL, "1 hour")
    "date_bin(INTERVAL '1 hour', time, TIMESTAMPTZ '2000-01-03 00:00:00+00')"
    """
    if edition.has_hypertables:
        return f"time_bucket({interval_sql(width)}, {ident(column)})"
    return f"date_bin({interval_sql(width)}, {ident(column)}, TIMESTAMPTZ '2000-01-03 00:00:00+00')"


def first_expr(edition: Edition, value: str, time_column: str = "time") -> str:
    """The value at the earliest time in the group (TimescaleDB ``first``)."""
    if edition.has_hypertables:
        return f"first({ident(value)}, {ident(time_column)})"
    return f"(array_agg({ident(value)} ORDER BY {ident(time_column)}))[1]"


def last_expr(edition: Edition, value: str, time_column: str = "time") -> str:
    """The value at the latest time in the group (TimescaleDB ``last``)."""
    if edition.has_hypertables:
        return f"last({ident(value)}, {ident(time_column)})"
    return f"(array_agg({ident(value)} ORDER BY {ident(time_column)} DESC))[1]"


# --------------------------------------------------------------------------- hypertables


def _do(body: str) -> str:
    return f"DO $suho$\nBEGIN\n{body}\nEND\n$suho$"



def create_hypertable_sql(
    edition: Edition,
    table: str,
    schema: str,
    *,
    time_column: str,
    chunk_time_interval: IntervalLike,
    tenant_column: str | None,
    tenant_partitions: int,
) -> list[str]:
    """Turn ``table`` into a hypertable (time + hash(tenant)), or index it like one."""
    rel = qualified(table, schema)
    if tenant_column is not None and tenant_partitions < 1:
        raise MigrationError(f"tenant_partitions must be >= 1, got {tenant_partitions}")
    stmts: list[str] = []
    if edition.has_hypertables:
        stmts.append(
            f"SELECT create_hypertable({literal(rel)}, "
            f"by_range({literal(time_column)}, {interval_sql(chunk_time_interval)}))"
        )
        if tenant_column is not None:
            stmts.append(
                f"SELECT add_dimension({literal(rel)}, "
                f"by_hash({literal(tenant_column)}, {tenant_partitions}))"
            )
    else:
        # The index create_hypertable() would have made, under the same name, so that the
        # models and the drift check see the same indexes on every edition.
        stmts.append(
            f"CREATE INDEX {ident(f'{table}_{time_column}_idx')} "
            f"ON {rel} ({ident(time_column)} DESC)"
        )
    stmts.append(
        f"INSERT INTO {ident(CATALOG_TABLE)} (relation_schema, relation_name, kind, time_column, "
        "chunk_time_interval, tenant_column, tenant_partitions) VALUES ("
        f"{literal(schema)}, {literal(table)}, 'hypertable', {literal(time_column)}, "
        f"{interval_sql(chunk_time_interval)}, "
        f"{literal(tenant_column) if tenant_column else 'NULL'}, "
        f"{tenant_partitions if tenant_column else 'NULL'})"
    )
    return stmts


def drop_hypertable_sql(edition: Edition, table: str, schema: str) -> list[str]:
    """Drop a time-series table (with its chunks and policies) and forget it."""
    return [
        f"DROP TABLE {qualified(table, schema)}",
        _catalog_delete(table, schema),
    ]


def _catalog_delete(name: str, schema: str) -> str:
    return (
        f"DELETE FROM {ident(CATALOG_TABLE)} WHERE relation_schema = {literal(schema)} "
        f"AND relation_name = {literal(name)}"
    )


def _catalog_update(
    name: str, schema: str, values: Mapping[str, str], *, must_exist: bool = False
) -> str:
    assignments = ", ".join(f"{ident(k)} = {v}" for k, v in values.items())
    update = (
        f"UPDATE {ident(CATALOG_TABLE)} SET {assignments} WHERE relation_schema = "
        f"{literal(schema)} AND relation_name = {literal(name)}"
    )
    if not must_exist:
        return update
    # A policy on a relation the catalog does not know would silently never run on the
    # editions where mt5_maintain() applies it.
    return _do(
        f"    {update};\n"
        "    IF NOT FOUND THEN\n"
        "        RAISE EXCEPTION '%.% is not a hypertable or aggregate recorded in "
        f"{CATALOG_TABLE}', {literal(schema)}, {literal(name)} "
        "USING ERRCODE = 'undefined_object';\n"
        "    END IF;"
    )


# --------------------------------------------------------------------------- tenant RLS

RLS_COMMANDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "ALL")


def _check_rls_sql(table: str, schema: str, *, expected: bool) -> str:
    """A DO block that fails the migration unless RLS is (or is not) ENABLEd and FORCEd.

    A failed ``ENABLE ROW LEVEL SECURITY`` can leave policies in place but inactive, and then
    every tenant sees everything (docs/schema.md, trap 3): check the catalog after the fact.
    """
    rel = literal(qualified(table, schema))
    if expected:
        cond = "NOT (c.relrowsecurity AND c.relforcerowsecurity)"
        what = "row-level security is not ENABLEd and FORCEd on %"
    else:
        cond = "c.relrowsecurity OR c.relforcerowsecurity"
        what = "row-level security is still active on %"
    return _do(
        "    IF EXISTS (SELECT 1 FROM pg_class c\n"
        f"               WHERE c.oid = {rel}::regclass AND ({cond})) THEN\n"
        f"        RAISE EXCEPTION '{what}', {rel}\n"
        "            USING ERRCODE = 'object_not_in_prerequisite_state';\n"
        "    END IF;"
    )


def cross_tenant_policy_name(role: str, command: str) -> str:
    return f"{role}_{command.lower()}"


def enable_tenant_rls_sql(
    edition: Edition,
    table: str,
    schema: str,
    *,
    tenant_column: str,
    setting: str,
    policy_name: str,
    cross_tenant: Mapping[str, Sequence[str]],
) -> list[str]:
    """ENABLE + FORCE row-level security with a fail-closed tenant policy, then verify it."""
    rel = qualified(table, schema)
    stmts: list[str] = []
    if edition.has_hypertables:
        # Columnstore and RLS exclude each other (docs/schema.md, trap 3): refuse with a clear
        # message instead of TimescaleDB's, before anything is half-done.
        stmts.append(
            _do(
                "    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables h\n"
                f"               WHERE h.hypertable_schema = {literal(schema)}\n"
                f"                 AND h.hypertable_name = {literal(table)}\n"
                "                 AND h.compression_enabled) THEN\n"
                f"        RAISE EXCEPTION 'cannot enable tenant row-level security on %: it has "
                "columnstore (compression) enabled, and TimescaleDB cannot combine the two', "
                f"{literal(rel)} USING ERRCODE = 'feature_not_supported';\n"
                "    END IF;"
            )
        )
    predicate = tenant_predicate(tenant_column, setting)
    stmts += [
        f"ALTER TABLE {rel} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {rel} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY {ident(policy_name)} ON {rel} AS PERMISSIVE FOR ALL TO PUBLIC "
        f"USING ({predicate}) WITH CHECK ({predicate})",
    ]
    for role, commands in sorted(cross_tenant.items()):
        for command in commands:
            cmd = command.upper()
            if cmd not in RLS_COMMANDS:
                raise MigrationError(f"unknown policy command {command!r} for role {role!r}")
            clauses = {
                "SELECT": "USING (true)",
                "DELETE": "USING (true)",
                "INSERT": "WITH CHECK (true)",
                "UPDATE": "USING (true) WITH CHECK (true)",
                "ALL": "USING (true) WITH CHECK (true)",
            }[cmd]
            stmts.append(
                f"CREATE POLICY {ident(cross_tenant_policy_name(role, cmd))} ON {rel} "
                f"AS PERMISSIVE FOR {cmd} TO {ident(role)} {clauses}"
            )
    stmts.append(_check_rls_sql(table, schema, expected=True))
    return stmts


def disable_tenant_rls_sql(
    table: str,
    schema: str,
    *,
    policy_name: str,
    cross_tenant: Mapping[str, Sequence[str]],
) -> list[str]:
    rel = qualified(table, schema)
    stmts = [f"DROP POLICY {ident(policy_name)} ON {rel}"]
    for role, commands in sorted(cross_tenant.items()):
        stmts.extend(
            f"DROP POLICY {ident(cross_tenant_policy_name(role, c.upper()))} ON {rel}"
            for c in commands
        )
    stmts += [
        f"ALTER TABLE {rel} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {rel} DISABLE ROW LEVEL SECURITY",
        _check_rls_sql(table, schema, expected=False),
    ]
    return stmts


# --------------------------------------------------------------------------- aggregates


def _rls_guc(source: str) -> str:
    # One transaction-local marker per source table, so two aggregates on two tables in one
    # migration do not mix up what to restore.
    return "suho_mt5.rls_restore_" + re.sub(r"[^a-z0-9_]", "_", source.lower())


def _suspend_rls_sql(source: str, schema: str) -> str:
    rel = literal(qualified(source, schema))
    guc = literal(_rls_guc(source))
    return _do(
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
    return _do(
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


def create_aggregate_sql(
    edition: Edition,
    name: str,
    schema: str,
    *,
    definition: str,
    source: str,
    bucket_width: IntervalLike,
    unique_key: Sequence[str],
    owner: str | None,
    tenant_view: str | None,
    tenant_column: str,
    setting: str,
    reader_roles: Iterable[str],
    tenant_view_owner: str | None,
    materialized_only: bool,
) -> list[str]:
    """A continuous aggregate (timescale) or a materialized view, closed to everyone, plus the
    security-barrier view that filters it to the current tenant."""
    rel = qualified(name, schema)
    body = definition.strip().rstrip(";")
    stmts: list[str] = []
    if edition.has_continuous_aggregates:
        only = "true" if materialized_only else "false"
        stmts += [
            _suspend_rls_sql(source, schema),
            f"CREATE MATERIALIZED VIEW {rel} WITH (timescaledb.continuous, "
            f"timescaledb.materialized_only = {only}) AS\n{body}\nWITH NO DATA",
            _restore_rls_sql(source, schema),
        ]
    else:
        stmts += [
            f"CREATE MATERIALIZED VIEW {rel} AS\n{body}\nWITH DATA",
            # REFRESH ... CONCURRENTLY (readers are not blocked) needs a unique index.
            f"CREATE UNIQUE INDEX {ident(f'{name}_key')} ON {rel} "
            f"({', '.join(ident(c) for c in unique_key)})",
        ]
    if owner:
        # The owner refreshes it; it must see every tenant (BYPASSRLS), docs/schema.md, trap 4.
        stmts.append(f"ALTER MATERIALIZED VIEW {rel} OWNER TO {ident(owner)}")
    # Aggregates have no row security of their own (docs/schema.md, trap 2): nobody reads
    # them directly.
    stmts.append(f"REVOKE ALL ON {rel} FROM PUBLIC")
    if tenant_view:
        view = qualified(tenant_view, schema)
        if tenant_view_owner:
            stmts.append(f"GRANT SELECT ON {rel} TO {ident(tenant_view_owner)}")
        stmts += [
            f"CREATE VIEW {view} WITH (security_barrier = true) AS\n"
            f"SELECT * FROM {rel}\nWHERE {tenant_predicate(tenant_column, setting)}",
        ]
        if tenant_view_owner:
            stmts.append(f"ALTER VIEW {view} OWNER TO {ident(tenant_view_owner)}")
        stmts.append(f"REVOKE ALL ON {view} FROM PUBLIC")
        readers = sorted(set(reader_roles))
        if readers:
            stmts.append(f"GRANT SELECT ON {view} TO {', '.join(ident(r) for r in readers)}")
    stmts.append(
        f"INSERT INTO {ident(CATALOG_TABLE)} (relation_schema, relation_name, kind, "
        "source_relation, bucket_width, tenant_view) VALUES ("
        f"{literal(schema)}, {literal(name)}, 'aggregate', {literal(source)}, "
        f"{interval_sql(bucket_width)}, {literal(tenant_view) if tenant_view else 'NULL'})"
    )
    return stmts


def drop_aggregate_sql(name: str, schema: str, *, tenant_view: str | None) -> list[str]:
    stmts = []
    if tenant_view:
        stmts.append(f"DROP VIEW {qualified(tenant_view, schema)}")
    stmts += [f"DROP MATERIALIZED VIEW {qualified(name, schema)}", _catalog_delete(name, schema)]
    return stmts


def refresh_aggregate_sql(
    edition: Edition, name: str, schema: str, *, concurrently: bool = False
) -> list[str]:
    """Refresh an aggregate now. On timescale this must run outside a transaction block."""
    rel = qualified(name, schema)
    if edition.has_continuous_aggregates:
        return [f"CALL refresh_continuous_aggregate({literal(rel)}, NULL, NULL)"]
    how = "CONCURRENTLY " if concurrently else ""
    return [
        f"REFRESH MATERIALIZED VIEW {how}{rel}",
        _catalog_update(name, schema, {"last_refresh_at": "now()"}),
    ]


# --------------------------------------------------------------------------- policies


def _as_role(role: str | None, stmt: str) -> list[str]:
    """Run ``stmt`` as ``role``: TimescaleDB makes the current user the owner of a job."""
    if not role:
        return [stmt]
    return [f"SET LOCAL ROLE {ident(role)}", stmt, "RESET ROLE"]


def add_retention_sql(
    edition: Edition, relation: str, schema: str, *, drop_after: IntervalLike, owner: str | None
) -> list[str]:
    stmts: list[str] = []
    if edition.has_continuous_aggregates:
        stmts += _as_role(
            owner,
            f"SELECT add_retention_policy({literal(qualified(relation, schema))}, "
            f"drop_after => {interval_sql(drop_after)})",
        )
    stmts.append(
        _catalog_update(relation, schema, {"retention": interval_sql(drop_after)}, must_exist=True)
    )
    return stmts


def remove_retention_sql(edition: Edition, relation: str, schema: str) -> list[str]:
    stmts: list[str] = []
    if edition.has_continuous_aggregates:
        stmts.append(
            f"SELECT remove_retention_policy({literal(qualified(relation, schema))}, "
            "if_exists => true)"
        )
    stmts.append(_catalog_update(relation, schema, {"retention": "NULL"}))
    return stmts


def add_refresh_sql(
    edition: Edition,
    view: str,
    schema: str,
    *,
    start_offset: IntervalLike | None,
    end_offset: IntervalLike | None,
    schedule_interval: IntervalLike,
    owner: str | None,
) -> list[str]:
    start = interval_sql(start_offset) if start_offset is not None else "NULL"
    end = interval_sql(end_offset) if end_offset is not None else "NULL"
    stmts: list[str] = []
    if edition.has_continuous_aggregates:
        stmts += _as_role(
            owner,
            f"SELECT add_continuous_aggregate_policy({literal(qualified(view, schema))}, "
            f"start_offset => {start}, end_offset => {end}, "
            f"schedule_interval => {interval_sql(schedule_interval)})",
        )
    stmts.append(
        _catalog_update(
            view,
            schema,
            {
                "refresh_start_offset": start,
                "refresh_end_offset": end,
                "refresh_schedule": interval_sql(schedule_interval),
            },
            must_exist=True,
        )
    )
    return stmts


def remove_refresh_sql(edition: Edition, view: str, schema: str) -> list[str]:
    stmts: list[str] = []
    if edition.has_continuous_aggregates:
        stmts.append(
            f"SELECT remove_continuous_aggregate_policy({literal(qualified(view, schema))}, "
            "if_exists => true)"
        )
    stmts.append(
        _catalog_update(
            view,
            schema,
            {"refresh_start_offset": "NULL", "refresh_end_offset": "NULL",
             "refresh_schedule": "NULL"},
        )
    )
    return stmts
