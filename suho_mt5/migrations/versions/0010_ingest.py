"""ingest: dead-letter table, account margin mode, the Data Bridge's reads

* ``mt5_ingest_dead_letters``: what the Data Bridge could not store, kept for operators:
  the raw bytes, the subject, a reason code and a detail in words, when, and where in the
  stream it was (``stream``, ``stream_seq``, ``byte_offset``: unique, so a redelivered bad
  message is recorded once). Not tenant data (an unauthorised subject has no trustworthy
  tenant): no tenant role may read it; ``mt5_ingest`` inserts, ``mt5_maintenance`` reads and
  deletes, ``mt5_compliance`` reads.
* ``mt5_user_accounts.margin_mode``: ``netting``, ``exchange`` or ``hedging`` (MQL5
  ``ACCOUNT_MARGIN_MODE``), NULL while unknown; the risk checks read it.
* The bridge's service role (BYPASSRLS since 0009 for its logins that have it; the policies
  below serve logins without it) reads what its checks need across tenants (balance history for
  peak equity and daily loss, heartbeats for offline marking, broker quotes for the recent
  deviation a signal is adjusted by, open positions for exposure, risk events) and inserts
  the signals it publishes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.migrations.operations import (
    create_tenant_view_sql,
    execute_sql,
    replace_tenant_view_sql,
)

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEAD_LETTERS = "mt5_ingest_dead_letters"
REASONS = ("undecodable", "unauthorized", "account_mismatch", "kind_mismatch", "check_violation",
           "refused", "max_deliver")
MARGIN_MODES = ("netting", "exchange", "hedging")
ACCOUNTS_VIEW = "mt5_tenant.mt5_user_accounts"
# The tenant roles' privileges on the accounts view, as revision 0009 gives them.
ACCOUNTS_VIEW_GRANTS = (("mt5_app", "SELECT, INSERT, UPDATE, DELETE"), ("mt5_readonly", "SELECT"))
# (table, command) the bridge gains, with a cross-tenant policy where row-level security is on.
INGEST_GRANTS = (
    ("mt5_account_balance_history", "SELECT"),
    ("mt5_ea_heartbeat", "SELECT"),
    ("mt5_broker_quotes", "SELECT"),
    ("mt5_risk_events", "SELECT"),
    ("mt5_trade_orders", "SELECT"),
    ("mt5_trading_signals", "INSERT"),
)


def _policy(table: str, command: str) -> str:
    clause = "WITH CHECK (true)" if command == "INSERT" else "USING (true)"
    name = f"mt5_ingest_{command.lower()}"
    return (
        "DO $do$ BEGIN\n"
        f"  IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = 'public'"
        f" AND tablename = '{table}' AND policyname = '{name}') THEN\n"
        f"    CREATE POLICY {name} ON public.{table} AS PERMISSIVE FOR {command}"
        f" TO mt5_ingest {clause};\n"
        "  END IF;\nEND $do$"
    )


def upgrade() -> None:
    op.create_table(
        DEAD_LETTERS,
        sa.Column("dead_letter_id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("stream", sa.Text(), nullable=False),
        sa.Column("stream_seq", sa.BigInteger(), nullable=False),
        sa.Column("byte_offset", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("tenant_id", sa.Text(), nullable=True),
        sa.Column("account_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("raw", postgresql.BYTEA(), nullable=False),
        sa.Column("packet_count", sa.Integer(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False, server_default="1"),
        sa.PrimaryKeyConstraint("dead_letter_id", name=f"{DEAD_LETTERS}_pkey"),
        sa.UniqueConstraint("stream", "stream_seq", "byte_offset", name=f"{DEAD_LETTERS}_position_key"),
        sa.CheckConstraint(
            "reason IN (" + ", ".join(f"'{r}'" for r in REASONS) + ")", name=f"{DEAD_LETTERS}_reason_check"
        ),
        sa.CheckConstraint("packet_count >= 0", name=f"{DEAD_LETTERS}_packet_count_check"),
    )
    op.create_index(f"{DEAD_LETTERS}_time_idx", DEAD_LETTERS, [sa.text("time DESC")])
    execute_sql(f"ALTER TABLE {DEAD_LETTERS} OWNER TO mt5_owner")
    execute_sql(f"REVOKE ALL ON {DEAD_LETTERS} FROM PUBLIC")
    execute_sql(f"GRANT INSERT ON {DEAD_LETTERS} TO mt5_ingest")
    execute_sql(f"GRANT SELECT, DELETE ON {DEAD_LETTERS} TO mt5_maintenance")
    execute_sql(f"GRANT SELECT ON {DEAD_LETTERS} TO mt5_compliance")

    op.add_column("mt5_user_accounts", sa.Column("margin_mode", sa.Text(), nullable=True))
    op.create_check_constraint(
        "mt5_user_accounts_margin_mode_check", "mt5_user_accounts",
        "margin_mode IN (" + ", ".join(f"'{m}'" for m in MARGIN_MODES) + ")",
    )
    # The tenant view (0009) lists the table's columns as they were: add the new one.
    execute_sql(replace_tenant_view_sql("mt5_user_accounts"))

    for table, command in INGEST_GRANTS:
        execute_sql(f"GRANT {command} ON {table} TO mt5_ingest")
        execute_sql(_policy(table, command))


def downgrade() -> None:
    for table, command in reversed(INGEST_GRANTS):
        execute_sql(f"DROP POLICY IF EXISTS mt5_ingest_{command.lower()} ON public.{table}")
        execute_sql(f"REVOKE {command} ON {table} FROM mt5_ingest")
    # A view cannot lose a column in place: drop it, drop the column, build it as 0009 did.
    execute_sql(f"DROP VIEW {ACCOUNTS_VIEW}")
    op.drop_constraint("mt5_user_accounts_margin_mode_check", "mt5_user_accounts", type_="check")
    op.drop_column("mt5_user_accounts", "margin_mode")
    execute_sql(create_tenant_view_sql("mt5_user_accounts"))
    execute_sql(f"ALTER VIEW {ACCOUNTS_VIEW} OWNER TO mt5_owner")
    execute_sql(
        f"COMMENT ON VIEW {ACCOUNTS_VIEW} IS 'suho-mt5: public.mt5_user_accounts, rows of the "
        "tenant in app.current_tenant_id only (read and write)'"
    )
    for role, privileges in ACCOUNTS_VIEW_GRANTS:
        execute_sql(f"GRANT {privileges} ON {ACCOUNTS_VIEW} TO {role}")
    op.drop_table(DEAD_LETTERS)
