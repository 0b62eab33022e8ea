"""What to write: rows (of a committed batch, or of the database) turned into cache writes.

Two shapes of write:

* :class:`Latest`: one value of one key (or of one part of a key), kept only if newer than
  what the key holds (:data:`~suho_mt5.cache._scripts.PUT_LATEST`). Quotes, snapshots, EA
  heartbeats, gateway sessions and market references are of this shape. Before anything is
  sent, the writes of a batch are reduced to the newest per key, so a batch of 50,000 quotes
  of 40 keys sends 40 values.
* :class:`SignalOp`: one event of a signal (published, executed, its trade closed), applied
  by a signal script; the events commute (the status only moves forward, a close is kept
  until the execution that opened the trade arrives), so their order does not matter.

Rows are the ingest layer's tuples in :data:`suho_mt5.ingest.rows.TABLE_COLUMNS` order.
"""

from __future__ import annotations

import functools
import operator
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from suho_mt5.cache._keys import (
    CacheTTLs,
    closing_key,
    quote_key,
    ref_key,
    signal_index_key,
    signals_key,
    snapshot_key,
    status_key,
)
from suho_mt5.cache._scripts import SIGNAL_BASE, SIGNAL_CLOSE, SIGNAL_EXEC, Script
from suho_mt5.cache._values import (
    EAStatus,
    MarketReference,
    Quote,
    SignalState,
    Snapshot,
    to_us,
)

__all__ = [
    "RANKS",
    "SUCCESS_RETCODES",
    "Latest",
    "SignalOp",
    "execution_status",
    "from_rows",
    "gateway_write",
    "latest_of",
    "signal_base",
    "signal_close",
    "signal_exec",
]

#: MQL5 return codes of a done deal; any other code is a rejection (revision 0003's trigger
#: ``mt5_signal_execution_link`` decides the same way).
SUCCESS_RETCODES: Final = (10008, 10009, 10010)
#: How far along a status is: the cache never moves a signal back.
RANKS: Final = {"pending": 0, "sent": 1, "executed": 2, "rejected": 2, "expired": 2,
                "cancelled": 2}

Canonical = Callable[[str, uuid.UUID], str]


@dataclass(slots=True)
class Latest:
    """One newer-wins value: ``key``'s part ``prefix`` ('' the value, 'g' an EA's gateway)."""

    tenant: str
    key: str
    prefix: str
    time_us: int
    sequence: int
    expire_ms: int
    value: str

    @property
    def order(self) -> tuple[int, int]:
        return self.time_us, self.sequence

    def args(self) -> tuple[str, int, int, int, str]:
        return self.prefix, self.time_us, self.sequence, self.expire_ms, self.value


@dataclass(slots=True)
class SignalOp:
    tenant: str
    script: Script
    keys: tuple[str, ...]
    args: tuple[object, ...]
    #: ARGV positions holding "now" (ms), filled in when the op is sent.
    now_at: tuple[int, ...] = field(default=())


def _expire_ms(time_us: int, ttl_ms: int) -> int:
    return time_us // 1000 + ttl_ms


def latest_of(tenant: str, key: str, time: datetime, sequence: int | None, ttl_ms: int,
              value: str, prefix: str = "") -> Latest:
    t = to_us(time)
    return Latest(tenant, key, prefix, t, -1 if sequence is None else sequence,
                  _expire_ms(t, ttl_ms), value)


#: The columns each conversion reads, by name.
_READS: Final = {
    "mt5_broker_quotes": ("time", "tenant_id", "account_id", "symbol", "bid", "ask", "last",
                          "volume", "spread_points", "polygon_bid", "polygon_ask",
                          "price_deviation", "sequence"),
    "mt5_account_balance_history": ("time", "tenant_id", "account_id", "balance", "equity",
                                    "margin", "free_margin", "margin_level", "leverage",
                                    "currency", "sequence"),
    "mt5_ea_heartbeat": ("time", "tenant_id", "account_id", "status", "ea_version",
                         "terminal_build", "terminal_connected", "trade_allowed", "ping_ms",
                         "sequence"),
    "mt5_trade_orders": ("time", "tenant_id", "account_id", "ticket", "position_id",
                         "status"),
    "mt5_signal_executions": ("time", "tenant_id", "account_id", "signal_id", "ticket",
                              "result_code"),
}


