"""audit and compliance: audit log, risk events, consents, reports (schemas/03-mt5-audit-compliance.sql)

* ``mt5_audit_log`` (~500 rows/day, 7 years): 90-day chunks. Insert-only and
  tamper-evident: a BEFORE INSERT trigger chains each tenant's events (``chain_seq``,
  ``prev_hash``, ``row_hash`` = SHA-256 of the event and the previous hash), and
  UPDATE, DELETE and TRUNCATE are refused by triggers, for the owner and superusers too.
  The only way out is retention past 7 years: ``drop_chunks`` (TimescaleDB, fires no row
  trigger) or the guarded batched DELETE of ``mt5_maintain()`` (postgresql).
  No row-level security (the seed's choice): tenant roles may only INSERT, and only for
  the tenant they have set.
* ``mt5_risk_events`` (~5 rows/day, 2 years): 90-day chunks.
* ``mt5_user_consents`` (GDPR) and ``mt5_compliance_reports``: regular tables.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import SchemaItem

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.migrations.operations import execute_sql, tenant_default

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TSTZ = sa.DateTime(timezone=True)
UUID = postgresql.UUID(as_uuid=True)
JSONB = postgresql.JSONB()

TENANT_ID_RULE = "tenant_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$'"
EVENT_TYPE_RULE = "event_type ~ '^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$'"
HEX64 = "'^[0-9a-f]{64}$'"

CONSENT_TYPES = ("terms_of_service", "privacy_policy", "data_processing", "marketing",
                 "ml_training", "data_sharing")
REPORT_TYPES = ("monthly_trading", "best_execution", "transaction_reporting", "risk_summary",
                "gdpr_export", "audit_verification")
SEVERITIES = ("info", "warning", "high", "critical")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def tenant_id(table: str) -> list[SchemaItem]:
    return [
        sa.Column("tenant_id", sa.Text(), nullable=False, server_default=sa.text(tenant_default())),
        sa.CheckConstraint(TENANT_ID_RULE, name=f"{table}_tenant_id_check"),
    ]


def account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "account_id"],
        ["mt5_user_accounts.tenant_id", "mt5_user_accounts.account_id"],
        name=f"{table}_account_fkey",
    )


ROW_HASH_SQL = """CREATE FUNCTION mt5_audit_row_hash(
    tenant_id text, chain_seq bigint, prev_hash text, event_id uuid, event_time timestamptz,
    recorded_at timestamptz, event_type text, actor text, account_id uuid, payload jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- The hashed form is a JSON array, so no field can run into the next; times are integer
    -- microseconds since the epoch, the payload is jsonb's canonical text.
    SELECT encode(sha256(convert_to(jsonb_build_array(
        tenant_id, chain_seq::text, prev_hash, event_id::text,
        (extract(epoch FROM event_time) * 1000000)::bigint::text,
        (extract(epoch FROM recorded_at) * 1000000)::bigint::text,
        event_type, actor, account_id::text, payload)::text, 'UTF8')), 'hex')
$fn$"""

CHAIN_SQL = """CREATE FUNCTION mt5_audit_log_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- Numbers and chains each tenant's events. Runs as the owner (the audit log has no row-level
-- security), so the previous event is found whoever inserts.
DECLARE
    current_tenant text := NULLIF(current_setting('app.current_tenant_id', true), '');
    previous record;
BEGIN
    IF current_tenant IS NOT NULL AND NEW.tenant_id IS DISTINCT FROM current_tenant THEN
        RAISE EXCEPTION 'an audit event of tenant % cannot be written while tenant % is set',
            NEW.tenant_id, current_tenant USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.tenant_id IS NULL THEN
        RETURN NEW;  -- the NOT NULL constraint reports it
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- A snapshot older than the lock below could miss the tenant's latest event.
        RAISE EXCEPTION 'audit events must be written in READ COMMITTED transactions'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    -- One writer per tenant chain at a time; the next one waits, then sees this event.
    PERFORM pg_advisory_xact_lock(hashtextextended('mt5_audit_log:' || NEW.tenant_id, 0));
    SELECT a.chain_seq, a.row_hash INTO previous
    FROM mt5_audit_log a
    WHERE a.tenant_id = NEW.tenant_id
    ORDER BY a.chain_seq DESC
    LIMIT 1;
    NEW.chain_seq := coalesce(previous.chain_seq, 0) + 1;
    NEW.prev_hash := coalesce(previous.row_hash, repeat('0', 64));
    NEW.recorded_at := clock_timestamp();
    NEW.row_hash := mt5_audit_row_hash(NEW.tenant_id, NEW.chain_seq, NEW.prev_hash,
        NEW.event_id, NEW.time, NEW.recorded_at, NEW.event_type, NEW.actor, NEW.account_id,
        NEW.payload);
    RETURN NEW;
