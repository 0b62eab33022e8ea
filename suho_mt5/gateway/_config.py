"""Settings of one gateway process (every figure is documented in ``docs/gateway.md``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GatewayConfig"]


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Where the gateway listens and the limits it enforces.

    A port of ``None`` disables that endpoint, ``0`` picks a free port (tests).
    """

    host: str = "0.0.0.0"
    ws_port: int | None = 8000
    tcp_port: int | None = 8001
    metrics_port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    #: JetStream streams (owned by the bridge; see suho_mt5._subjects for the subjects)
    accounts_stream: str = "MT5_ACCOUNTS"
    signals_stream: str = "MT5_SIGNALS"
    commands_stream: str = "MT5_COMMANDS"
    #: the EA sends at least one packet this often (WELCOME tells it); the gateway sends a
    #: keepalive ACK when it has sent nothing for as long
    heartbeat_interval_s: float = 30.0
    #: no packet from the EA for this long: closed with IDLE_TIMEOUT (3 heartbeats)
    idle_timeout_s: float = 90.0
    #: no HELLO this long after the connection opened: closed with AUTH_TIMEOUT
    hello_timeout_s: float = 10.0
    #: a packet sent to the EA not ACKed for this long, or a socket write that does not
    #: complete for this long: closed with SLOW_CONSUMER
    ack_timeout_s: float = 30.0
    #: packets waiting to be written to one socket; one more closes it with SLOW_CONSUMER
    send_queue_packets: int = 1024
    #: unacknowledged backend -> EA messages per channel (signal, command, config)
    max_in_flight: int = 256
    #: EA packets accepted but not yet on the bus; the socket is not read meanwhile
    max_inbound_pending: int = 4096
    #: packets per published frame at most
    max_frame_packets: int = 1000
    #: bad packets per connection before it is closed with PROTOCOL_VIOLATION
    max_bad_packets: int = 100
    #: failed logins per source address within the window before RATE_LIMITED
    max_failed_logins: int = 5
    failed_login_window_s: float = 60.0
    #: source addresses whose failures are remembered (oldest forgotten first)
    max_tracked_addresses: int = 100_000
    #: threads (and database connections) verifying API keys
    auth_workers: int = 4
    #: a verified (account, key) is remembered this long (0: never); a revoked key keeps
    #: working on open connections and for at most this long on new ones
    auth_cache_ttl_s: float = 60.0
    #: WebSocket ping interval and timeout (RFC 6455 ping/pong): a client that answers no
    #: ping within the timeout is closed with IDLE_TIMEOUT (0: no pings)
    ws_ping_interval_s: float = 20.0
    ws_ping_timeout_s: float = 20.0
    #: TCP keepalive on every accepted socket (both transports): probes start after this
    #: long without traffic, every ``interval`` s; ``count`` unanswered ones end the
    #: connection (found dead in idle + interval * count s, 60 s by default)
    tcp_keepalive_idle_s: int = 30
    tcp_keepalive_interval_s: int = 10
    tcp_keepalive_count: int = 3
    #: who serves each account, cluster-wide (docs/gateway.md, "Several gateways"): the
    #: JetStream key-value bucket, how long an entry lives unless renewed (renewed every
    #: third of it; 0: ownership within this process only), and how long a claim waits for
    #: the account's previous gateway to confirm that its session ended
    session_bucket: str = "MT5_SESSIONS"
    session_lease_s: float = 30.0
    handover_timeout_s: float = 3.0
    #: largest WebSocket message accepted (bytes): a frame of at most 455 packets
    ws_max_message: int = 65_520

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None
