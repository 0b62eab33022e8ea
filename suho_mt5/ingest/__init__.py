"""The ingest layer: the bus contract, and the Data Bridge (``suho-mt5 ingest run``, class
:class:`~suho_mt5.ingest.bridge.Bridge`) that moves what EAs send from NATS JetStream into
TimescaleDB, with what it uses.

See ``docs/ingest.md``. Needs the ``ingest`` extra (nats-py, prometheus_client, PyYAML).

* :mod:`~suho_mt5.ingest.streams`: the bus contract, ``suho-mt5 streams setup``;
* :mod:`~suho_mt5.ingest.rows`: packets -> rows, and the checks a row must pass;
* :mod:`~suho_mt5.ingest.prepare`: a batch of messages -> rows and dead letters, no I/O;
* :mod:`~suho_mt5.ingest.writer`: batched idempotent writes (COPY + ON CONFLICT DO NOTHING);
* :mod:`~suho_mt5.ingest.bridge`: the process: workers (fetch, prepare, write, ack after
  commit) and side loops (:mod:`~suho_mt5.ingest.feed`, :mod:`~suho_mt5.ingest.status`,
  :mod:`~suho_mt5.ingest.advisories`, :mod:`~suho_mt5.ingest.metrics`);
* :mod:`~suho_mt5.ingest.accounts`, :mod:`~suho_mt5.ingest.reconcile`,
  :mod:`~suho_mt5.ingest.risk`.

Signals travel the other way: :func:`suho_mt5.commands.signal.publish_signal`.
"""

from __future__ import annotations

from suho_mt5.ingest.bridge import Bridge, BridgeSettings
from suho_mt5.ingest.metrics import BridgeMetrics
from suho_mt5.ingest.prepare import BusMessage, Prepared, prepare
from suho_mt5.ingest.reconcile import (
    Reconciler,
    ReferenceBook,
    ReferenceQuote,
    SignalPrices,
    SymbolMapper,
    adjust_signal,
    pip_size,
    price_deviation,
)
from suho_mt5.ingest.risk import RiskLimits, check_snapshots
from suho_mt5.ingest.rows import packet_row, row_problem
from suho_mt5.ingest.status import mark_offline
from suho_mt5.ingest.streams import (
    DEFAULT_CONTRACT,
    BusContract,
    ConsumerSpec,
    StreamSpec,
    load_contract,
    setup_streams,
)
from suho_mt5.ingest.writer import Batch, Writer, WriteResult

__all__ = [
    "DEFAULT_CONTRACT",
    "Batch",
    "Bridge",
    "BridgeMetrics",
    "BridgeSettings",
    "BusContract",
    "BusMessage",
    "ConsumerSpec",
    "Prepared",
    "Reconciler",
    "ReferenceBook",
    "ReferenceQuote",
    "RiskLimits",
    "SignalPrices",
    "StreamSpec",
    "SymbolMapper",
    "WriteResult",
    "Writer",
    "adjust_signal",
    "check_snapshots",
    "load_contract",
    "mark_offline",
    "packet_row",
    "pip_size",
    "prepare",
    "price_deviation",
    "row_problem",
    "setup_streams",
]
