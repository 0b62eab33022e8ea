"""Prometheus metrics of the Data Bridge (``/metrics``, see ``docs/ingest.md``).

Counters move only after a batch is committed, so ``rows_written`` counts rows in the
database and ``dead_letters`` rows in ``mt5_ingest_dead_letters``. Each :class:`BridgeMetrics`
has its own registry: several bridges in one process (tests) do not mix their numbers.
:func:`poll_consumer` keeps the consumer's gauges up to date.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from suho_mt5.ingest._stop import Stop
from suho_mt5.ingest.batch import WriteResult
from suho_mt5.ingest.streams import ConsumerSpec

__all__ = ["BridgeMetrics", "count_result", "poll_consumer"]

log = logging.getLogger("suho_mt5.ingest")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class BridgeMetrics:
    """The bridge's counters, gauges and the batch-latency histogram."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.messages = Counter("suho_ingest_messages_received", "NATS messages fetched",
                                registry=r)
        self.packets = Counter("suho_ingest_packets_received",
                               "144-byte packets in the fetched messages (bytes / 144)",
                               registry=r)
        self.written = Counter("suho_ingest_rows_written", "rows inserted, per table",
                               ["table"], registry=r)
        self.duplicates = Counter("suho_ingest_duplicate_rows",
                                  "rows already in the database (redeliveries), per table",
                                  ["table"], registry=r)
        self.dead_letters = Counter("suho_ingest_dead_letters",
                                    "dead letters written, per reason", ["reason"], registry=r)
        self.dead_packets = Counter("suho_ingest_dead_letter_packets",
                                    "packets in the dead letters written, per reason",
                                    ["reason"], registry=r)
        self.batches = Counter("suho_ingest_batches_committed", "batches committed and acked",
                               registry=r)
        self.batch_seconds = Histogram("suho_ingest_batch_seconds",
                                       "fetch-to-ack time of a batch", buckets=_LATENCY_BUCKETS,
                                       registry=r)
        self.commit_seconds = Histogram("suho_ingest_commit_seconds",
                                        "write-and-commit time of a batch",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.db_retries = Counter("suho_ingest_database_retries",
                                  "batch attempts that failed and were retried (no ack)",
                                  registry=r)
        self.ack_failures = Counter("suho_ingest_ack_failures",
                                    "acks not confirmed (the message will be redelivered)",
                                    registry=r)
        self.pending = Gauge("suho_ingest_consumer_pending",
                             "messages in the stream not yet delivered to the consumer",
                             registry=r)
        self.ack_pending = Gauge("suho_ingest_consumer_ack_pending",
                                 "messages delivered and not yet acknowledged", registry=r)
        self.redelivered = Gauge("suho_ingest_consumer_redelivered",
                                 "messages redelivered at least once and still unacknowledged",
                                 registry=r)
        self.reference_quotes = Counter("suho_ingest_reference_quotes",
                                        "reference quotes received on mt5.market.>", registry=r)
        self.risk_events = Counter("suho_ingest_risk_events", "risk events written, per type",
                                   ["event_type"], registry=r)
        self.marked_offline = Counter("suho_ingest_accounts_marked_offline",
                                      "offline heartbeats written for silent EAs", registry=r)

    def serve(self, port: int, addr: str = "0.0.0.0") -> Any:
        """Serve ``/metrics`` on ``addr:port`` from a thread; returns the server
        (``.shutdown()`` then ``.server_close()`` stop it)."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server


def count_result(metrics: BridgeMetrics, result: WriteResult) -> None:
    """Count what a committed batch wrote, and log each of its dead letters."""
    for table, n in result.written.items():
        metrics.written.labels(table).inc(n)
    for table, n in result.duplicates.items():
        metrics.duplicates.labels(table).inc(n)
    for d in result.dead:
        metrics.dead_letters.labels(d.reason).inc()
        metrics.dead_packets.labels(d.reason).inc(d.packet_count)
        log.warning("dead letter: %s %s seq %d offset %d: %s", d.reason, d.subject,
                    d.stream_seq, d.byte_offset, d.detail)


async def poll_consumer(js: Any, spec: ConsumerSpec, metrics: BridgeMetrics, every: float,
                        stop: Stop) -> None:
    """The consumer's pending, ack-pending and redelivered counts, every ``every`` s."""
    while not stop.is_set():
        try:
            info = await js.consumer_info(spec.stream, spec.durable)
            metrics.pending.set(info.num_pending or 0)
            metrics.ack_pending.set(info.num_ack_pending or 0)
            metrics.redelivered.set(info.num_redelivered or 0)
        except Exception as exc:
            log.debug("consumer info unavailable: %s", exc)
        await stop.sleep(every)
