"""authentication: mt5_authenticate(account_id, api_key) for the gateway

The gateway knows an EA by the account id and API key it presents, not by its tenant, and
every tenant table has row-level security FORCEd: looking the account up needs a role that
bypasses it. ``mt5_authenticate`` is a narrow SECURITY DEFINER function owned by
``mt5_maintenance`` (``BYPASSRLS``), which gets SELECT on exactly the five columns it
reads. It returns ``(tenant_id, user_id, account_id)`` when the key verifies, and no row
otherwise.

Timing does not say whether the account exists: both paths run the same lookup and exactly
one ``verify_api_key()``, against the stored hash or, for an unknown, inactive or keyless
account, against a fixed dummy hash of the scheme and cost ``hash_api_key()`` uses on this
server (bcrypt cost 12 with pgcrypto, PBKDF2-SHA256 with 25,000 iterations without; the
dummy's preimage is unknown and its result is discarded anyway). The dummies are constants
so the function is the same text in every database (tests compare them with what
``hash_api_key()`` produces).

EXECUTE goes to ``mt5_app`` (the API gateway) and ``mt5_ingest`` (the Data Bridge), and is
revoked from PUBLIC.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 00:30:00
"""

from collections.abc import Sequence

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.migrations.operations import execute_sql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "mt5_authenticate(uuid, text)"
OWNER = "mt5_maintenance"
CALLERS = ("mt5_app", "mt5_ingest")
COLUMNS = ("account_id", "tenant_id", "user_id", "api_key_hash", "is_active")

# Same scheme and cost as hash_api_key() in 0001 (BCRYPT_COST, PBKDF2_ITERATIONS).
DUMMY_BCRYPT = "$2a$12$ws8WfPki9wmmYBcVIWi6meRZcw2MV7NVwzO.NgoNGnjQFRMEPOXW."
DUMMY_PBKDF2 = (
    "$pbkdf2-sha256$25000$cf146b3ceca45324c63872a4ef4e00eb$"
    "13d2f70397f9a89fa6bc4c61028f6b290485486151e0dd44107cb46641c55465"
)

AUTHENTICATE_SQL = f"""CREATE FUNCTION mt5_authenticate(p_account_id uuid, p_api_key text)
RETURNS TABLE (tenant_id text, user_id text, account_id uuid)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
-- One row (the account's tenant, user and id) when p_api_key verifies against the active
-- account's stored hash; no row otherwise, after the same work either way.
DECLARE
    found_account record;
    dummy text;
    verified boolean;
BEGIN
    dummy := CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pgcrypto')
                  THEN '{DUMMY_BCRYPT}'
                  ELSE '{DUMMY_PBKDF2}' END;
    SELECT a.tenant_id, a.user_id, a.account_id, a.api_key_hash INTO found_account
    FROM public.mt5_user_accounts a
    WHERE a.account_id = p_account_id AND a.is_active AND a.api_key_hash IS NOT NULL;
    IF FOUND THEN
        verified := public.verify_api_key(p_api_key, found_account.api_key_hash);
    ELSE
        -- Two statements: "verify_api_key(...) AND false" could be folded to false unrun.
        verified := public.verify_api_key(p_api_key, dummy);
        verified := false;
    END IF;
    IF verified THEN
        tenant_id := found_account.tenant_id;
        user_id := found_account.user_id;
        account_id := found_account.account_id;
        RETURN NEXT;
    END IF;
END
$fn$"""


def upgrade() -> None:
    execute_sql(f"GRANT SELECT ({', '.join(COLUMNS)}) ON mt5_user_accounts TO {OWNER}")
    execute_sql(AUTHENTICATE_SQL)
    execute_sql(f"ALTER FUNCTION {SIGNATURE} OWNER TO {OWNER}")
    execute_sql(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    execute_sql(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {', '.join(CALLERS)}")
    execute_sql(
        f"COMMENT ON FUNCTION {SIGNATURE} IS 'suho-mt5: the account''s tenant, user and id "
        "when the API key verifies; no row otherwise (same work either way)'"
    )


def downgrade() -> None:
    execute_sql(f"DROP FUNCTION {SIGNATURE}")
    execute_sql(f"REVOKE SELECT ({', '.join(COLUMNS)}) ON mt5_user_accounts FROM {OWNER}")
