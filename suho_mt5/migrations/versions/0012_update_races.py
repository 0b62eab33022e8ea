"""update races: the feedback-loop triggers retry an UPDATE that a concurrent one swallowed

On TimescaleDB 2.28 (PostgreSQL 15), an ``UPDATE`` of a hypertable row that has to wait for
a concurrent transaction updating the same row updates **nothing** once that transaction
commits, where PostgreSQL re-checks the row's new version (EvalPlanQual) and updates it
(docs/schema.md, trap 14). Two triggers of revision 0003 update another hypertable's row
that something else may be updating at that moment:

* ``mt5_signal_execution_link`` marks the signal ``executed`` while the signal publisher
  marks it ``sent`` (an EA executes within milliseconds of the publish);
* ``mt5_trade_order_closed`` fills the execution's result while the execution itself may
  be in an update (the ML feedback export marks it).

Each now repeats its ``UPDATE`` when it updated nothing: the repetition is a new statement
with a new snapshot, which sees the row the other transaction committed while the first one
waited. When nothing raced, the repetition finds nothing either and costs one index probe.

Downgrading restores the single UPDATE of revision 0003.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 15:00:00
"""

from collections.abc import Sequence

import suho_mt5.migrations.operations  # noqa: F401  (registers the custom operations)
from suho_mt5.migrations.operations import execute_sql, migration_edition

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUCCESS_RETCODES = "10008, 10009, 10010"

_MARK_EXECUTED = f"""UPDATE mt5_trading_signals s
    SET status = CASE WHEN NEW.result_code IS NULL
                        OR NEW.result_code IN ({SUCCESS_RETCODES})
                      THEN 'executed' ELSE 'rejected' END,
        executed_at = NEW.time
    WHERE s.tenant_id = NEW.tenant_id AND s.signal_id = NEW.signal_id
      AND s.status IN ('pending', 'sent');"""

_FILL_RESULT = """UPDATE mt5_signal_executions e
    SET trade_closed = true,
        close_price = NEW.price,
        closed_at = NEW.time,
        profit = NEW.profit,
        profit_pips = NEW.profit_pips,
        feedback_status = 'pending'
    WHERE e.tenant_id = NEW.tenant_id AND e.account_id = NEW.account_id
      AND NOT e.trade_closed
      AND (e.signal_id = NEW.signal_id
           OR (e.ticket > 0 AND e.ticket IN (NEW.position_id, NEW.ticket)));"""

_RETRY = """
    IF NOT FOUND THEN
        -- It may have waited for a concurrent update of the row and then skipped it
        -- (TimescaleDB; docs/schema.md, trap 14): a new statement sees the committed row.
        {update}
    END IF;"""


def _link(retry: bool) -> str:
    return f"""CREATE OR REPLACE FUNCTION mt5_signal_execution_link() RETURNS trigger
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
    {_MARK_EXECUTED}{_RETRY.format(update=_MARK_EXECUTED) if retry else ""}
    RETURN NULL;
END
$fn$"""


def _closed(retry: bool) -> str:
    return f"""CREATE OR REPLACE FUNCTION mt5_trade_order_closed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp
SET app.current_tenant_id = ''
AS $fn$
BEGIN
    PERFORM set_config('app.current_tenant_id', NEW.tenant_id, true);
    {_FILL_RESULT}{_RETRY.format(update=_FILL_RESULT) if retry else ""}
    RETURN NULL;
END
$fn$"""


def _replace(retry: bool) -> None:
    for signature, body in (("mt5_signal_execution_link()", _link(retry)),
                            ("mt5_trade_order_closed()", _closed(retry))):
        # CREATE OR REPLACE keeps owner and grants, but replaces the function's settings.
        execute_sql(body)
        if migration_edition().has_hypertables:
            # as revision 0003 (timescaledb#6790)
            execute_sql(f"ALTER FUNCTION {signature} SET timescaledb.enable_chunk_append = off")


def upgrade() -> None:
    _replace(retry=True)


def downgrade() -> None:
    _replace(retry=False)
