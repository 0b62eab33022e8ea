"""hardening: account digests for the gateway's admission; health_check() warns about
login roles that anyone could log in as (docs/security.md)

``mt5_account_digests()`` returns, for every active account with a key, the first 32 bits
of the MD5 of its id, and nothing else. The gateway keeps the set and asks bcrypt only for
HELLOs whose account id may exist: a HELLO for a random account id (what an attacker who
knows no account has) is refused after a pause as long as a real check, without one. The
digests do not give the ids away (32 bits of a hash of 122 random bits), so a tenant role
learns no other tenant's accounts from them; with 100,000 accounts a random id passes the
filter once in about 43,000 tries, and then gets a real check.

SECURITY DEFINER, owned by ``mt5_maintenance`` (which reads the columns it needs since
revision 0008), EXECUTE for ``mt5_app`` (the gateway's role).

``health_check()`` gains a ``login_roles`` row: a warning when ``mt5_owner`` or
``mt5_maintenance`` (LOGIN roles without a password on the timescale edition, since
TimescaleDB's jobs run as their owner) has a password, or a ``trust`` rule of
``pg_hba.conf`` (``pg_hba_file_rules``) lets them log in without one. Only a superuser can
see either; for other roles the row says so. Downgrading restores the function of revision 0013.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 14:00:00
"""

from collections.abc import Sequence

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.migrations.operations import execute_sql, health_check_sql

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIGESTS = "mt5_account_digests()"
# health_check() as revision 0013 left it: row-level security on the plain tenant tables,
# the time series isolated by their views and grants (frozen here: revisions never import
# each other).
HEALTH_TENANT_TABLES = ("mt5_user_accounts", "mt5_user_consents", "mt5_compliance_reports",
                        "mt5_account_settings")
HEALTH_ALL_TABLES = (
    "mt5_user_accounts", "mt5_account_balance_history", "mt5_broker_quotes",
    "mt5_ea_heartbeat", "mt5_trade_orders", "mt5_trading_signals", "mt5_signal_executions",
    "mt5_risk_events", "mt5_user_consents", "mt5_compliance_reports", "mt5_account_settings",
    "mt5_audit_log",
)
TIME_SERIES = ("mt5_account_balance_history", "mt5_broker_quotes", "mt5_ea_heartbeat",
               "mt5_trade_orders", "mt5_trading_signals", "mt5_signal_executions",
               "mt5_risk_events", "mt5_audit_log")
TENANT_ROLES = ("mt5_app", "mt5_readonly")


def _health_check(*, login_roles: bool) -> str:
    return health_check_sql(tenant_tables=HEALTH_TENANT_TABLES, all_tables=HEALTH_ALL_TABLES,
                            bcrypt_cost=12, pbkdf2_iterations=25000, tenant_views=True,
                            or_replace=True, time_series=TIME_SERIES, tenant_roles=TENANT_ROLES,
                            login_roles=login_roles)

DIGESTS_SQL = """CREATE FUNCTION mt5_account_digests()
RETURNS SETOF integer
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
-- The first 32 bits of md5(account_id::text), signed, of every account that may log in.
SELECT ('x' || substr(md5(a.account_id::text), 1, 8))::bit(32)::integer
FROM public.mt5_user_accounts a
WHERE a.is_active AND a.api_key_hash IS NOT NULL
$fn$"""


def upgrade() -> None:
    execute_sql(DIGESTS_SQL)
    execute_sql(f"ALTER FUNCTION {DIGESTS} OWNER TO mt5_maintenance")
    execute_sql(f"REVOKE ALL ON FUNCTION {DIGESTS} FROM PUBLIC")
    execute_sql(f"GRANT EXECUTE ON FUNCTION {DIGESTS} TO mt5_app")
    execute_sql(
        f"COMMENT ON FUNCTION {DIGESTS} IS 'suho-mt5: 32-bit digests of the accounts that "
        "may log in (the gateway refuses other account ids without a key check)'"
    )
    execute_sql(_health_check(login_roles=True))


def downgrade() -> None:
    execute_sql(_health_check(login_roles=False))
    execute_sql(f"DROP FUNCTION {DIGESTS}")
