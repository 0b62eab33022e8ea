"""core tables: accounts, balance history, broker quotes, EA heartbeat (schemas/01-mt5-core-tables.sql)

* ``mt5_user_accounts``: regular table, the tenant anchor every other table references
  through ``(tenant_id, account_id)`` so a row can only point at an account of its own tenant.
* ``mt5_account_balance_history`` (~2,880 rows/account/day, 2 years): 7-day chunks.
* ``mt5_broker_quotes`` (~86,400 rows/symbol/day, 90 days): 1-day chunks.
* ``mt5_ea_heartbeat`` (~2,880 rows/account/day, 30 days): 1-day chunks, so retention drops
  whole days.

Time-series tables are hypertables with a hash dimension on ``tenant_id`` (timescale and
apache editions) or tables with the same indexes (postgresql). Every table: row-level
security ENABLEd and FORCEd, fail-closed tenant policy, grants per role.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import SchemaItem

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.migrations.operations import execute_sql, tenant_default

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TSTZ = sa.DateTime(timezone=True)
UUID = postgresql.UUID(as_uuid=True)
PRICE = sa.Numeric(20, 8)
MONEY = sa.Numeric(20, 4)
PERCENT = sa.Numeric(12, 4)

# Same rule as suho_mt5.db.tenant.validate_tenant_id.
TENANT_ID_RULE = "tenant_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$'"
SYMBOL_RULE = "symbol ~ '^[!-~]{1,32}$'"
# ISO 4217 codes, and what MT5 brokers use beside them: cent accounts (USC), crypto (USDT).
CURRENCY_RULE = "currency ~ '^[A-Z0-9]{3,8}$'"


def tenant_id(table: str) -> list[SchemaItem]:
    return [
        sa.Column("tenant_id", sa.Text(), nullable=False, server_default=sa.text(tenant_default())),
        sa.CheckConstraint(TENANT_ID_RULE, name=f"{table}_tenant_id_check"),
    ]


def time_series(table: str) -> list[SchemaItem]:
    """time, tenant_id and account_id, the account referenced within its own tenant."""
    return [
        sa.Column("time", TSTZ, nullable=False, server_default=sa.text("now()")),
        *tenant_id(table),
        sa.Column("account_id", UUID, nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["mt5_user_accounts.tenant_id", "mt5_user_accounts.account_id"],
            name=f"{table}_account_fkey",
        ),
    ]


def sequence(table: str) -> list[SchemaItem]:
    """The EA's per-connection packet sequence: with account and time, the idempotency key
    the Data Bridge inserts under ``ON CONFLICT DO NOTHING``. A unique index on a hypertable
    must contain every partitioning column, ``time`` and ``tenant_id`` (docs/schema.md, trap 8)."""
    return [
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("sequence >= 0", name=f"{table}_sequence_check"),
        sa.UniqueConstraint(
            "tenant_id", "account_id", "sequence", "time", name=f"{table}_idempotency_key"
        ),
    ]


def time_indexes(table: str, *, by: Sequence[str] = ("account_id",)) -> None:
    op.create_index(f"{table}_tenant_id_time_idx", table, ["tenant_id", sa.text("time DESC")])
    op.create_index(
        f"{table}_tenant_id_{'_'.join(by)}_time_idx", table, ["tenant_id", *by, sa.text("time DESC")]
    )


TIME_SERIES = (
    # table, chunk interval, tenant hash partitions
    ("mt5_account_balance_history", "7 days", 4),
    ("mt5_broker_quotes", "1 day", 4),
    ("mt5_ea_heartbeat", "1 day", 4),
)
ALL_TABLES = ("mt5_user_accounts", *(t for t, _, _ in TIME_SERIES))


def upgrade() -> None:
    op.create_table(
        "mt5_user_accounts",
        sa.Column("account_id", UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        *tenant_id("mt5_user_accounts"),
        sa.Column("user_id", sa.Text(), nullable=False),
        sa.Column("broker_name", sa.Text(), nullable=False),
        sa.Column("broker_server", sa.Text(), nullable=False),
        sa.Column("mt5_login", sa.BigInteger(), nullable=False),
        sa.Column("mt5_account_number", sa.Text(), nullable=False),
        sa.Column("account_type", sa.Text(), nullable=False),
        sa.Column("api_key_hash", sa.Text(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=False, server_default="USD"),
        sa.Column("leverage", sa.Integer(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", TSTZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", TSTZ, nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("account_id", name="mt5_user_accounts_pkey"),
        # The target of every (tenant_id, account_id) foreign key.
        sa.UniqueConstraint("tenant_id", "account_id", name="mt5_user_accounts_tenant_account_key"),
        sa.UniqueConstraint(
            "tenant_id", "broker_server", "mt5_login", name="mt5_user_accounts_login_key"
        ),
        sa.CheckConstraint("char_length(user_id) BETWEEN 1 AND 128", name="mt5_user_accounts_user_id_check"),
        sa.CheckConstraint("broker_name <> '' AND broker_server <> ''", name="mt5_user_accounts_broker_check"),
        sa.CheckConstraint("mt5_login > 0", name="mt5_user_accounts_mt5_login_check"),
        sa.CheckConstraint(
            "mt5_account_number ~ '^[0-9]{1,20}$'", name="mt5_user_accounts_mt5_account_number_check"
        ),
        sa.CheckConstraint(
            "account_type IN ('demo', 'real', 'contest')", name="mt5_user_accounts_account_type_check"
        ),
        # A hash, never a key: bcrypt ($2a$...) or the PBKDF2 fallback ($pbkdf2-sha256$...).
        sa.CheckConstraint(
            r"api_key_hash ~ '^\$(2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}|pbkdf2-sha256\$[0-9]{1,7}\$([0-9a-f]{2}){8,64}\$[0-9a-f]{64})$'",
            name="mt5_user_accounts_api_key_hash_check",
        ),
        sa.CheckConstraint(CURRENCY_RULE, name="mt5_user_accounts_currency_check"),
        sa.CheckConstraint("leverage > 0", name="mt5_user_accounts_leverage_check"),
    )
    op.create_index("mt5_user_accounts_tenant_id_user_id_idx", "mt5_user_accounts", ["tenant_id", "user_id"])

    op.create_table(
        "mt5_account_balance_history",
        *time_series("mt5_account_balance_history"),
        sa.Column("balance", MONEY, nullable=False),
        sa.Column("equity", MONEY, nullable=False),
        sa.Column("margin", MONEY, nullable=False, server_default="0"),
        sa.Column("free_margin", MONEY, nullable=True),
        sa.Column("margin_level", PERCENT, nullable=True),
        sa.Column("credit", MONEY, nullable=False, server_default="0"),
        sa.Column("leverage", sa.Integer(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=True),
        *sequence("mt5_account_balance_history"),
        sa.CheckConstraint("margin >= 0", name="mt5_account_balance_history_margin_check"),
        # 0 when no margin is in use (the protocol's convention).
        sa.CheckConstraint("margin_level >= 0", name="mt5_account_balance_history_margin_level_check"),
        sa.CheckConstraint("credit >= 0", name="mt5_account_balance_history_credit_check"),
        sa.CheckConstraint("leverage > 0", name="mt5_account_balance_history_leverage_check"),
        sa.CheckConstraint(CURRENCY_RULE, name="mt5_account_balance_history_currency_check"),
    )

    op.create_table(
        "mt5_broker_quotes",
        *time_series("mt5_broker_quotes"),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("bid", PRICE, nullable=False),
        sa.Column("ask", PRICE, nullable=False),
        sa.Column("last", PRICE, nullable=True),
        sa.Column("volume", PRICE, nullable=True),
        sa.Column("spread_points", sa.Integer(), nullable=True),
        sa.Column("polygon_bid", PRICE, nullable=True),
        sa.Column("polygon_ask", PRICE, nullable=True),
        # In pips: broker mid - Polygon mid, filled by reconciliation.
        sa.Column("price_deviation", PRICE, nullable=True),
        *sequence("mt5_broker_quotes"),
        sa.CheckConstraint(SYMBOL_RULE, name="mt5_broker_quotes_symbol_check"),
        sa.CheckConstraint("bid > 0 AND ask > 0", name="mt5_broker_quotes_price_check"),
        sa.CheckConstraint("last >= 0", name="mt5_broker_quotes_last_check"),
        sa.CheckConstraint("volume >= 0", name="mt5_broker_quotes_volume_check"),
        sa.CheckConstraint("spread_points >= 0", name="mt5_broker_quotes_spread_points_check"),
        sa.CheckConstraint("polygon_bid > 0 AND polygon_ask > 0", name="mt5_broker_quotes_polygon_check"),
    )

    op.create_table(
        "mt5_ea_heartbeat",
        *time_series("mt5_ea_heartbeat"),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("ea_version", sa.Text(), nullable=True),
        sa.Column("terminal_build", sa.Integer(), nullable=True),
        sa.Column("terminal_connected", sa.Boolean(), nullable=True),
        sa.Column("trade_allowed", sa.Boolean(), nullable=True),
        sa.Column("ping_ms", sa.Integer(), nullable=True),
        *sequence("mt5_ea_heartbeat"),
        sa.CheckConstraint(
            "status IN ('online', 'offline', 'degraded')", name="mt5_ea_heartbeat_status_check"
        ),
        sa.CheckConstraint("char_length(ea_version) <= 32", name="mt5_ea_heartbeat_ea_version_check"),
        sa.CheckConstraint("terminal_build > 0", name="mt5_ea_heartbeat_terminal_build_check"),
        sa.CheckConstraint("ping_ms >= 0", name="mt5_ea_heartbeat_ping_ms_check"),
    )

    for table in ALL_TABLES:
        execute_sql(f"ALTER TABLE {table} OWNER TO mt5_owner")
    for table, chunk, partitions in TIME_SERIES:
        op.create_hypertable(table, "time", chunk_time_interval=chunk, tenant_partitions=partitions)
    time_indexes("mt5_account_balance_history")
    time_indexes("mt5_broker_quotes", by=("account_id", "symbol"))
    time_indexes("mt5_ea_heartbeat")

    execute_sql(
        """CREATE FUNCTION mt5_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$fn$"""
    )
    execute_sql("ALTER FUNCTION mt5_touch_updated_at() OWNER TO mt5_owner")
    execute_sql("REVOKE ALL ON FUNCTION mt5_touch_updated_at() FROM PUBLIC")
    execute_sql(
        "CREATE TRIGGER mt5_user_accounts_touch BEFORE UPDATE ON mt5_user_accounts "
        "FOR EACH ROW EXECUTE FUNCTION mt5_touch_updated_at()"
    )

    op.enable_tenant_rls(
        "mt5_user_accounts",
        # The bridge resolves logins and checks API keys; compliance pseudonymises (GDPR).
        cross_tenant={"mt5_ingest": ["SELECT"], "mt5_compliance": ["SELECT", "UPDATE"]},
    )
    for table, _, _ in TIME_SERIES:
        op.enable_tenant_rls(table, cross_tenant={"mt5_ingest": ["INSERT"], "mt5_compliance": ["SELECT"]})

    execute_sql("GRANT SELECT, INSERT, UPDATE, DELETE ON mt5_user_accounts TO mt5_app")
    execute_sql("GRANT SELECT ON mt5_user_accounts TO mt5_readonly, mt5_ingest, mt5_compliance")
    execute_sql("GRANT UPDATE ON mt5_user_accounts TO mt5_compliance")
    for table, _, _ in TIME_SERIES:
        execute_sql(f"GRANT SELECT, INSERT ON {table} TO mt5_app")
        execute_sql(f"GRANT SELECT ON {table} TO mt5_readonly, mt5_compliance, mt5_maintenance")
        execute_sql(f"GRANT INSERT ON {table} TO mt5_ingest")


def downgrade() -> None:
    for table, _, _ in reversed(TIME_SERIES):
        op.drop_hypertable(table)
    op.drop_table("mt5_user_accounts")
    execute_sql("DROP FUNCTION mt5_touch_updated_at()")
