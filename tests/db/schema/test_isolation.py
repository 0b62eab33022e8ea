"""Tenant isolation, for every tenant table and every aggregate view, and for every role.

As tenant A: none of B's rows; writing a row of B, or moving a row to B, refused (SQLSTATE
42501 by the row-level security of the plain tenant tables, 44000 by the tenant view's check
option on the time series, which have no row-level security since revision 0013); with no
tenant or an empty tenant: no rows, no insert, no error on reads. Runs on every engine
(tests/db/conftest.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.db.schema._support import (
    AGGREGATES,
    ALL_ROLES,
    RLS_TABLES,
    TENANT_A,
    TENANT_B,
    TENANT_ROLES,
    TENANT_TABLES,
    TIME_SERIES_TABLES,
    Schema,
    TenantData,
    role_connection,
    session,
    set_tenant_sql,
)

# One valid row per table, for the tenant and account given as parameters.
INSERTS = {
    "mt5_user_accounts": "INSERT INTO mt5_user_accounts (tenant_id, user_id, broker_name,"
    " broker_server, mt5_login, mt5_account_number, account_type)"
    " VALUES (:tenant, 'intruder', 'b', 's', 99, '1', 'demo')",
    "mt5_account_balance_history": "INSERT INTO mt5_account_balance_history (tenant_id,"
    " account_id, balance, equity) VALUES (:tenant, :account, 1, 1)",
    "mt5_broker_quotes": "INSERT INTO mt5_broker_quotes (tenant_id, account_id, symbol, bid, ask)"
    " VALUES (:tenant, :account, 'EURUSD', 1, 1)",
    "mt5_ea_heartbeat": "INSERT INTO mt5_ea_heartbeat (tenant_id, account_id, status)"
    " VALUES (:tenant, :account, 'online')",
    "mt5_trade_orders": "INSERT INTO mt5_trade_orders (tenant_id, account_id, ticket, symbol,"
    " order_type, volume, price, status) VALUES (:tenant, :account, 1, 'EURUSD', 'buy', 1, 1,"
    " 'open')",
    "mt5_trading_signals": "INSERT INTO mt5_trading_signals (tenant_id, account_id, symbol,"
    " action) VALUES (:tenant, :account, 'EURUSD', 'BUY')",
    "mt5_signal_executions": "INSERT INTO mt5_signal_executions (tenant_id, account_id,"
    " signal_id) VALUES (:tenant, :account, :signal)",
    "mt5_risk_events": "INSERT INTO mt5_risk_events (tenant_id, account_id, event_type, severity)"
    " VALUES (:tenant, :account, 'probe', 'info')",
    "mt5_user_consents": "INSERT INTO mt5_user_consents (tenant_id, user_id, consent_type,"
    " granted) VALUES (:tenant, 'intruder', 'marketing', true)",
    "mt5_compliance_reports": "INSERT INTO mt5_compliance_reports (tenant_id, report_type,"
    " report_period_start, report_period_end, report_data) VALUES (:tenant, 'risk_summary',"
    " now() - interval '1 day', now(), '{}')",
    "mt5_account_settings": "INSERT INTO mt5_account_settings (tenant_id, account_id, name,"
    " value) VALUES (:tenant, :account, 'probe', '1')",
}
assert set(INSERTS) == set(TENANT_TABLES)


def sqlstate(err: pytest.ExceptionInfo[sa.exc.DBAPIError]) -> str | None:
    orig = err.value.orig
    return getattr(orig, "sqlstate", None)


# Time series a tenant may insert into but not change (no UPDATE on their views).
INSERT_ONLY = ("mt5_account_balance_history", "mt5_broker_quotes", "mt5_ea_heartbeat")


def refusal(table: str, *, update: bool = False) -> str:
    """What refuses a row of the wrong tenant first: the plain tables' row-level security
    or a missing privilege (42501), or the time series' view check option (44000)."""
    if table in RLS_TABLES or (update and table in INSERT_ONLY):
        return "42501"
    return "44000"


@pytest.fixture(scope="module")
def data(seeded: dict[str, TenantData]) -> Iterator[dict[str, TenantData]]:
    yield seeded


@pytest.mark.parametrize("role", TENANT_ROLES)
@pytest.mark.parametrize("table", TENANT_TABLES)
def test_a_tenant_reads_only_its_own_rows(
    schema: Schema, data: dict[str, TenantData], role: str, table: str
) -> None:
    with session(schema.engine, role, TENANT_A) as conn:
        tenants = conn.execute(
            sa.text(f"SELECT tenant_id, count(*) FROM {table} GROUP BY tenant_id")
        ).all()
    assert tenants == [(TENANT_A, data[TENANT_A].rows[table])]
    assert data[TENANT_A].rows[table] > 0


