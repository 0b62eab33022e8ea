"""trading tables: orders, signals, executions and the feedback loop (schemas/02-mt5-trading-tables.sql)

* ``mt5_trade_orders`` (~50 rows/account/day, 7 years): 30-day chunks. One row per order,
  deal or position event as the EA reports it (``status`` after the event).
* ``mt5_trading_signals`` (~20 rows/account/day, 90 days): 7-day chunks.
* ``mt5_signal_executions`` (~20 rows/account/day, 2 years): 30-day chunks.

The feedback loop, in triggers (SECURITY DEFINER, run as ``mt5_owner`` with the row's own
tenant set for their duration, so row-level security keeps them inside that tenant):

* an execution report marks its signal ``executed`` (or ``rejected``, by MQL5 retcode) and
  must name a signal of its own tenant;
* a trade close (``status = 'closed'``) fills its execution's result (``close_price``,
  ``profit``, ``profit_pips``, ``closed_at``), sets ``trade_closed`` and
  ``feedback_status = 'pending'`` for the ML feedback query; a close that arrives before
  its execution report (at-least-once delivery does not keep order) is picked up when the
  report arrives.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import SchemaItem

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.migrations.operations import execute_sql, migration_edition, tenant_default

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TSTZ = sa.DateTime(timezone=True)
UUID = postgresql.UUID(as_uuid=True)
PRICE = sa.Numeric(20, 8)
MONEY = sa.Numeric(20, 4)

TENANT_ID_RULE = "tenant_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$'"
SYMBOL_RULE = "symbol ~ '^[!-~]{1,32}$'"

# MQL5 ENUM_ORDER_TYPE, ENUM_DEAL_TYPE and ENUM_DEAL_ENTRY, lower case (protocol names).
ORDER_TYPES = ("buy", "sell", "buy_limit", "sell_limit", "buy_stop", "sell_stop",
               "buy_stop_limit", "sell_stop_limit", "close_by")
DEAL_TYPES = ("buy", "sell", "balance", "credit", "charge", "correction", "bonus", "commission",
              "commission_daily", "commission_monthly", "commission_agent_daily",
              "commission_agent_monthly", "interest", "buy_canceled", "sell_canceled",
              "dividend", "dividend_franked", "tax")
DEAL_ENTRIES = ("in", "out", "inout", "out_by")
ORDER_STATUSES = ("pending", "open", "closed", "cancelled", "rejected")
SIGNAL_ACTIONS = ("BUY", "SELL", "CLOSE", "MODIFY")
SIGNAL_STATUSES = ("pending", "sent", "executed", "rejected", "expired", "cancelled")
FEEDBACK_STATUSES = ("awaiting_close", "pending", "included_in_training", "excluded")
# TRADE_RETCODE_PLACED, _DONE, _DONE_PARTIAL: the order reached the market.
SUCCESS_RETCODES = (10008, 10009, 10010)


def _in(column: str, values: Sequence[object]) -> str:
    items = ", ".join(str(v) if isinstance(v, int) else f"'{v}'" for v in values)
    return f"{column} IN ({items})"


def tenant_id(table: str) -> list[SchemaItem]:
    return [
        sa.Column("tenant_id", sa.Text(), nullable=False, server_default=sa.text(tenant_default())),
        sa.CheckConstraint(TENANT_ID_RULE, name=f"{table}_tenant_id_check"),
    ]


def time_series(table: str) -> list[SchemaItem]:
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
    return [
        sa.Column("sequence", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("sequence >= 0", name=f"{table}_sequence_check"),
        sa.UniqueConstraint(
            "tenant_id", "account_id", "sequence", "time", name=f"{table}_idempotency_key"
        ),
    ]


TIME_SERIES = (
    ("mt5_trade_orders", "30 days", 2),
    ("mt5_trading_signals", "7 days", 2),
    ("mt5_signal_executions", "30 days", 2),
)

# --------------------------------------------------------------------------- triggers
# Each runs as mt5_owner, which is subject to row-level security (FORCE): the SET clause
# gives the function its own app.current_tenant_id, set to the row's tenant inside and
# restored when it returns, so every query in it sees that tenant's rows and no other's.

EXECUTION_BEFORE_INSERT = """CREATE FUNCTION mt5_signal_execution_fill() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET app.current_tenant_id = ''
AS $fn$
-- The trade may have closed before this report arrived: take its result now. Raises nothing,
-- so it reveals nothing about rows row-level security then refuses to insert.
DECLARE
    closing record;
