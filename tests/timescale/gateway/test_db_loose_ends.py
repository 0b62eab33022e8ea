"""The database loose ends docs/security.md leaves open ("Not closed yet"), each pinned by a
test through a real login in ``mt5_app``: what the document says a tenant login can do, it
can do, and the mitigation it recommends bounds it. When one of them is closed, its test
fails and the document must change with it."""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import sqlalchemy as sa

from suho_mt5.db import psycopg_conninfo

from ._support import GatewayDb

TENANT = "tenant_gw"  # the tenant of gw_db's accounts


def _libpq(url: str | sa.URL) -> str:
    if isinstance(url, sa.URL):
        url = url.render_as_string(hide_password=False)
    return psycopg_conninfo(url)[0]


@contextmanager
def _tenant_login(gw_db: GatewayDb, **settings: str) -> Iterator[str]:
    """A fresh LOGIN role in mt5_app (with ``settings`` set on the role, as the document
    recommends), dropped afterwards: the libpq URL to log in with."""
    name, password = f"loose_{uuid.uuid4().hex[:8]}", secrets.token_hex(12)
    with psycopg.connect(_libpq(gw_db.owner_url), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}' IN ROLE mt5_app")
        for key, value in settings.items():
            admin.execute(f"ALTER ROLE {name} SET {key} = '{value}'")
    try:
        yield _libpq(sa.make_url(gw_db.owner_url).set(username=name, password=password))
    finally:
        with psycopg.connect(_libpq(gw_db.owner_url), autocommit=True) as admin:
            admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          f"WHERE usename = '{name}'")
            admin.execute(f"DROP OWNED BY {name}")
            admin.execute(f"DROP ROLE {name}")


def _audited_insert(gw_db: GatewayDb, lock_timeout_ms: int) -> None:
    """A closed trade of one of the tenant's accounts, written as the bridge writes it: its
    audit event takes the tenant's chain lock."""
    with psycopg.connect(_libpq(gw_db.owner_url)) as conn:
        conn.execute(f"SET lock_timeout = {lock_timeout_ms}")
        conn.execute(
            "INSERT INTO mt5_trade_orders (time, tenant_id, account_id, ticket, symbol, "
            "order_type, volume, price, profit, status, sequence) VALUES "
            "(%s, %s, %s, %s, 'EURUSD', 'buy', 0.1, 1.1, 1, 'closed', %s)",
            (dt.datetime.now(dt.UTC), TENANT, gw_db.accounts[0].account_id,
             900_000_000 + secrets.randbelow(1_000_000), secrets.randbelow(1_000_000)))


def test_a_tenant_login_can_stall_another_tenants_audited_writes_with_the_chain_lock(
    gw_db: GatewayDb,
) -> None:
    """docs/security.md, "The audit chain's advisory lock": advisory locks have no
    privileges, so a tenant login can hold the key of any tenant's chain; the writes that
    chain events wait until it lets go."""
    with _tenant_login(gw_db) as url, psycopg.connect(url, autocommit=True) as tenant:
        tenant.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                       (f"mt5_audit_log:{TENANT}",))
        with pytest.raises(psycopg.errors.LockNotAvailable):
            _audited_insert(gw_db, lock_timeout_ms=300)
        tenant.execute("SELECT pg_advisory_unlock_all()")
    _audited_insert(gw_db, lock_timeout_ms=5000)


def test_lock_table_through_a_tenant_view_blocks_every_tenant_until_the_idle_timeout(
    gw_db: GatewayDb,
) -> None:
    """docs/security.md, "LOCK TABLE through the tenant views": a tenant login may lock a
    view it can update, which locks the table under it for every tenant; the recommended
    ``idle_in_transaction_session_timeout`` on the login ends the holder and frees it."""
    with _tenant_login(gw_db, idle_in_transaction_session_timeout="1s") as url:
        holder = psycopg.connect(url)
        try:
            holder.execute("LOCK TABLE mt5_tenant.mt5_trade_orders IN ACCESS EXCLUSIVE MODE")
            with psycopg.connect(_libpq(gw_db.owner_url)) as other:
                other.execute("SET lock_timeout = 300")
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    other.execute("SELECT count(*) FROM mt5_trade_orders").fetchone()
            time.sleep(2.0)  # idle in its transaction past the timeout: the server ends it
            with psycopg.connect(_libpq(gw_db.owner_url)) as other:
                other.execute("SET lock_timeout = 5000")
                other.execute("SELECT count(*) FROM mt5_trade_orders").fetchone()
            with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
                holder.execute("SELECT 1")
        finally:
            holder.close()


def test_a_tenant_login_sees_the_row_counts_of_every_table_not_of_a_tenant(
    gw_db: GatewayDb,
) -> None:
    """docs/security.md, "Volume of the other tenants": the catalog's row estimates and the
    statistics views are readable by a tenant login (totals across tenants); its own rows
    are all the tenant views show it."""
    with psycopg.connect(_libpq(gw_db.owner_url), autocommit=True) as admin:
        admin.execute("ANALYZE mt5_user_accounts")
        total = admin.execute("SELECT count(*) FROM mt5_user_accounts").fetchone()
    with _tenant_login(gw_db) as url, psycopg.connect(url) as tenant:
        estimate = tenant.execute(
            "SELECT reltuples FROM pg_class WHERE oid = 'public.mt5_user_accounts'::regclass"
        ).fetchone()
        inserted = tenant.execute(
            "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'mt5_user_accounts'"
        ).fetchone()
        tenant.execute("SELECT set_config('app.current_tenant_id', 'no_such_tenant', false)")
        own = tenant.execute("SELECT count(*) FROM mt5_tenant.mt5_user_accounts").fetchone()
    assert total is not None and estimate is not None and inserted is not None
    assert estimate[0] == total[0] > 0  # every tenant's accounts, counted together
    assert inserted[0] >= total[0]
    assert own == (0,)
