"""Pure SQL text builders for the custom operations (no connection, no Alembic state).

Everything here takes the :class:`~suho_mt5.db.Edition` as an argument and returns SQL
strings, so the same code produces the online DDL and the offline ``--sql`` scripts, and
unit tests can read the result without a server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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


# --------------------------------------------------------------------------- building blocks
# of the entities' SQL (suho_mt5.migrations.operations._entities)


def do_block(body: str) -> str:
    return f"DO $suho$\nBEGIN\n{body}\nEND\n$suho$"


def catalog_delete(name: str, schema: str) -> str:
    return (
        f"DELETE FROM {ident(CATALOG_TABLE)} WHERE relation_schema = {literal(schema)} "
        f"AND relation_name = {literal(name)}"
    )


def catalog_update(
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
    return do_block(
        f"    {update};\n"
        "    IF NOT FOUND THEN\n"
        "        RAISE EXCEPTION '%.% is not a hypertable or aggregate recorded in "
        f"{CATALOG_TABLE}', {literal(schema)}, {literal(name)} "
        "USING ERRCODE = 'undefined_object';\n"
        "    END IF;"
    )


def check_rls_sql(table: str, schema: str, *, expected: bool) -> str:
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
    return do_block(
        "    IF EXISTS (SELECT 1 FROM pg_class c\n"
        f"               WHERE c.oid = {rel}::regclass AND ({cond})) THEN\n"
        f"        RAISE EXCEPTION '{what}', {rel}\n"
        "            USING ERRCODE = 'object_not_in_prerequisite_state';\n"
        "    END IF;"
    )


def as_role(role: str | None, stmt: str) -> list[str]:
    """Run ``stmt`` as ``role``: TimescaleDB makes the current user the owner of a job."""
    if not role:
        return [stmt]
    return [f"SET LOCAL ROLE {ident(role)}", stmt, "RESET ROLE"]