BEGIN
    IF NEW.tenant_id IS NULL OR NEW.trade_closed THEN
        RETURN NEW;
    END IF;
    PERFORM set_config('app.current_tenant_id', NEW.tenant_id, true);
    SELECT o.price, o.time, o.profit, o.profit_pips INTO closing
    FROM mt5_trade_orders o
    WHERE o.tenant_id = NEW.tenant_id AND o.account_id = NEW.account_id
      AND o.status = 'closed'
      AND (o.signal_id = NEW.signal_id
           OR (NEW.ticket > 0 AND (o.position_id = NEW.ticket OR o.ticket = NEW.ticket)))
    ORDER BY o.time DESC
    LIMIT 1;
    IF FOUND THEN
        NEW.trade_closed := true;
        NEW.close_price := closing.price;
        NEW.closed_at := closing.time;
        NEW.profit := closing.profit;
        NEW.profit_pips := closing.profit_pips;
        NEW.feedback_status := 'pending';
    END IF;
    RETURN NEW;
END
$fn$"""

EXECUTION_AFTER_INSERT = f"""CREATE FUNCTION mt5_signal_execution_link() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET app.current_tenant_id = ''
AS $fn$
-- After row-level security accepted the row: the report must name a signal of its own
-- tenant, which it marks executed (or rejected, by MQL5 return code).
BEGIN
    PERFORM set_config('app.current_tenant_id', NEW.tenant_id, true);
    IF NOT EXISTS (SELECT 1 FROM mt5_trading_signals s
                   WHERE s.tenant_id = NEW.tenant_id AND s.signal_id = NEW.signal_id) THEN
        RAISE EXCEPTION 'signal % does not exist for tenant %', NEW.signal_id, NEW.tenant_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    UPDATE mt5_trading_signals s
    SET status = CASE WHEN NEW.result_code IS NULL
                        OR NEW.result_code IN ({', '.join(map(str, SUCCESS_RETCODES))})
                      THEN 'executed' ELSE 'rejected' END,
        executed_at = NEW.time
    WHERE s.tenant_id = NEW.tenant_id AND s.signal_id = NEW.signal_id
      AND s.status IN ('pending', 'sent');
    RETURN NULL;
END
$fn$"""

TRADE_CLOSED = """CREATE FUNCTION mt5_trade_order_closed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET app.current_tenant_id = ''
AS $fn$
BEGIN
    PERFORM set_config('app.current_tenant_id', NEW.tenant_id, true);
    UPDATE mt5_signal_executions e
    SET trade_closed = true,
        close_price = NEW.price,
        closed_at = NEW.time,
        profit = NEW.profit,
        profit_pips = NEW.profit_pips,
        feedback_status = 'pending'
    WHERE e.tenant_id = NEW.tenant_id AND e.account_id = NEW.account_id
      AND NOT e.trade_closed
      AND (e.signal_id = NEW.signal_id
           OR (e.ticket > 0 AND e.ticket IN (NEW.position_id, NEW.ticket)));
    RETURN NULL;