@pytest.mark.parametrize("view", sorted(AGGREGATES))
def test_a_tenant_reads_only_its_own_aggregate_rows(
    schema: Schema, data: dict[str, TenantData], view: str
) -> None:
    for role in TENANT_ROLES:
        with session(schema.engine, role, TENANT_A) as conn:
            tenants = conn.execute(sa.text(f"SELECT DISTINCT tenant_id FROM {view}")).scalars()
            assert list(tenants) == [TENANT_A]
        for tenant in (None, ""):
            with session(schema.engine, role, tenant) as conn:
                assert conn.execute(sa.text(f"SELECT count(*) FROM {view}")).scalar_one() == 0


@pytest.mark.parametrize("table", TENANT_TABLES)
@pytest.mark.parametrize("tenant", [None, "", "tenant_a' OR 'x' = 'x"])
def test_without_a_tenant_nothing_is_visible_and_nothing_can_be_written(
    schema: Schema, data: dict[str, TenantData], table: str, tenant: str | None
) -> None:
    for role in TENANT_ROLES:
        with session(schema.engine, role, tenant) as conn:
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
    a = data[TENANT_A]
    with session(schema.engine, "mt5_app", tenant) as conn, pytest.raises(
        sa.exc.DBAPIError
    ) as err:
        # Refused by the policy or, for tables the role may not write, by its privileges.
        conn.execute(sa.text(INSERTS[table]),
                     {"tenant": TENANT_A, "account": a.account_id, "signal": a.signal_id})
    assert sqlstate(err) == refusal(table), err.value


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_writing_a_row_of_another_tenant_is_refused(
    schema: Schema, data: dict[str, TenantData], table: str
) -> None:
    b = data[TENANT_B]
    with session(schema.engine, "mt5_app", TENANT_A) as conn, pytest.raises(
        sa.exc.DBAPIError
    ) as err:
        conn.execute(sa.text(INSERTS[table]),
                     {"tenant": TENANT_B, "account": b.account_id, "signal": b.signal_id})
    assert sqlstate(err) == refusal(table), err.value


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_moving_a_row_to_another_tenant_is_refused(
    schema: Schema, data: dict[str, TenantData], table: str
) -> None:
    with session(schema.engine, "mt5_app", TENANT_A) as conn, pytest.raises(
        sa.exc.DBAPIError
    ) as err:
        conn.execute(sa.text(f"UPDATE {table} SET tenant_id = :b"), {"b": TENANT_B})
    # (or a hypertable's own chunk constraint, 23514, when the new tenant hashes elsewhere)
    assert sqlstate(err) in (refusal(table, update=True), "23514"), err.value


@pytest.mark.parametrize("table", ["mt5_user_accounts", "mt5_trading_signals",
                                   "mt5_signal_executions", "mt5_risk_events",
                                   "mt5_user_consents", "mt5_trade_orders"])
def test_another_tenants_rows_cannot_be_changed_or_deleted(
    schema: Schema, data: dict[str, TenantData], table: str
) -> None:
    b_account = data[TENANT_B].account_id
    column = "account_id"
    with session(schema.engine, "mt5_app", TENANT_A) as conn:
        changed = conn.execute(
            sa.text(f"UPDATE {table} SET tenant_id = tenant_id WHERE {column} = :b"),
            {"b": b_account},
        ).rowcount
        assert changed == 0
        if table == "mt5_user_accounts":
            assert conn.execute(sa.text(f"DELETE FROM {table} WHERE {column} = :b"),
                                {"b": b_account}).rowcount == 0
    with session(schema.engine) as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE tenant_id = :t"),
                            {"t": TENANT_B}).scalar_one() == data[TENANT_B].rows[table]


def test_an_account_is_referenced_only_from_its_own_tenant(
    schema: Schema, data: dict[str, TenantData]
) -> None:
    """Even a role that writes every tenant cannot attach a row to another tenant's account."""
    with session(schema.engine, "mt5_ingest") as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(sa.text(INSERTS["mt5_account_balance_history"]),
                     {"tenant": TENANT_A, "account": data[TENANT_B].account_id})


