"""Native PostgreSQL only: the postgresql edition's maintenance, roles shared by several
databases of one cluster, and concurrent writers of the audit chain."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from suho_mt5.db import Edition
from suho_mt5.errors import EditionError, MigrationError
from tests.db.schema._support import (
    ALL_ROLES,
    TENANT_A,
    TENANT_B,
    Schema,
    TenantData,
    alembic,
    maintain,
    role_connection,
    schema_engine,
    session,
)
from tests.db.schema.test_audit_log import VERIFY_CHAIN

pytestmark = pytest.mark.engines("postgresql")



def test_maintain_deletes_expired_rows_in_batches(
    schema: Schema, seeded: dict[str, TenantData]
) -> None:
    a = seeded[TENANT_A]
    with session(schema.engine, "mt5_ingest", commit=True) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_ea_heartbeat (time, tenant_id, account_id, status)"
            " SELECT now() - interval '31 days' - n * interval '1 minute', :t, :a, 'online'"
            " FROM generate_series(1, 7) n"), {"t": TENANT_A, "a": a.account_id})
        conn.execute(sa.text(
            "INSERT INTO mt5_audit_log (time, tenant_id, event_type, actor) VALUES"
            " (now() - interval '8 years', :t, 'old.event', 'archive'),"
            " (now() - interval '6 years', :t, 'kept.event', 'archive')"), {"t": TENANT_B})
    with role_connection(schema.engine, "mt5_maintenance") as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
            "CALL mt5_maintain(batch_size => 3)")
    with session(schema.engine, "mt5_maintenance") as conn:
        heartbeat_ages = conn.execute(sa.text(
            "SELECT count(*) FROM mt5_ea_heartbeat WHERE time < now() - interval '30 days'")
        ).scalar_one()
        audit = conn.execute(sa.text(
            "SELECT event_type FROM mt5_audit_log WHERE time < now() - interval '5 years'")
        ).scalars().all()
        removed = dict(conn.execute(sa.text(
            "SELECT relation_name, last_retention_removed FROM mt5_timeseries_catalog"
            " WHERE kind = 'hypertable'")).all())
        refreshed = conn.execute(sa.text(
            "SELECT count(*) FROM mt5_timeseries_catalog WHERE kind = 'aggregate'"
            " AND last_refresh_at > now() - interval '1 minute'")).scalar_one()
    assert heartbeat_ages == 0 and removed["mt5_ea_heartbeat"] == 7
    assert audit == ["kept.event"] and removed["mt5_audit_log"] == 1
    assert refreshed == 6


def test_maintain_needs_its_own_transactions_and_role(schema: Schema) -> None:
    with session(schema.engine, "mt5_maintenance") as conn, pytest.raises(
        sa.exc.DBAPIError, match="invalid transaction termination"
    ):
        conn.exec_driver_sql("CALL mt5_maintain()")
    with session(schema.engine, "mt5_app", TENANT_A) as conn, pytest.raises(
        sa.exc.ProgrammingError, match="permission denied"
    ):
        conn.exec_driver_sql("CALL mt5_maintain()")


def test_maintenance_refreshes_views_concurrently(
    schema: Schema, seeded: dict[str, TenantData]
) -> None:
    maintain(schema.engine)  # a second refresh of populated views: CONCURRENTLY
    with session(schema.engine, "mt5_app", TENANT_A) as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM mt5_balance_hourly")).scalar_one() > 0


def _role_dependencies(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text(
        "SELECT count(*) FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid"
        " WHERE d.refclassid = 'pg_authid'::regclass AND r.rolname LIKE 'mt5\\_%'")).scalar_one())


def _roles(conn: sa.Connection) -> set[str]:
    return set(conn.execute(sa.text(
        "SELECT rolname FROM pg_roles WHERE rolname LIKE 'mt5\\_%'")).scalars())


def test_roles_are_shared_by_databases_of_one_cluster(fresh_url: Callable[[], str]) -> None:
    first, second = schema_engine(fresh_url()), schema_engine(fresh_url())
    try:
        alembic(first, "upgrade", "head")
        alembic(second, "upgrade", "head")  # the roles exist already: created only if missing
        alembic(first, "downgrade", "base")
        with session(second, "mt5_app", "t1") as conn:  # still usable from the other database
            assert conn.execute(sa.text("SELECT count(*) FROM mt5_user_accounts")
                                ).scalar_one() == 0
            assert _roles(conn) == set(ALL_ROLES)
        alembic(first, "upgrade", "head")
        alembic(second, "downgrade", "base")
        alembic(first, "downgrade", "base")
        with session(first) as conn:
            # Dropped unless a database of the cluster (another test's) still uses them.
            assert (_roles(conn) == set()) == (_role_dependencies(conn) == 0)
            assert conn.execute(sa.text(
                "SELECT count(*) FROM pg_shdepend d JOIN pg_database db ON db.oid = d.dbid"
                " JOIN pg_roles r ON r.oid = d.refobjid WHERE r.rolname LIKE 'mt5\\_%'"
                " AND db.datname = current_database()")).scalar_one() == 0
    finally:
        first.dispose()
        second.dispose()


def test_existing_roles_get_the_attributes_isolation_needs(
    fresh_url: Callable[[], str],
) -> None:
    engine = schema_engine(fresh_url())
    try:
        alembic(engine, "upgrade", "head")
        with session(engine, commit=True) as conn:
            conn.exec_driver_sql("ALTER ROLE mt5_app BYPASSRLS")
        alembic(engine, "downgrade", "base")
        alembic(engine, "upgrade", "head")
        with session(engine) as conn:
            assert conn.execute(sa.text(
                "SELECT rolbypassrls FROM pg_roles WHERE rolname = 'mt5_app'")
            ).scalar_one() is False
    finally:
        with session(engine, commit=True) as conn:
            conn.exec_driver_sql("ALTER ROLE mt5_app NOBYPASSRLS")
        engine.dispose()


def test_concurrent_writers_keep_one_chain(schema: Schema) -> None:
    """Writers of one tenant queue on an advisory lock; the chain has no fork and no gap."""
    tenant = f"chain_{uuid.uuid4().hex[:8]}"
    engine = schema_engine(schema.url)  # pooled: native PostgreSQL takes many connections
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(15):
                with session(engine, "mt5_app", tenant, commit=True) as conn:
                    conn.execute(sa.text("INSERT INTO mt5_audit_log (event_type, actor, payload)"
                                         " VALUES ('load.test', :w, jsonb_build_object('i', :i))"),
                                 {"w": f"writer{n}", "i": i})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert errors == []
    with session(schema.engine, "mt5_compliance") as conn:
        row = conn.execute(sa.text(VERIFY_CHAIN), {"t": tenant}).one()
    assert (row.bad_hashes, row.bad_links, row.gaps, row.events) == (0, 0, 0, 60)


def test_an_edition_the_server_cannot_build_is_refused(fresh_url: Callable[[], str]) -> None:
    engine = schema_engine(fresh_url())
    try:
        # Refused either way: no TimescaleDB at all, or (after make setup) not preloaded.
        with pytest.raises(EditionError, match=r"needs TimescaleDB|not preloaded"):
            alembic(engine, "upgrade", "head", edition=Edition.TIMESCALE)
        alembic(engine, "upgrade", "0001")
        with pytest.raises(MigrationError, match="built for the 'postgresql' edition"):
            alembic(engine, "upgrade", "head", edition=Edition.APACHE)
        alembic(engine, "downgrade", "base")
    finally:
        engine.dispose()