END
$fn$"""

TRIGGER_FUNCTIONS = (
    ("mt5_signal_execution_fill()", EXECUTION_BEFORE_INSERT),
    ("mt5_signal_execution_link()", EXECUTION_AFTER_INSERT),
    ("mt5_trade_order_closed()", TRADE_CLOSED),
)


def upgrade() -> None:
    op.create_table(
        "mt5_trade_orders",
        *time_series("mt5_trade_orders"),
        sa.Column("ticket", sa.BigInteger(), nullable=False),
        sa.Column("position_id", sa.BigInteger(), nullable=True),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("order_type", sa.Text(), nullable=False),
        sa.Column("deal_type", sa.Text(), nullable=True),
        sa.Column("deal_entry", sa.Text(), nullable=True),
        sa.Column("volume", PRICE, nullable=False),
        sa.Column("price", PRICE, nullable=False),
        sa.Column("stop_loss", PRICE, nullable=True),
        sa.Column("take_profit", PRICE, nullable=True),
        sa.Column("profit", MONEY, nullable=False, server_default="0"),
        sa.Column("commission", MONEY, nullable=False, server_default="0"),
        sa.Column("swap", MONEY, nullable=False, server_default="0"),
        sa.Column("fee", MONEY, nullable=False, server_default="0"),
        sa.Column("profit_pips", PRICE, nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("magic_number", sa.BigInteger(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("signal_id", UUID, nullable=True),
        *sequence("mt5_trade_orders"),
        sa.CheckConstraint("ticket >= 0", name="mt5_trade_orders_ticket_check"),
        sa.CheckConstraint("position_id > 0", name="mt5_trade_orders_position_id_check"),
        sa.CheckConstraint(SYMBOL_RULE, name="mt5_trade_orders_symbol_check"),
        sa.CheckConstraint(_in("order_type", ORDER_TYPES), name="mt5_trade_orders_order_type_check"),
        sa.CheckConstraint(_in("deal_type", DEAL_TYPES), name="mt5_trade_orders_deal_type_check"),
        sa.CheckConstraint(_in("deal_entry", DEAL_ENTRIES), name="mt5_trade_orders_deal_entry_check"),
        sa.CheckConstraint("volume >= 0", name="mt5_trade_orders_volume_check"),
        sa.CheckConstraint("price >= 0", name="mt5_trade_orders_price_check"),
        sa.CheckConstraint("stop_loss > 0 AND take_profit > 0", name="mt5_trade_orders_sl_tp_check"),
        sa.CheckConstraint(_in("status", ORDER_STATUSES), name="mt5_trade_orders_status_check"),
        sa.CheckConstraint("magic_number >= 0", name="mt5_trade_orders_magic_number_check"),
        sa.CheckConstraint("char_length(comment) <= 255", name="mt5_trade_orders_comment_check"),
    )

    op.create_table(
        "mt5_trading_signals",
        sa.Column("time", TSTZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("signal_id", UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        *tenant_id("mt5_trading_signals"),
        sa.Column("account_id", UUID, nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("entry_price", PRICE, nullable=True),
        sa.Column("stop_loss", PRICE, nullable=True),
        sa.Column("take_profit", PRICE, nullable=True),
        sa.Column("volume", PRICE, nullable=True),
        sa.Column("expires_at", TSTZ, nullable=True),
        sa.Column("confidence_score", sa.Numeric(5, 4), nullable=True),
        sa.Column("model_version", sa.Text(), nullable=True),
        sa.Column("strategy_name", sa.Text(), nullable=True),
        sa.Column("polygon_bid", PRICE, nullable=True),
        sa.Column("polygon_ask", PRICE, nullable=True),
        # Price offset applied for the account's broker (broker mid - Polygon mid).
        sa.Column("broker_adjustment", PRICE, nullable=True),
        sa.Column("magic_number", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("sent_at", TSTZ, nullable=True),
        sa.Column("executed_at", TSTZ, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "signal_id", "time", name="mt5_trading_signals_pkey"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["mt5_user_accounts.tenant_id", "mt5_user_accounts.account_id"],
            name="mt5_trading_signals_account_fkey",
        ),
        sa.CheckConstraint(SYMBOL_RULE, name="mt5_trading_signals_symbol_check"),
        sa.CheckConstraint(_in("action", SIGNAL_ACTIONS), name="mt5_trading_signals_action_check"),
        sa.CheckConstraint(
            "entry_price > 0 AND stop_loss > 0 AND take_profit > 0 AND polygon_bid > 0 AND polygon_ask > 0",
            name="mt5_trading_signals_price_check",
        ),
        # Stops on the losing side, targets on the winning side of the entry.
        sa.CheckConstraint(
            "CASE action"
            " WHEN 'BUY' THEN coalesce(stop_loss < entry_price, true) AND coalesce(take_profit > entry_price, true)"
            " WHEN 'SELL' THEN coalesce(stop_loss > entry_price, true) AND coalesce(take_profit < entry_price, true)"
            " ELSE true END",
            name="mt5_trading_signals_direction_check",
        ),
        sa.CheckConstraint("volume >= 0", name="mt5_trading_signals_volume_check"),
        sa.CheckConstraint("expires_at > time", name="mt5_trading_signals_expires_at_check"),
        sa.CheckConstraint(
            "confidence_score BETWEEN 0 AND 1", name="mt5_trading_signals_confidence_score_check"
        ),
        sa.CheckConstraint("magic_number >= 0", name="mt5_trading_signals_magic_number_check"),
        sa.CheckConstraint(_in("status", SIGNAL_STATUSES), name="mt5_trading_signals_status_check"),
    )

    op.create_table(
        "mt5_signal_executions",
        *time_series("mt5_signal_executions"),
        sa.Column("signal_id", UUID, nullable=False),
        sa.Column("ticket", sa.BigInteger(), nullable=True),
        sa.Column("actual_entry_price", PRICE, nullable=True),
        sa.Column("slippage", PRICE, nullable=True),
        sa.Column("executed_volume", PRICE, nullable=True),
        sa.Column("result_code", sa.Integer(), nullable=True),
        sa.Column("spread_at_execution", PRICE, nullable=True),
        sa.Column("market_volatility", PRICE, nullable=True),
        sa.Column("execution_latency_ms", sa.Integer(), nullable=True),
        sa.Column("trade_closed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("close_price", PRICE, nullable=True),
        sa.Column("closed_at", TSTZ, nullable=True),
        sa.Column("profit", MONEY, nullable=True),
        sa.Column("profit_pips", PRICE, nullable=True),
        sa.Column("feedback_status", sa.Text(), nullable=False, server_default="awaiting_close"),
        sa.Column("feedback_processed_at", TSTZ, nullable=True),
        *sequence("mt5_signal_executions"),
        # 0: no order was placed (the protocol's convention).
        sa.CheckConstraint("ticket >= 0", name="mt5_signal_executions_ticket_check"),
        sa.CheckConstraint(
            "actual_entry_price >= 0 AND close_price > 0", name="mt5_signal_executions_price_check"
        ),
        sa.CheckConstraint("executed_volume >= 0", name="mt5_signal_executions_executed_volume_check"),
        sa.CheckConstraint(
            "spread_at_execution >= 0 AND market_volatility >= 0",
            name="mt5_signal_executions_market_check",
        ),
        sa.CheckConstraint("execution_latency_ms >= 0", name="mt5_signal_executions_latency_check"),
        sa.CheckConstraint(
            _in("feedback_status", FEEDBACK_STATUSES), name="mt5_signal_executions_feedback_status_check"
        ),
        # Feedback is about results: only a closed trade can be pending or trained on.
        sa.CheckConstraint(
            "trade_closed OR feedback_status IN ('awaiting_close', 'excluded')",
            name="mt5_signal_executions_feedback_closed_check",
        ),
        sa.CheckConstraint("NOT trade_closed OR closed_at IS NOT NULL", name="mt5_signal_executions_closed_at_check"),
        sa.CheckConstraint(
            "feedback_processed_at IS NULL OR feedback_status IN ('included_in_training', 'excluded')",
            name="mt5_signal_executions_feedback_processed_check",
        ),
    )

    for table, _, _ in TIME_SERIES:
        execute_sql(f"ALTER TABLE {table} OWNER TO mt5_owner")
    for table, chunk, partitions in TIME_SERIES:
        op.create_hypertable(table, "time", chunk_time_interval=chunk, tenant_partitions=partitions)

    for table, _, _ in TIME_SERIES:
        op.create_index(f"{table}_tenant_id_time_idx", table, ["tenant_id", sa.text("time DESC")])
        op.create_index(
            f"{table}_tenant_id_account_id_time_idx", table, ["tenant_id", "account_id", sa.text("time DESC")]
        )
    op.create_index(
        "mt5_trade_orders_ticket_idx", "mt5_trade_orders", ["tenant_id", "account_id", "ticket", sa.text("time DESC")]
    )
    op.create_index(
        "mt5_trade_orders_position_id_idx", "mt5_trade_orders", ["tenant_id", "account_id", "position_id"],
        postgresql_where=sa.text("position_id IS NOT NULL"),
    )
    op.create_index(
        "mt5_trade_orders_signal_id_idx", "mt5_trade_orders", ["tenant_id", "signal_id"],
        postgresql_where=sa.text("signal_id IS NOT NULL"),
    )
    op.create_index(
        "mt5_trade_orders_closed_idx", "mt5_trade_orders", ["tenant_id", sa.text("time DESC")],
        postgresql_where=sa.text("status = 'closed'"),
    )
    op.create_index(
        "mt5_trading_signals_open_idx", "mt5_trading_signals", ["tenant_id", "account_id", "time"],
        postgresql_where=sa.text("status IN ('pending', 'sent')"),
    )
    op.create_index(
        "mt5_signal_executions_signal_id_idx", "mt5_signal_executions", ["tenant_id", "signal_id"]
    )
    op.create_index(
        "mt5_signal_executions_ticket_idx", "mt5_signal_executions", ["tenant_id", "account_id", "ticket"],
        postgresql_where=sa.text("ticket > 0"),
    )
    op.create_index(
        "mt5_signal_executions_feedback_idx", "mt5_signal_executions", ["tenant_id", sa.text("time DESC")],
        postgresql_where=sa.text("feedback_status = 'pending'"),
    )

    for signature, body in TRIGGER_FUNCTIONS:
        execute_sql(body)
        execute_sql(f"ALTER FUNCTION {signature} OWNER TO mt5_owner")
        execute_sql(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC")
        if migration_edition().has_hypertables:
            # TimescaleDB 2.23 plans an UPDATE of a hypertable whose WHERE repeats the tenant
            # that row-level security already filters on with a ChunkAppend that fails with
            # "variable not found in subplan target list" (timescaledb#6790, fixed by #9347).
            execute_sql(f"ALTER FUNCTION {signature} SET timescaledb.enable_chunk_append = off")
    execute_sql(
        "CREATE TRIGGER mt5_signal_executions_fill BEFORE INSERT ON mt5_signal_executions "
        "FOR EACH ROW EXECUTE FUNCTION mt5_signal_execution_fill()"
    )
    execute_sql(
        "CREATE TRIGGER mt5_signal_executions_link AFTER INSERT ON mt5_signal_executions "
        "FOR EACH ROW EXECUTE FUNCTION mt5_signal_execution_link()"
    )
    execute_sql(
        "CREATE TRIGGER mt5_trade_orders_closed AFTER INSERT ON mt5_trade_orders "
        "FOR EACH ROW WHEN (NEW.status = 'closed') EXECUTE FUNCTION mt5_trade_order_closed()"
    )
    execute_sql(
        "CREATE TRIGGER mt5_trade_orders_closed_update AFTER UPDATE OF status ON mt5_trade_orders "
        "FOR EACH ROW WHEN (NEW.status = 'closed' AND OLD.status IS DISTINCT FROM 'closed') "
        "EXECUTE FUNCTION mt5_trade_order_closed()"
    )

    op.enable_tenant_rls("mt5_trade_orders", cross_tenant={"mt5_ingest": ["INSERT"], "mt5_compliance": ["SELECT"]})
    # The signal publisher reads pending signals of every tenant and marks them sent.
    op.enable_tenant_rls(
        "mt5_trading_signals",
        cross_tenant={"mt5_ingest": ["SELECT", "UPDATE"], "mt5_compliance": ["SELECT"]},
    )
    op.enable_tenant_rls(
        "mt5_signal_executions", cross_tenant={"mt5_ingest": ["INSERT"], "mt5_compliance": ["SELECT"]}
    )

    execute_sql("GRANT SELECT, INSERT, UPDATE ON mt5_trade_orders, mt5_trading_signals, mt5_signal_executions TO mt5_app")
    execute_sql(
        "GRANT SELECT ON mt5_trade_orders, mt5_trading_signals, mt5_signal_executions "
        "TO mt5_readonly, mt5_compliance, mt5_maintenance"
    )
    execute_sql("GRANT INSERT ON mt5_trade_orders, mt5_signal_executions TO mt5_ingest")
    execute_sql("GRANT SELECT, UPDATE (status, sent_at) ON mt5_trading_signals TO mt5_ingest")


def downgrade() -> None:
    for table, _, _ in reversed(TIME_SERIES):
        op.drop_hypertable(table)
    for signature, _ in reversed(TRIGGER_FUNCTIONS):
        execute_sql(f"DROP FUNCTION {signature}")