@functools.cache
def _at(table: str) -> tuple[int, ...]:
    """Where :data:`_READS`' columns sit in the ingest layer's rows of ``table`` (read on
    first use: importing the ingest layer loads the database stack, which a reader of the
    cache does not need)."""
    from suho_mt5.ingest.rows import TABLE_COLUMNS

    columns = TABLE_COLUMNS[table]
    return tuple(columns.index(n) for n in _READS[table])


def _newer(row: Sequence[Any], cur: Sequence[Any]) -> bool:
    """``row`` after ``cur``: a later time, or the same time and a greater sequence (a row
    without one sorts first)."""
    t, ct = row[0], cur[0]
    if t != ct:
        return bool(t > ct)
    s, cs = row[-1], cur[-1]
    return (-1 if s is None else s) > (-1 if cs is None else cs)


def _newest(rows: Iterable[Sequence[Any]], key: Callable[[Sequence[Any]], Any]
            ) -> dict[Any, Sequence[Any]]:
    """The newest row per key, by (time, sequence)."""
    best: dict[Any, Sequence[Any]] = {}
    get = best.get
    for row in rows:
        k = key(row)
        cur = get(k)
        if cur is None or _newer(row, cur):
            best[k] = row
    return best


def _quotes(rows: Sequence[Sequence[Any]], ttls: CacheTTLs, canonical: Canonical | None
            ) -> list[Latest]:
    t_, te, ac, sy, bi, ak, la, vo, sp, pb, pa, dv, sq = _at("mt5_broker_quotes")
    key = operator.itemgetter(te, ac, sy)
    # One pass: the newest quote per key, and the newest reconciled one (its reference
    # prices known) per key, for the market references.
    newest: dict[Any, Sequence[Any]] = {}
    reconciled: dict[Any, Sequence[Any]] = {}
    get, get_reconciled = newest.get, reconciled.get
    for row in rows:
        k = key(row)
        cur = get(k)
        if cur is None or _newer(row, cur):
            newest[k] = row
        if row[pb] is not None:
            cur = get_reconciled(k)
            if cur is None or _newer(row, cur):
                reconciled[k] = row
    out: list[Latest] = []
    ttl = int(ttls.quote.total_seconds() * 1000)
    for row in newest.values():
        q = Quote(row[ac], row[sy], row[t_], row[sq], row[bi], row[ak], row[la], row[vo],
                  row[sp], row[pb], row[pa], row[dv])
        out.append(latest_of(row[te], quote_key(row[te], row[ac], row[sy]), row[t_], row[sq],
                             ttl, q.to_json()))
    if canonical is None or not reconciled:
        return out
    ttl = int(ttls.reference.total_seconds() * 1000)
    refs = _newest(reconciled.values(), lambda r: (r[te], canonical(r[sy], r[ac])))
    for (tenant, symbol), row in refs.items():
        ref = MarketReference(symbol, row[t_], row[pb], row[pa])
        out.append(latest_of(tenant, ref_key(tenant, symbol), row[t_], row[sq], ttl,
                             ref.to_json()))
    return out


def _snapshots(rows: Sequence[Sequence[Any]], ttls: CacheTTLs) -> list[Latest]:
    ttl = int(ttls.snapshot.total_seconds() * 1000)
    t_, te, ac, ba, eq, ma, fm, ml, le, cu, sq = _at("mt5_account_balance_history")
    out = []
    for row in _newest(rows, operator.itemgetter(te, ac)).values():
        s = Snapshot(row[ac], row[t_], row[sq], row[ba], row[eq], row[ma], row[fm], row[ml],
                     row[le], row[cu])
        out.append(latest_of(row[te], snapshot_key(row[te], row[ac]), row[t_], row[sq], ttl,
                             s.to_json()))
    return out


def _heartbeats(rows: Sequence[Sequence[Any]], ttls: CacheTTLs) -> list[Latest]:
    ttl = int(ttls.status.total_seconds() * 1000)
    t_, te, ac, st, ev, tb, tc, ta, pm, sq = _at("mt5_ea_heartbeat")
    out = []
    for row in _newest(rows, operator.itemgetter(te, ac)).values():
        s = EAStatus(row[ac], str(row[st]), row[t_], row[sq], row[ev], row[tb], row[tc],
                     row[ta], row[pm])
        out.append(latest_of(row[te], status_key(row[te], row[ac]), row[t_], row[sq], ttl,
                             s.to_json()))
    return out


