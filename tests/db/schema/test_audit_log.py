"""The audit log: insert-only for every role (owner and superuser included), hash-chained
per tenant, and removable only past its retention period. Shared by both lanes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.db.schema._support import ALL_ROLES, Schema, TenantData, session

TENANT = "audit_tenant"

VERIFY_CHAIN = """
SELECT count(*) FILTER (WHERE row_hash <> mt5_audit_row_hash(tenant_id, chain_seq, prev_hash,
                                   event_id, time, recorded_at, event_type, actor, account_id,
                                   payload)) AS bad_hashes,
       count(*) FILTER (WHERE prev_hash <> coalesce(previous, repeat('0', 64))) AS bad_links,
       count(*) FILTER (WHERE chain_seq <> position) AS gaps,
       count(*) AS events
FROM (SELECT a.*, lag(row_hash) OVER w AS previous, row_number() OVER w AS position
      FROM mt5_audit_log a WHERE tenant_id = :t WINDOW w AS (ORDER BY chain_seq)) chained
"""


@pytest.fixture(scope="module")
def events(schema: Schema) -> int:
    with session(schema.engine, "mt5_app", TENANT, commit=True) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_audit_log (event_type, actor, payload) VALUES"
            " ('account.created', 'api', '{\"a\": 1}'), ('config.changed', 'api', '{}')"))
        # Multi-row insert: each row chains onto the one before it.
        conn.execute(sa.text(
            "INSERT INTO mt5_audit_log (event_type, actor, payload) SELECT 'trade.executed',"
            " 'bridge', jsonb_build_object('n', n) FROM generate_series(1, 5) n"))
    with session(schema.engine, "mt5_ingest", commit=True) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_audit_log (tenant_id, event_type, actor, payload, time) VALUES"
            " (:t, 'risk.limit_breach', 'bridge', '{\"dd\": 0.2}', now() - interval '1 day')"),
            {"t": TENANT})
    with session(schema.engine, "mt5_compliance", commit=True) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_audit_log (tenant_id, event_type, actor) VALUES"
            " (:t, 'report.generated', 'compliance')"), {"t": TENANT})
    return 9


def test_events_are_chained_per_tenant(schema: Schema, events: int) -> None:
    with session(schema.engine, "mt5_compliance") as conn:
        row = conn.execute(sa.text(VERIFY_CHAIN), {"t": TENANT}).one()
    assert (row.bad_hashes, row.bad_links, row.gaps, row.events) == (0, 0, 0, events)


def test_the_writer_cannot_choose_the_chain(schema: Schema, events: int) -> None:
    with session(schema.engine, "mt5_app", TENANT, commit=True) as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_audit_log (event_type, actor, chain_seq, prev_hash, row_hash,"
            " recorded_at) VALUES ('x.y', 'me', 1, repeat('a', 64), repeat('b', 64),"
            " '2000-01-01')"))
    with session(schema.engine) as conn:
        last = conn.execute(sa.text(
            "SELECT chain_seq, prev_hash <> repeat('a', 64), row_hash <> repeat('b', 64),"
            " recorded_at > now() - interval '1 hour' FROM mt5_audit_log WHERE tenant_id = :t"
            " ORDER BY chain_seq DESC LIMIT 1"), {"t": TENANT}).one()
        assert tuple(last) == (events + 1, True, True, True)
        assert conn.execute(sa.text(VERIFY_CHAIN), {"t": TENANT}).one().bad_hashes == 0


def test_tampering_is_detected(schema: Schema, events: int) -> None:
    with session(schema.engine) as conn:
        # Only a superuser switching triggers off can alter a row; the chain shows it.
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(sa.text(
            "UPDATE mt5_audit_log SET payload = '{\"a\": 2}' WHERE tenant_id = :t"
            " AND chain_seq = 1"), {"t": TENANT})
        conn.exec_driver_sql("SET LOCAL session_replication_role = origin")
        assert conn.execute(sa.text(VERIFY_CHAIN), {"t": TENANT}).one().bad_hashes == 1


@pytest.mark.parametrize("statement", [
    "UPDATE public.mt5_audit_log SET actor = 'someone else'",
    "UPDATE public.mt5_audit_log SET actor = 'x' WHERE false",
    "DELETE FROM public.mt5_audit_log",
    "DELETE FROM public.mt5_audit_log WHERE time < now() - interval '100 years'",
    "TRUNCATE public.mt5_audit_log",
])
@pytest.mark.parametrize("role", [None, *ALL_ROLES])
def test_update_delete_truncate_are_refused_for_every_role(
    schema: Schema, events: int, statement: str, role: str | None
) -> None:
    with session(schema.engine, role, TENANT) as conn, pytest.raises(sa.exc.DBAPIError) as err:
        conn.exec_driver_sql(statement)
    assert getattr(err.value.orig, "sqlstate", None) == "42501", err.value


def test_the_retention_switch_only_lets_expired_rows_go(schema: Schema, events: int) -> None:
    with session(schema.engine) as conn:
        conn.execute(sa.text("SELECT set_config('suho_mt5.audit_retention', 'on', true)"))
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            conn.execute(sa.text("DELETE FROM mt5_audit_log WHERE tenant_id = :t"), {"t": TENANT})


def test_repeatable_read_writers_are_refused(schema: Schema, events: int) -> None:
    with schema.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.execute(sa.text("SELECT set_config('app.current_tenant_id', :t, true)"),
                         {"t": TENANT})
            with pytest.raises(sa.exc.DBAPIError, match="READ COMMITTED"):
                conn.execute(sa.text("INSERT INTO mt5_audit_log (event_type, actor)"
                                     " VALUES ('x.y', 'rr')"))


def test_events_of_old_accounts_survive_them(schema: Schema, seeded: dict[str, TenantData]) -> None:
    """No foreign key: the trail outlives the account it describes."""
    stranger = uuid.uuid4()
    with session(schema.engine, "mt5_ingest") as conn:
        inserted = conn.execute(sa.text(
            "INSERT INTO mt5_audit_log (tenant_id, event_type, actor, account_id, time)"
            " VALUES (:t, 'account.deleted', 'api', :a, :when)"),
            {"t": TENANT, "a": stranger, "when": datetime.now(UTC) - timedelta(days=3)})
        assert inserted.rowcount == 1
