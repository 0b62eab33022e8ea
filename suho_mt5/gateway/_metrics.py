"""The gateway's Prometheus metrics, in a registry of their own (one per gateway)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["HOPS", "GatewayMetrics", "signal_hop_bounds"]

#: The hops of a signal's journey, as the ``hop`` label of ``suho_gateway_signal_hop_seconds``.
HOPS = (
    "created_to_published",  # SIGNAL timestamp -> stored in JetStream
    "published_to_received",  # stored -> delivered to the gateway
    "received_to_written",  # delivered -> written to the EA's socket
    "written_to_acked",  # written -> the EA's ACK arrived
    "created_to_acked",  # the whole way
)
#: fine below 20 ms, where the 10 ms goal is: a p99 read from them is within a few ms
_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)


#: clock skew (seconds, absolute): a clock a few seconds off, minutes off, a time zone off
_SKEW_BUCKETS = (0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 86_400.0)


class GatewayMetrics:
    """Everything ``/metrics`` shows (names in ``docs/gateway.md``)."""

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 account_labels: bool = False) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        #: whether series may name a tenant or an account (the operator opted in)
        self.account_labels = account_labels
        self.connected = Gauge(
            "suho_gateway_connected_eas", "Authenticated EA connections", ["transport"],
            registry=r,
        )
        self.connections = Counter(
            "suho_gateway_connections_total", "Connections opened", ["transport"], registry=r
        )
        self.clock_skew_seen = Histogram(
            "suho_gateway_clock_skew_seconds",
            "Arrival time minus the packet's timestamp (HELLO, HEARTBEAT), absolute",
            buckets=_SKEW_BUCKETS,
            registry=r,
        )
        #: per connected account: only with ``account_labels`` (``--metrics-account-labels``)
        self.clock_skew = Gauge(
            "suho_gateway_account_clock_skew_seconds",
            "Arrival time minus the packet's timestamp (HELLO, HEARTBEAT), per connected account",
            ["tenant", "account"],
            registry=r if account_labels else None,
        )
        self.sequence_gaps = Counter(
            "suho_gateway_sequence_gaps_total",
            "EA sequence numbers skipped (packets the EA numbered but never sent)",
            registry=r,
        )
        self.auth_failures = Counter(
            "suho_gateway_auth_failures_total",
            "Refused HELLOs: refused (bad account or key), rate_limited, busy (key-check queue "
            "full), unavailable, too_many_connections (not authenticated, per address)",
            ["reason"],
            registry=r,
        )
        self.key_checks = Counter(
            "suho_gateway_key_checks_total",
            "API key checks the database was asked for (bcrypt: ~0.2 s of a core each)",
            registry=r,
        )
        self.slow_clients = Counter(
            "suho_gateway_slow_clients_dropped_total",
            "Connections closed with SLOW_CONSUMER",
            registry=r,
        )
        self.closes = Counter(
            "suho_gateway_closes_total", "Connections closed, by close code", ["code"],
            registry=r,
        )
        self.packets_in = Counter(
            "suho_gateway_packets_in_total", "Valid EA packets, by type", ["type"], registry=r
        )
        self.packets_rejected = Counter(
            "suho_gateway_packets_rejected_total",
            "EA packets answered with ERROR and not forwarded, by error code",
            ["code"],
            registry=r,
        )
        self.frames_published = Counter(
            "suho_gateway_frames_published_total", "Frames published to JetStream", registry=r
        )
        self.packets_published = Counter(
            "suho_gateway_packets_published_total", "Packets published to JetStream", registry=r
        )
        self.packets_out = Counter(
            "suho_gateway_packets_out_total", "Packets written to EAs, by type", ["type"],
            registry=r,
        )
        self.outbound_acked = Counter(
            "suho_gateway_outbound_acked_total",
            "Backend -> EA messages acknowledged by the EA, by channel",
            ["channel"],
            registry=r,
        )
        self.handovers = Counter(
            "suho_gateway_handovers_total",
            "Claims of an account another gateway served, by how the other answered: closed "
            "(its session ended first), gone (no such gateway), timeout",
            ["result"],
            registry=r,
        )
        self.ownership_lost = Counter(
            "suho_gateway_ownership_lost_total",
            "Sessions closed because another gateway took the account (superseded) or the "
            "lease could not be renewed (expired)",
            ["reason"],
            registry=r,
        )
        self.signal_hops = Histogram(
            "suho_gateway_signal_hop_seconds",
            "Latency of each hop of a SIGNAL's way to the EA",
            ["hop"],
            buckets=_BUCKETS,
            registry=r,
        )


def signal_hop_bounds(metrics_text: str) -> dict[str, tuple[float, float, float]]:
    """From a gateway's ``/metrics`` text, per hop of ``suho_gateway_signal_hop_seconds``:
    (signals counted, the bucket bound in ms that holds their median, the one that holds their
    99th percentile). Hops that saw no signal are left out."""
    from prometheus_client.parser import text_string_to_metric_families

    buckets: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "suho_gateway_signal_hop_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                buckets.setdefault(sample.labels["hop"], []).append(
                    (float(sample.labels["le"]), sample.value))
    out = {}
    for hop, points in buckets.items():
        points.sort()
        total = points[-1][1]
        if total:
            p50, p99 = (next(le for le, n in points if n >= q * total) * 1000
                        for q in (0.5, 0.99))
            out[hop] = (total, p50, p99)
    return out