def execution_status(result_code: int | None) -> str:
    """``executed`` or ``rejected``, by the MQL5 return code (none: executed)."""
    return "executed" if result_code is None or result_code in SUCCESS_RETCODES \
        else "rejected"


def _ms(ttl: Any) -> int:
    return int(ttl.total_seconds() * 1000)


def signal_base(tenant: str, signal: SignalState, ttls: CacheTTLs, limit: int) -> SignalOp:
    """A signal as published (``pending``, ``sent``) or as the database has it (rebuild)."""
    assert signal.time is not None
    t = to_us(signal.time)
    base = SignalState(signal.signal_id, signal.account_id, signal.time, signal.status,
                       signal.symbol, signal.action, signal.volume, signal.entry_price,
                       signal.stop_loss, signal.take_profit)
    return SignalOp(
        tenant, SIGNAL_BASE,
        (signals_key(tenant, signal.account_id), signal_index_key(tenant, signal.account_id)),
        (str(signal.signal_id), t, base.to_json(), RANKS.get(signal.status, 2), signal.status,
         _expire_ms(t, _ms(ttls.signals)), 0, limit,
         to_us(signal.executed_at) if signal.executed_at is not None else 0,
         signal.ticket or 0,
         to_us(signal.closed_at) if signal.closed and signal.closed_at is not None else 0),
        now_at=(6,))


def signal_exec(tenant: str, account: uuid.UUID, signal_id: uuid.UUID, time: datetime,
                ticket: int | None, status: str, ttls: CacheTTLs, limit: int) -> SignalOp:
    t = to_us(time)
    keys: tuple[str, ...] = (signals_key(tenant, account), signal_index_key(tenant, account))
    if ticket:
        keys += (closing_key(tenant, account, ticket),)
    return SignalOp(tenant, SIGNAL_EXEC, keys,
                    (str(signal_id), t, ticket or 0, status,
                     _expire_ms(t, _ms(ttls.signals)), 0, limit), now_at=(5,))


def signal_close(tenant: str, account: uuid.UUID, time: datetime, tickets: Iterable[int],
                 ttls: CacheTTLs) -> SignalOp | None:
    """The trade of ``tickets`` (an order's ticket and position id) closed at ``time``."""
    wanted = sorted({t for t in tickets if t})
    if not wanted:
        return None
    keys = (signals_key(tenant, account),
            *(closing_key(tenant, account, t) for t in wanted))
    return SignalOp(tenant, SIGNAL_CLOSE, keys,
                    (to_us(time), *wanted, _ms(ttls.closing)))


def gateway_write(tenant: str, account: uuid.UUID, gateway: str | None, time: datetime,
                  ttls: CacheTTLs) -> Latest:
    """An EA's session opened on ``gateway`` (None: closed) at ``time``."""
    import json

    value = json.dumps({"gateway": gateway, "since": time.isoformat(timespec="microseconds")},
                       separators=(",", ":"))
    return latest_of(tenant, status_key(tenant, account), time, None,
                     _ms(ttls.status), value, prefix="g")


def from_rows(table: str, rows: Sequence[Sequence[Any]], ttls: CacheTTLs,
              canonical: Canonical | None, signal_limit: int
              ) -> tuple[list[Latest], list[SignalOp]]:
    """The cache writes of ``rows`` of ``table`` (committed, in the database)."""
    if table == "mt5_broker_quotes":
        return _quotes(rows, ttls, canonical), []
    if table == "mt5_account_balance_history":
        return _snapshots(rows, ttls), []
    if table == "mt5_ea_heartbeat":
        return _heartbeats(rows, ttls), []
    ops: list[SignalOp] = []
    if table == "mt5_signal_executions":
        t_, te, ac, si, ti, rc = _at("mt5_signal_executions")
        for row in rows:
            ops.append(signal_exec(row[te], row[ac], row[si], row[t_], row[ti],
                                   execution_status(row[rc]), ttls, signal_limit))
    elif table == "mt5_trade_orders":
        t_, te, ac, ti, po, st = _at("mt5_trade_orders")
        for row in rows:
            if row[st] == "closed":
                op = signal_close(row[te], row[ac], row[t_], (row[ti], row[po] or 0), ttls)
                if op is not None:
                    ops.append(op)
    return [], ops
