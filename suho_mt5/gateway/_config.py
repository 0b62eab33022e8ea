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
    #: ``/metrics`` listens here: loopback unless an operator names another address
    metrics_host: str = "127.0.0.1"
    #: per-account series (tenant and account id in labels) on ``/metrics``: off unless the
    #: operator opts in, since anyone who can read ``/metrics`` then lists every account
    metrics_account_labels: bool = False
    #: connections waiting to be accepted (``listen(2)`` backlog; the kernel caps it at
    #: ``net.core.somaxconn``)
    listen_backlog: int = 4096
    #: addresses or networks of load balancers whose connections start with a PROXY
    #: protocol header (v1 or v2, HAProxy's ``send-proxy-v2``): the client address in it is
    #: the one every limit counts. Empty: no header is read from anyone
    proxy_protocol_from: tuple[str, ...] = ()
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
    #: how long one publish of an EA's frame waits for JetStream's PubAck; three failed
    #: attempts close the session with BACKEND_UNAVAILABLE
    publish_timeout_s: float = 5.0
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
    #: key checks per source address within the window that may fail, counting those still
    #: running: one more HELLO from it gets RATE_LIMITED without a key check
    max_failed_logins: int = 5
    failed_login_window_s: float = 60.0
    #: once its address is limited, a HELLO for an account that authenticated on this gateway
    #: before may still have this many key checks per (address, account) and window: a
    #: neighbour's failures do not lock an EA out
    max_failed_logins_per_account: int = 3
    #: a HELLO refused RATE_LIMITED gets its answer after this long (a timer, no work): a
    #: flood that retries as soon as it is refused is slowed to one attempt per connection
    #: and second, bounded by ``max_unauthenticated_per_address``
    rate_limited_delay_s: float = 1.0
    #: source addresses whose failures are remembered (oldest forgotten first)
    max_tracked_addresses: int = 100_000
    #: threads (and database connections) verifying API keys
    auth_workers: int = 4
    #: key checks waiting for a worker at most; one more is refused with UNAVAILABLE (an
    #: account that authenticated before pushes out one that never did)
    auth_queue_limit: int = 256
    #: key checks per second (and burst) for accounts that never authenticated on this
    #: gateway: what anonymous clients can make the database hash, from any number of addresses
    auth_unknown_rate: float = 100.0
    auth_unknown_burst: int = 500
    #: a verified (account, key) is remembered this long (0: never); each such account's key
    #: is re-read every ``auth_recheck_s``, and a deactivated account or a changed key drops
    #: it and ends its sessions
    auth_cache_ttl_s: float = 3600.0
    #: which account ids may exist is read this often (revision 0014's digests); a HELLO for
    #: another id is refused after a pause like a real refusal's, without a key check, except
    #: ``auth_unlisted_rate`` a second (burst ``auth_unlisted_burst``): an account created
    #: since the last read gets a real check
    auth_directory_refresh_s: float = 30.0
    auth_unlisted_rate: float = 2.0
    auth_unlisted_burst: int = 10
    auth_recheck_s: float = 5.0
    #: connections from one address that have not authenticated yet, at most; more are closed
    #: at once
    max_unauthenticated_per_address: int = 256
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

    #: lowest TLS version accepted
    tls_minimum_version: str = "TLSv1_2"

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None
