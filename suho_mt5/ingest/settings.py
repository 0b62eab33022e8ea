"""How a Data Bridge runs: what ``suho-mt5 ingest run`` and its options set."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from suho_mt5.ingest.hooks import CommitListener
from suho_mt5.ingest.reconcile import Reconciler
from suho_mt5.ingest.risk import RiskLimits
from suho_mt5.ingest.streams import DEFAULT_CONTRACT, BusContract

__all__ = ["BridgeSettings"]


@dataclass
class BridgeSettings:
    """How a bridge runs; ``url`` is a login in ``mt5_ingest``."""

    url: str
    nats_url: str
    contract: BusContract = DEFAULT_CONTRACT
    workers: int = 1
    batch_size: int = 500
    fetch_timeout: float = 1.0
    retry_initial: float = 0.2
    retry_max: float = 5.0
    metrics_port: int | None = None
    offline_after: timedelta = timedelta(seconds=90)
    offline_check_every: float = 15.0
    risk: RiskLimits = field(default_factory=RiskLimits)
    reconciler: Reconciler = field(default_factory=Reconciler)
    consumer_poll_every: float = 2.0
    #: Told every committed batch and offline mark (the latest-state cache's writer).
    cache: CommitListener | None = None