def test_an_execution_must_name_a_signal_of_its_own_tenant(
    schema: Schema, data: dict[str, TenantData]
) -> None:
    a = data[TENANT_A]
    with session(schema.engine, "mt5_ingest") as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(sa.text(INSERTS["mt5_signal_executions"]),
                     {"tenant": TENANT_A, "account": a.account_id,
                      "signal": data[TENANT_B].signal_id})


def test_a_refused_row_of_another_tenant_shows_none_of_its_data(
    schema: Schema, data: dict[str, TenantData]
) -> None:
    """Tenant A writes, through its view, an execution report naming tenant B's account and
    signal, whose trade B closed. The view's check refuses it, after the BEFORE trigger that
    takes a closed trade's result; the refusal shows the failing row, so that trigger must
    not have filled it with B's result first (revision 0013)."""
    b = data[TENANT_B]
    with session(schema.engine, "mt5_app", TENANT_A) as conn, pytest.raises(
        sa.exc.DBAPIError
    ) as err:
        conn.execute(sa.text(
            "INSERT INTO mt5_signal_executions (tenant_id, account_id, signal_id, close_price,"
            " profit, closed_at) VALUES (:t, :a, :s, 1, 0, now())"),
            {"t": TENANT_B, "a": b.account_id, "s": b.signal_id})
    assert sqlstate(err) in ("44000", "42501")
    message = str(err.value.orig)
    # B's closing order: price 1.0960, profit -20 (tests.db.schema._support.seed_two_tenants)
    assert "1.096" not in message and "-20" not in message, message


@pytest.mark.parametrize("view,raw", sorted(AGGREGATES.items()))
def test_raw_aggregates_are_closed_to_every_role_but_their_owner(
    schema: Schema, data: dict[str, TenantData], view: str, raw: str
) -> None:
    for role in ("mt5_app", "mt5_readonly", "mt5_ingest", "mt5_compliance"):
        with session(schema.engine, role, TENANT_A) as conn, pytest.raises(
            sa.exc.ProgrammingError, match="permission denied"
        ):
            conn.execute(sa.text(f"SELECT count(*) FROM {raw}"))
    with session(schema.engine, "mt5_maintenance") as conn:
        assert conn.execute(sa.text(f"SELECT count(DISTINCT tenant_id) FROM {raw}")
                            ).scalar_one() == 2


# What the Data Bridge's checks read across tenants (revision 0010): peak equity and daily
# loss, offline marking, recent deviation, open positions, risk events.
INGEST_READS = ("mt5_account_balance_history", "mt5_ea_heartbeat", "mt5_broker_quotes",
                "mt5_trade_orders", "mt5_risk_events")


def test_ingest_writes_every_tenant_and_reads_only_what_its_checks_need(
    schema: Schema, data: dict[str, TenantData]
) -> None:
    with session(schema.engine, "mt5_ingest") as conn:
        for tenant in (TENANT_A, TENANT_B):
            d = data[tenant]
            for table in ("mt5_account_balance_history", "mt5_broker_quotes",
                          "mt5_ea_heartbeat", "mt5_trade_orders", "mt5_risk_events"):
                conn.execute(sa.text(INSERTS[table]),
                             {"tenant": tenant, "account": d.account_id})
        # Account lookups and the signals it publishes, for every tenant.
        assert conn.execute(sa.text("SELECT count(DISTINCT tenant_id) FROM mt5_user_accounts")
                            ).scalar_one() == 2
        assert conn.execute(sa.text(
            "UPDATE mt5_trading_signals SET status = 'sent', sent_at = now()"
            " WHERE signal_id = ANY(:ids)"),
            {"ids": [data[TENANT_A].signal_id, data[TENANT_B].signal_id]}).rowcount == 2
    for table in INGEST_READS:
        with session(schema.engine, "mt5_ingest") as conn:
            tenants = conn.execute(sa.text(f"SELECT DISTINCT tenant_id FROM {table}")).scalars()
            assert sorted(tenants) == [TENANT_A, TENANT_B], table
    for table in (*TIME_SERIES_TABLES, "mt5_user_consents", "mt5_compliance_reports"):
        if table == "mt5_trading_signals" or table in INGEST_READS:
            continue
        with session(schema.engine, "mt5_ingest") as conn, pytest.raises(
            sa.exc.ProgrammingError, match="permission denied"
        ):
            conn.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1"))


def test_compliance_reads_every_tenant(schema: Schema, data: dict[str, TenantData]) -> None:
    with session(schema.engine, "mt5_compliance") as conn:
        for table in (*TENANT_TABLES, "mt5_audit_log"):
            tenants = conn.execute(sa.text(f"SELECT DISTINCT tenant_id FROM {table}")).scalars()
            assert sorted(tenants) == [TENANT_A, TENANT_B], table


