"""The ML feedback export: closed trades with their signal's features and their outcome,
for retraining, each exported exactly once.

The seed's loop (docs: "ML Model Integration") selects executions with
``trade_closed AND feedback_status = 'pending'`` and then marks them
``included_in_training``. :func:`export_feedback` does both in **one transaction**: it
locks the pending rows (``FOR UPDATE``), writes them to the file, makes the file durable,
marks exactly the rows written and commits. A second export finds nothing; an export that
fails anywhere before the commit rolls back, removes its partial file and leaves every row
``pending``.

CSV always; Parquet when ``pyarrow`` is installed (``pip install pyarrow``).
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from suho_mt5.db.tenant import set_tenant, validate_tenant_id
from suho_mt5.errors import ExportError, TenantError

__all__ = ["FEEDBACK_COLUMNS", "FORMATS", "FeedbackExport", "export_feedback"]

#: ``csv`` always works; ``parquet`` needs pyarrow.
FORMATS: Final = ("csv", "parquet")

#: The exported columns: the signal's features, then the execution and its outcome.
FEEDBACK_COLUMNS: Final = (
    "tenant_id", "account_id", "signal_id", "signal_time", "symbol", "action",
    "entry_price", "stop_loss", "take_profit", "signal_volume", "confidence_score",
    "model_version", "strategy_name", "polygon_bid", "polygon_ask", "broker_adjustment",
    "executed_at", "ticket", "actual_entry_price", "slippage", "executed_volume",
    "result_code", "spread_at_execution", "market_volatility", "execution_latency_ms",
    "close_price", "closed_at", "profit", "profit_pips",
)

# LEFT JOIN: signals are kept 90 days, executions 2 years; an outcome whose signal is gone
# is still exported (with empty features) rather than left pending for ever.
_PENDING = """
SELECT e.tenant_id, e.account_id, e.signal_id, s.time AS signal_time, s.symbol, s.action,
       s.entry_price, s.stop_loss, s.take_profit, s.volume AS signal_volume,
       s.confidence_score, s.model_version, s.strategy_name, s.polygon_bid, s.polygon_ask,
       s.broker_adjustment, e.time AS executed_at, e.ticket, e.actual_entry_price,
       e.slippage, e.executed_volume, e.result_code, e.spread_at_execution,
       e.market_volatility, e.execution_latency_ms, e.close_price, e.closed_at, e.profit,
       e.profit_pips
FROM mt5_signal_executions e
LEFT JOIN mt5_trading_signals s ON s.tenant_id = e.tenant_id AND s.signal_id = e.signal_id
WHERE e.trade_closed AND e.feedback_status = 'pending'
ORDER BY e.time, e.signal_id
FOR UPDATE OF e
"""

# The seed's update, on exactly the rows written (a signal can have several executions;
# one closed after the SELECT is not in the file and stays pending). The tenant is not
# repeated: row-level security already applies it (docs/schema.md on timescaledb#6790).
_MARK = """
UPDATE mt5_signal_executions e
SET feedback_status = 'included_in_training', feedback_processed_at = now()
FROM unnest(CAST(:signals AS uuid[]), CAST(:times AS timestamptz[])) AS x(signal_id, time)
WHERE e.signal_id = x.signal_id AND e.time = x.time AND e.feedback_status = 'pending'
"""


@dataclass(frozen=True)
class FeedbackExport:
    """One export: where it went, in which format, and how many rows it marked."""

    tenant_id: str
    destination: str
    format: str
    rows: int

    def as_json(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "destination": self.destination,
                "format": self.format, "rows": self.rows}


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@contextmanager
def _output(destination: str) -> Iterator[IO[str]]:
    if destination == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    with open(destination, "w", encoding="utf-8", newline="") as handle:
        yield handle
        handle.flush()
        if Path(destination).is_file():
            os.fsync(handle.fileno())  # durable before the rows are marked


def _write_csv(rows: Any, destination: str) -> list[tuple[Any, Any]]:
    keys: list[tuple[Any, Any]] = []
    with _output(destination) as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(FEEDBACK_COLUMNS)
        for row in rows:
            values = row._mapping
            writer.writerow([_cell(values[c]) for c in FEEDBACK_COLUMNS])
            keys.append((values["signal_id"], values["executed_at"]))
    return keys


def _write_parquet(rows: Any, destination: str) -> list[tuple[Any, Any]]:
    try:
        import pyarrow as pa  # type: ignore[import-untyped, import-not-found, unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError as exc:
        raise ExportError("Parquet needs pyarrow: pip install pyarrow "
                          "(or export --format csv)") from exc
    if destination == "-":
        raise ExportError("Parquet cannot be written to standard output: give a file")
    records = [dict(row._mapping) for row in rows]
    columns = {c: [r[c] for r in records] for c in FEEDBACK_COLUMNS}
    for name in ("account_id", "signal_id"):
        columns[name] = [str(v) for v in columns[name]]
    table = pa.table(columns)
    pq.write_table(table, destination)
    with open(destination, "rb") as handle:
        os.fsync(handle.fileno())
    return [(r["signal_id"], r["executed_at"]) for r in records]


def _remove_partial(destination: str, existed: bool) -> None:
    path = Path(destination)
    if destination != "-" and not existed and path.is_file():
        path.unlink(missing_ok=True)


def export_feedback(bind: Connection | Engine, tenant_id: str, destination: str | Path, *,
                    fmt: str = "csv") -> FeedbackExport:
    """Export ``tenant_id``'s closed, pending trades to ``destination`` (``"-"``: standard
    output, CSV only) and mark them ``included_in_training``, all in one transaction.

    Needs SELECT and UPDATE on the tenant's executions (``mt5_app``). With a Connection,
    it must not be in a transaction: the export commits (or rolls back) its own.
    """
    try:
        tenant_id = validate_tenant_id(tenant_id)
    except TenantError as exc:
        raise ExportError(str(exc)) from exc
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    target = str(destination)
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return export_feedback(conn, tenant_id, target, fmt=fmt)
    if bind.in_transaction():
        raise ExportError("export_feedback runs its own transaction: pass a connection "
                          "outside one")
    existed = target != "-" and Path(target).exists()
    try:
        with bind.begin():
            set_tenant(bind, tenant_id)
            rows = bind.execute(sa.text(_PENDING))
            write = _write_csv if fmt == "csv" else _write_parquet
            keys = write(rows, target)
            if keys:
                bind.execute(sa.text(_MARK), {"signals": [k[0] for k in keys],
                                              "times": [k[1] for k in keys]})
    except OSError as exc:
        _remove_partial(target, existed)
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}; "
                          "no row was marked") from exc
    except sa.exc.DBAPIError as exc:
        _remove_partial(target, existed)
        first = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        raise ExportError(f"feedback export of {tenant_id} failed: {first}; "
                          "no row was marked") from exc
    except BaseException:
        _remove_partial(target, existed)
        raise
    return FeedbackExport(tenant_id, target, fmt, len(keys))
