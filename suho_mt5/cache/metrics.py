"""Prometheus metrics of the cache: the writer's (in the bridge's, the gateway's ``/metrics``)
and the readers' (in the application's registry). See ``docs/cache.md``."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["CacheMetrics"]

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0, 300.0)


class CacheMetrics:
    """Counters of one process's cache writes and reads, registered in ``registry`` (the
    bridge passes its own, so one ``/metrics`` shows both)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.values_written = Counter(
            "suho_cache_values_written", "values the cache took (newer than what it held)",
            registry=r)
        self.values_older = Counter(
            "suho_cache_values_older",
            "values the cache refused because it held a newer one (redeliveries, races)",
            registry=r)
        self.values_expired = Counter(
            "suho_cache_values_expired",
            "values not written because they were older than their TTL when sent", registry=r)
        self.values_dropped = Counter(
            "suho_cache_values_dropped",
            "values dropped because the catch-up buffer was full (run `cache rebuild`)",
            registry=r)
        self.flushes = Counter("suho_cache_flushes", "pipelined round trips that succeeded",
                               registry=r)
        self.write_errors = Counter(
            "suho_cache_write_errors",
            "round trips that failed (timeout, connection, refused); the values are kept and "
            "written when the cache answers again", ["reason"], registry=r)
        self.flush_seconds = Histogram("suho_cache_flush_seconds",
                                       "time of one pipelined round trip", buckets=_SECONDS,
                                       registry=r)
        self.write_lag = Histogram(
            "suho_cache_write_lag_seconds",
            "commit (or event) to cache: age of the oldest value of a round trip",
            buckets=_SECONDS, registry=r)
        self.pending_values = Gauge(
            "suho_cache_pending_values", "values waiting for the cache (catch-up buffer)",
            registry=r)
        self.pending_age = Gauge(
            "suho_cache_pending_age_seconds",
            "age of the oldest value waiting for the cache (0: none waits)", registry=r)
        self.found_empty = Counter(
            "suho_cache_found_empty",
            "times a writer found the cache without its epoch key: new, or restarted without "
            "its data (run `suho-mt5 cache rebuild`)", registry=r)
        self.reads = Counter(
            "suho_cache_reads", "read API calls by kind and result (hit, miss, error)",
            ["kind", "result"], registry=r)
        self.fallbacks = Counter(
            "suho_cache_database_fallbacks",
            "read API calls answered by the database (after a miss or an error), by kind and "
            "whether the database had a value", ["kind", "found"], registry=r)
        self.read_seconds = Histogram("suho_cache_read_seconds",
                                      "read API latency by source (cache, database)",
                                      ["source"], buckets=_SECONDS, registry=r)

    def track_pending(self, values: Any, age: Any) -> None:
        """Let the two pending gauges read the writer's state at scrape time."""
        self.pending_values.set_function(values)
        self.pending_age.set_function(age)
