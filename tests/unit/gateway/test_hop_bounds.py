"""Reading a gateway's per-hop histogram back from its /metrics text (demo, benchmark)."""

from __future__ import annotations

from prometheus_client import generate_latest

from suho_mt5.gateway import GatewayMetrics, signal_hop_bounds


def test_bounds_hold_the_median_and_the_99th_percentile() -> None:
    metrics = GatewayMetrics()
    hop = metrics.signal_hops.labels(hop="received_to_written")
    for _ in range(98):
        hop.observe(0.0003)  # the first bucket, 0.5 ms
    hop.observe(0.004)
    hop.observe(0.9)  # one slow one of 100: beyond the 99th percentile
    bounds = signal_hop_bounds(generate_latest(metrics.registry).decode())
    assert set(bounds) == {"received_to_written"}  # hops that saw nothing are left out
    count, p50, p99 = bounds["received_to_written"]
    assert count == 100
    assert p50 == 0.5
    assert 4 <= p99 <= 5  # the bucket holding 0.004 s, whatever its exact bound