def test_the_audit_log_takes_inserts_of_the_current_tenant_only(
    schema: Schema, data: dict[str, TenantData]
) -> None:
    with session(schema.engine, "mt5_app", TENANT_A) as conn:
        conn.execute(sa.text("INSERT INTO mt5_audit_log (event_type, actor) VALUES"
                             " ('signal.generated', 'api')"))
    with session(schema.engine, "mt5_app", TENANT_A) as conn, pytest.raises(
        sa.exc.DBAPIError
    ) as err:
        conn.execute(sa.text("INSERT INTO mt5_audit_log (tenant_id, event_type, actor)"
                             " VALUES (:b, 'signal.generated', 'api')"), {"b": TENANT_B})
    assert sqlstate(err) == "42501"
    for role in TENANT_ROLES:
        with session(schema.engine, role, TENANT_A) as conn, pytest.raises(
            sa.exc.ProgrammingError, match="permission denied"
        ):
            conn.execute(sa.text("SELECT 1 FROM mt5_audit_log"))


def test_tenant_context_is_transaction_local(schema: Schema, data: dict[str, TenantData]) -> None:
    """set_config(..., true) ends with the transaction: the next one sees nothing."""
    with role_connection(schema.engine, "mt5_app") as conn:
        with conn.begin():
            conn.execute(sa.text("SELECT set_config('app.current_tenant_id', :t, true)"),
                         {"t": TENANT_A})
            assert conn.execute(sa.text("SELECT count(*) FROM mt5_user_accounts")
                                ).scalar_one() == 1
        with conn.begin():
            assert conn.execute(sa.text("SELECT count(*) FROM mt5_user_accounts")
                                ).scalar_one() == 0


