"""EA simulator: many Expert Advisors over real sockets, behaving like careful EAs.

Each simulated EA authenticates with HELLO, streams quotes, account snapshots, heartbeats
and order events at the seed's per-account rates (or ``speed`` times faster), executes the
signals it receives (once per ``signal_id``) and reports each with an EXECUTION_REPORT, ACKs
everything the backend sends, and on any disconnect reconnects, resumes from what WELCOME
says and resends its outbox (data packets not yet covered by a cumulative ACK).

``suho-mt5 simulate`` runs it from the command line; tests and benchmarks call
:func:`simulate` or drive :class:`SimulatedEA` directly.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from suho_mt5.errors import ConfigError

from ._ea import EAStats, SimAccount, SimulatedEA
from ._traffic import DEFAULT_RATES, Rates

__all__ = [
    "EAStats",
    "Rates",
    "SimAccount",
    "SimulatedEA",
    "SimulationReport",
    "load_accounts",
    "simulate",
]


@dataclass
class SimulationReport:
    accounts: int
    sessions: int
    refused: int
    data_packets: int
    unacknowledged: int
    resent: int
    signals: int
    duplicate_signals: int
    executions: int
    close_codes: dict[int, int]
    errors: dict[str, int]
    latency_ms: list[float]
    """Signal timestamp -> receipt by the EA, per signal (same clock when run on one host)."""

    def summary(self) -> str:
        lat = sorted(self.latency_ms)

        def pct(p: float) -> str:
            return f"{lat[min(len(lat) - 1, int(p * len(lat)))]:.2f}" if lat else "-"

        return (
            f"accounts {self.accounts}, sessions {self.sessions}, refused {self.refused}\n"
            f"data packets sent {self.data_packets}, not acknowledged {self.unacknowledged}, "
            f"resent after reconnect {self.resent}\n"
            f"signals received {self.signals} (duplicates {self.duplicate_signals}), "
            f"executed {self.executions}\n"
            f"signal latency ms p50 {pct(0.5)} p99 {pct(0.99)} p99.9 {pct(0.999)}\n"
            f"close codes {dict(self.close_codes)}, errors {dict(self.errors)}"
        )


def report_of(eas: Sequence[SimulatedEA]) -> SimulationReport:
    close_codes: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    latency = []
    for ea in eas:
        close_codes.update(ea.stats.close_codes)
        errors.update(ea.stats.errors)
        latency += [(recv - ts * 1000) / 1e6 for _, _, ts, recv in ea.stats.signals]
    return SimulationReport(
        accounts=len(eas),
        sessions=sum(ea.stats.sessions for ea in eas),
        refused=sum(ea.stats.refused for ea in eas),
        data_packets=sum(len(ea.stats.data_sent) for ea in eas),
        unacknowledged=sum(len(ea.outbox) for ea in eas),
        resent=sum(ea.stats.resent for ea in eas),
        signals=sum(len(ea.stats.signals) for ea in eas),
        duplicate_signals=sum(ea.stats.duplicate_signals for ea in eas),
        executions=sum(ea.stats.executions for ea in eas),
        close_codes=dict(close_codes),
        errors=dict(errors),
        latency_ms=latency,
    )


async def simulate(url: str, accounts: Sequence[SimAccount], duration_s: float,
                   rates: Rates = DEFAULT_RATES, *, drain_s: float = 10.0,
                   record: Callable[[bytes], object] | None = None) -> SimulationReport:
    """Run one :class:`SimulatedEA` per account against the gateway at ``url``; ``record``
    gets every data packet the EAs send, once, in the order they send them."""
    eas = [SimulatedEA(a, url, rates, record=record) for a in accounts]
    await asyncio.gather(*(ea.run(duration_s, drain_s=drain_s) for ea in eas))
    return report_of(eas)


def load_accounts(path: str | Path) -> list[SimAccount]:
    """Accounts from a JSON file: ``[{"account_id": "...", "api_key": "..."}, ...]``."""
    try:
        entries = json.loads(Path(path).read_text("utf-8"))
        return [SimAccount(uuid.UUID(e["account_id"]), str(e["api_key"])) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read simulator accounts from {path}: {exc}") from exc