END
$fn$"""

APPEND_ONLY_SQL = """CREATE FUNCTION mt5_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp
AS $fn$
-- Refuses UPDATE, DELETE and TRUNCATE for every role, owner and superusers included. The one
-- exception is retention: mt5_maintain() sets suho_mt5.audit_retention for its transaction
-- and may then delete rows older than the retention period recorded for the table.
DECLARE
    keep interval;
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('suho_mt5.audit_retention', true) = 'on' THEN
        IF TG_LEVEL = 'STATEMENT' THEN
            RETURN NULL;
        END IF;
        SELECT c.retention INTO keep FROM mt5_timeseries_catalog c
        WHERE c.relation_schema = 'public' AND c.relation_name = 'mt5_audit_log';
        IF keep IS NOT NULL AND OLD.time < now() - keep THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'mt5_audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'only retention past the recorded period removes audit events';
END
$fn$"""

FUNCTIONS = (
    ("mt5_audit_row_hash(text, bigint, text, uuid, timestamptz, timestamptz, text, text, uuid, jsonb)", ROW_HASH_SQL),
    ("mt5_audit_log_chain()", CHAIN_SQL),
    ("mt5_audit_log_append_only()", APPEND_ONLY_SQL),
)

TIME_SERIES = (
    ("mt5_audit_log", "90 days", 2),
    ("mt5_risk_events", "90 days", 2),
)


def upgrade() -> None:
    op.create_table(
        "mt5_audit_log",
        sa.Column("time", TSTZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("event_id", UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        *tenant_id("mt5_audit_log"),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False, server_default=sa.text("current_user")),
        # No foreign key: the trail must outlive what it describes.
        sa.Column("account_id", UUID, nullable=True),
        sa.Column("payload", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        # Set by mt5_audit_log_chain(), whatever the writer sends.
        sa.Column("recorded_at", TSTZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.Text(), nullable=False),
        sa.Column("row_hash", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "event_id", "time", name="mt5_audit_log_pkey"),
        sa.UniqueConstraint("tenant_id", "chain_seq", "time", name="mt5_audit_log_chain_key"),
        sa.CheckConstraint(EVENT_TYPE_RULE, name="mt5_audit_log_event_type_check"),
        sa.CheckConstraint("char_length(actor) BETWEEN 1 AND 256", name="mt5_audit_log_actor_check"),
        sa.CheckConstraint("chain_seq > 0", name="mt5_audit_log_chain_seq_check"),
        sa.CheckConstraint(f"prev_hash ~ {HEX64} AND row_hash ~ {HEX64}", name="mt5_audit_log_hash_check"),
    )

    op.create_table(
        "mt5_risk_events",
        sa.Column("time", TSTZ, nullable=False, server_default=sa.text("now()")),
        *tenant_id("mt5_risk_events"),
        sa.Column("account_id", UUID, nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("details", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("threshold", sa.Numeric(20, 8), nullable=True),
        sa.Column("observed_value", sa.Numeric(20, 8), nullable=True),
        sa.Column("acknowledged_at", TSTZ, nullable=True),
        sa.Column("acknowledged_by", sa.Text(), nullable=True),
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        account_fk("mt5_risk_events"),
        sa.UniqueConstraint(
            "tenant_id", "account_id", "sequence", "time", name="mt5_risk_events_idempotency_key"
        ),
        sa.CheckConstraint("event_type ~ '^[a-z][a-z0-9_]*$'", name="mt5_risk_events_event_type_check"),
        sa.CheckConstraint(_in("severity", SEVERITIES), name="mt5_risk_events_severity_check"),
        sa.CheckConstraint("sequence >= 0", name="mt5_risk_events_sequence_check"),
        sa.CheckConstraint(
            "(acknowledged_at IS NULL) = (acknowledged_by IS NULL)",
            name="mt5_risk_events_acknowledged_check",
        ),
    )

    op.create_table(
        "mt5_user_consents",
        sa.Column("consent_id", UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        *tenant_id("mt5_user_consents"),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("account_id", UUID, nullable=True),
        sa.Column("consent_type", sa.Text(), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("granted_at", TSTZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("revoked_at", TSTZ, nullable=True),
        sa.Column("policy_version", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("consent_id", name="mt5_user_consents_pkey"),
        account_fk("mt5_user_consents"),
        sa.CheckConstraint("char_length(user_id) BETWEEN 1 AND 128", name="mt5_user_consents_user_id_check"),
        sa.CheckConstraint(_in("consent_type", CONSENT_TYPES), name="mt5_user_consents_consent_type_check"),
        sa.CheckConstraint("revoked_at >= granted_at", name="mt5_user_consents_revoked_at_check"),
    )
    op.create_index(
        "mt5_user_consents_user_idx", "mt5_user_consents",
        ["tenant_id", "user_id", "consent_type", sa.text("granted_at DESC")],
    )

    op.create_table(
        "mt5_compliance_reports",
        sa.Column("report_id", UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        *tenant_id("mt5_compliance_reports"),
        sa.Column("report_type", sa.Text(), nullable=False),
        sa.Column("report_period_start", TSTZ, nullable=False),
        sa.Column("report_period_end", TSTZ, nullable=False),
        sa.Column("report_data", JSONB, nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="final"),
        sa.Column("generated_at", TSTZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("generated_by", sa.Text(), nullable=False, server_default=sa.text("current_user")),
        sa.PrimaryKeyConstraint("report_id", name="mt5_compliance_reports_pkey"),
        sa.CheckConstraint(_in("report_type", REPORT_TYPES), name="mt5_compliance_reports_report_type_check"),
        sa.CheckConstraint(
            "report_period_end > report_period_start", name="mt5_compliance_reports_period_check"
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'final', 'submitted', 'superseded')",
            name="mt5_compliance_reports_status_check",
        ),
    )
    op.create_index(
        "mt5_compliance_reports_period_idx", "mt5_compliance_reports",
        ["tenant_id", "report_type", sa.text("report_period_start DESC")],
    )

    for table in ("mt5_audit_log", "mt5_risk_events", "mt5_user_consents", "mt5_compliance_reports"):
        execute_sql(f"ALTER TABLE {table} OWNER TO mt5_owner")
    for table, chunk, partitions in TIME_SERIES:
        op.create_hypertable(table, "time", chunk_time_interval=chunk, tenant_partitions=partitions)
        op.create_index(f"{table}_tenant_id_time_idx", table, ["tenant_id", sa.text("time DESC")])
    op.create_index(
        "mt5_audit_log_account_idx", "mt5_audit_log", ["tenant_id", "account_id", sa.text("time DESC")],
        postgresql_where=sa.text("account_id IS NOT NULL"),
    )
    op.create_index(
        "mt5_risk_events_tenant_id_account_id_time_idx", "mt5_risk_events",
        ["tenant_id", "account_id", sa.text("time DESC")],
    )

    for signature, body in FUNCTIONS:
        execute_sql(body)
        execute_sql(f"ALTER FUNCTION {signature} OWNER TO mt5_owner")
    execute_sql("REVOKE ALL ON FUNCTION mt5_audit_log_chain() FROM PUBLIC")
    execute_sql("REVOKE ALL ON FUNCTION mt5_audit_log_append_only() FROM PUBLIC")
    execute_sql(
        "CREATE TRIGGER mt5_audit_log_chain BEFORE INSERT ON mt5_audit_log "
        "FOR EACH ROW EXECUTE FUNCTION mt5_audit_log_chain()"
    )
    # Statement level: refused even when no row matches. Row level: also fires on chunks,
    # which inherit row triggers but not statement triggers.
    execute_sql(
        "CREATE TRIGGER mt5_audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
        "ON mt5_audit_log FOR EACH STATEMENT EXECUTE FUNCTION mt5_audit_log_append_only()"
    )
    execute_sql(
        "CREATE TRIGGER mt5_audit_log_append_only_row BEFORE UPDATE OR DELETE ON mt5_audit_log "
        "FOR EACH ROW EXECUTE FUNCTION mt5_audit_log_append_only()"
    )

    op.enable_tenant_rls("mt5_risk_events", cross_tenant={"mt5_ingest": ["INSERT"], "mt5_compliance": ["SELECT"]})
    op.enable_tenant_rls("mt5_user_consents", cross_tenant={"mt5_compliance": ["SELECT", "INSERT", "UPDATE"]})
    op.enable_tenant_rls("mt5_compliance_reports", cross_tenant={"mt5_compliance": ["SELECT", "INSERT", "UPDATE"]})

    execute_sql("GRANT INSERT ON mt5_audit_log TO mt5_app, mt5_ingest, mt5_compliance")
    execute_sql("GRANT SELECT ON mt5_audit_log TO mt5_compliance, mt5_maintenance")
    execute_sql("GRANT SELECT, INSERT, UPDATE ON mt5_risk_events, mt5_user_consents TO mt5_app")
    execute_sql("GRANT SELECT ON mt5_compliance_reports TO mt5_app")
    execute_sql(
        "GRANT SELECT ON mt5_risk_events, mt5_user_consents, mt5_compliance_reports TO mt5_readonly"
    )
    execute_sql("GRANT INSERT ON mt5_risk_events TO mt5_ingest")
    execute_sql("GRANT SELECT ON mt5_risk_events TO mt5_compliance, mt5_maintenance")
    execute_sql("GRANT SELECT, INSERT, UPDATE ON mt5_user_consents, mt5_compliance_reports TO mt5_compliance")


def downgrade() -> None:
    op.drop_table("mt5_compliance_reports")
    op.drop_table("mt5_user_consents")
    for table, _, _ in reversed(TIME_SERIES):
        op.drop_hypertable(table)
    for signature, _ in reversed(FUNCTIONS):
        execute_sql(f"DROP FUNCTION {signature}")