def test_the_plain_tenant_tables_have_rls_enabled_and_forced_and_the_time_series_none(
    schema: Schema,
) -> None:
    """Revision 0013: the time series are isolated by their views and grants alone (and may
    then have a columnstore, trap 3); the plain tenant tables keep ENABLE + FORCE."""
    with session(schema.engine) as conn:
        flags = dict(conn.execute(sa.text(
            "SELECT relname, relrowsecurity AND relforcerowsecurity FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')"
            " AND relname LIKE 'mt5\\_%'")).all())
        any_rls = conn.execute(sa.text(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND (relrowsecurity OR relforcerowsecurity) AND relname = ANY(:t)"),
            {"t": list(TIME_SERIES_TABLES)}).all()
        policies = conn.execute(sa.text(
            "SELECT tablename, qual, with_check FROM pg_policies"
            " WHERE policyname = 'tenant_isolation'")).all()
        tables_with_policies = set(conn.execute(sa.text(
            "SELECT tablename FROM pg_policies")).scalars())
    assert {t for t, on in flags.items() if on} == set(RLS_TABLES)
    assert any_rls == []
    assert tables_with_policies == set(RLS_TABLES)
    assert {p.tablename for p in policies} == set(RLS_TABLES)
    for p in policies:
        # The tenant is read in a sub-select: once per statement, index-friendly (trap 9).
        expected = "SELECT NULLIF(current_setting('app.current_tenant_id'::text, true), ''::text)"
        assert expected in p.qual and expected in p.with_check


def test_the_tenant_policy_uses_an_initplan_and_the_tenant_index(
    schema: Schema, data: dict[str, TenantData]
) -> None:
    with session(schema.engine, "mt5_app", TENANT_A) as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join(conn.execute(sa.text(
            "EXPLAIN (COSTS OFF) SELECT * FROM mt5_trade_orders"
            " WHERE time > now() - interval '7 days'")).scalars())
    assert "InitPlan" in plan, plan
    assert "Index" in plan and "tenant_id" in plan, plan
    # A bare current_setting() would show up as a filter evaluated on every row.
    assert "current_setting" not in plan, plan


def test_tenant_roles_cannot_bypass_row_security(schema: Schema) -> None:
    with session(schema.engine) as conn:
        attrs = dict(conn.execute(sa.text(
            "SELECT rolname, rolbypassrls OR rolsuper FROM pg_roles"
            " WHERE rolname LIKE 'mt5\\_%'")).all())
    # maintenance refreshes aggregates of every tenant (trap 4); ingest COPYs (revision 0009:
    # its policies already cross every tenant for what it is granted, and COPY refuses RLS)
    assert {r for r, bypass in attrs.items() if bypass} == {"mt5_maintenance", "mt5_ingest"}
    assert set(attrs) == set(ALL_ROLES)


def test_unique_keys_of_time_series_tables_contain_time_and_tenant(schema: Schema) -> None:
    """TimescaleDB refuses others (trap 8); the postgresql edition keeps the same keys."""
    with session(schema.engine) as conn:
        keys = conn.execute(sa.text(
            "SELECT c.relname, i.indexrelid::regclass::text,"
            " array_agg(a.attname::text ORDER BY a.attname) FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indrelid"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indisunique AND c.relname = ANY(:tables)"
            " GROUP BY 1, 2"), {"tables": list(TIME_SERIES_TABLES)}).all()
    assert {k[0] for k in keys} == set(TIME_SERIES_TABLES)
    for table, index, columns in keys:
        assert {"time", "tenant_id"} <= set(columns), (table, index)


def test_idempotent_inserts_skip_duplicates(schema: Schema, data: dict[str, TenantData]) -> None:
    a = data[TENANT_A]
    row = {"t": "2026-01-01T00:00:00Z", "acc": a.account_id}
    with session(schema.engine, "mt5_ingest") as conn:
        inserted = [
            conn.execute(sa.text(
                "INSERT INTO mt5_ea_heartbeat (time, tenant_id, account_id, status, sequence)"
                " VALUES (:t, 'tenant_a', :acc, 'online', 424242) ON CONFLICT DO NOTHING"),
                row).rowcount
            for _ in range(3)
        ]
    assert inserted == [1, 0, 0]


# ------------------------------------------------------------------ tenant views (0009)

TENANT_VIEW_TABLES = (*TENANT_TABLES, "mt5_audit_log")


def test_every_tenant_view_has_its_tables_columns_and_protections(schema: Schema) -> None:
    """The views are SELECT * of their table, fixed when created: a later column added to a
    table without replacing its view (replace_tenant_view_sql) fails here."""
    with session(schema.engine) as conn:
        for table in TENANT_VIEW_TABLES:
            columns = {}
            for schema_name in ("public", "mt5_tenant"):
                columns[schema_name] = conn.execute(sa.text(
                    "SELECT array_agg(attname::text ORDER BY attnum) FROM pg_attribute"
                    " WHERE attrelid = to_regclass(:r) AND attnum > 0 AND NOT attisdropped"),
                    {"r": f"{schema_name}.{table}"}).scalar_one()
            assert columns["mt5_tenant"] == columns["public"], table
            kind, owner, options = conn.execute(sa.text(
                "SELECT relkind, relowner::regrole::text, reloptions::text[] FROM pg_class"
                " WHERE oid = to_regclass(:r)"), {"r": f"mt5_tenant.{table}"}).one()
            assert (kind, owner) == ("v", "mt5_owner"), table
            assert {"security_barrier=true", "check_option=cascaded"} <= set(options), table


def test_tenant_roles_hold_no_privilege_on_any_table_or_chunk(schema: Schema) -> None:
    """Chunks copy their hypertable's grants (trap 7): none on the table, none on a chunk."""
    with session(schema.engine) as conn:
        held = conn.execute(sa.text(
            "SELECT r.rolname, n.nspname, c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " CROSS JOIN (VALUES ('mt5_app'), ('mt5_readonly')) AS r(rolname)"
            " WHERE c.relkind IN ('r', 'p', 'm', 'f')"
            # the system's and TimescaleDB's own catalogs and job statistics hold no tenant
            # rows: what matters is every table of ours and every chunk of a hypertable
            "   AND (n.nspname IN ('public', 'mt5_tenant') OR c.relname LIKE '\\_hyper\\_%'"
            "        OR c.relname LIKE '\\_materialized\\_hypertable\\_%'"
            "        OR c.relname LIKE 'compress\\_hyper\\_%')"
            "   AND has_table_privilege(r.rolname, c.oid,"
            "       'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')"
            # policies and refresh times, no tenant data (docs/schema.md, Roles)
            "   AND c.relname <> 'mt5_timeseries_catalog'")).all()
    assert held == []


def test_a_tenant_login_without_the_search_path_fails_closed(
    schema: Schema, data: dict[str, TenantData], native_only: None
) -> None:
    """A login that forgot `ALTER ROLE ... SET search_path` reaches the tables, which refuse."""
    with role_connection(schema.engine, "mt5_app") as conn, conn.begin():
        conn.exec_driver_sql("SET LOCAL search_path = public")
        set_tenant_sql(conn, TENANT_A)
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text("SELECT count(*) FROM mt5_trade_orders"))
