"""The gateway process: endpoints, the NATS connection, the sessions, ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import ssl
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client import start_http_server
from websockets.asyncio.server import Server, ServerConnection, serve

from suho_mt5._nats import nats_servers
from suho_mt5.errors import BusUnavailableError, GatewayError
from suho_mt5.protocol import CloseCode

from ._auth import Authenticator, LoginLimiter
from ._bus import SessionBus
from ._config import GatewayConfig
from ._handshake import Handshake
from ._metrics import GatewayMetrics
from ._ownership import ClusterOwnership
from ._registry import SessionListener, SessionRegistry
from ._session import Session, SessionServices
from ._transport import StreamTransport, Transport, WebSocketTransport, enable_tcp_keepalive

__all__ = ["Gateway", "SessionListener", "run_fast", "tune_gc"]

log = logging.getLogger("suho_mt5.gateway")
T = TypeVar("T")


def run_fast(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on uvloop when it is installed (the ``gateway`` extra on
    Linux): its event loop is written in C and cuts the gateway's latency tail."""
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def tune_gc() -> None:
    """Collect garbage less often, and never scan what exists at start-up again.

    A gateway holds hundreds of long-lived sessions; CPython's default thresholds make the
    oldest generation's collections (tens of ms with many objects) land in the middle of a
    signal's way to its EA. Call once, after start-up, in a process that runs only the gateway.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


class Gateway:
    """The EA gateway: WebSocket and TCP/TLS endpoints over one session layer.

    ``await start()`` connects to NATS and opens the endpoints (ports 0 pick free ones; read
    :attr:`ws_port` and :attr:`tcp_port` after), ``await stop()`` closes every session with
    ``GOING_AWAY`` and releases everything.
    """

    def __init__(self, config: GatewayConfig, *, nats_url: str,
                 authenticator: Authenticator, metrics: GatewayMetrics | None = None,
                 sessions: SessionListener | None = None) -> None:
        self.config = config
        self.nats_url = nats_url
        self.authenticator = authenticator
        self.metrics = metrics or GatewayMetrics()
        self.limiter = LoginLimiter(config.max_failed_logins, config.failed_login_window_s,
                                    config.max_tracked_addresses)
        #: What every session's handshake asks: the key (authenticator), the address (limiter).
        self.handshake = Handshake(config, self.metrics, authenticator, self.limiter)
        #: Which session owns each account.
        self.registry: SessionRegistry[Session] = SessionRegistry(sessions)
        self._nc: NatsClient | None = None
        self._nc_out: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._services: SessionServices | None = None
        self._all: set[asyncio.Task[None]] = set()
        self._ws_server: Server | None = None
        self._tcp_server: asyncio.Server | None = None
        self._metrics_server: Any = None
        self.ws_port: int | None = None
        self.tcp_port: int | None = None
        self.metrics_port: int | None = None
        self._stopping = False

    @property
    def nc(self) -> NatsClient:
        assert self._nc is not None, "the gateway is not started"
        return self._nc

    @property
    def nc_out(self) -> NatsClient:
        """The connection the backend -> EA consumers deliver on (and their acks go back
        on): apart from the one that carries the EAs' publishes and their PubAcks, so that a
        signal is never parsed, or queued in nats-server, behind hundreds of those."""
        assert self._nc_out is not None, "the gateway is not started"
        return self._nc_out

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "the gateway is not started"
        return self._js

    @property
    def sessions(self) -> dict[uuid.UUID, Session]:
        """The authenticated sessions, by account."""
        return self.registry.sessions

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.config
        try:
            servers = nats_servers(self.nats_url)
            self._nc = await nats.connect(servers=servers, connect_timeout=5,
                                          max_reconnect_attempts=-1, name="suho-mt5-gateway")
            self._nc_out = await nats.connect(servers=servers, connect_timeout=5,
                                              max_reconnect_attempts=-1,
                                              name="suho-mt5-gateway-outbound")
        except Exception as exc:
            raise BusUnavailableError(f"cannot connect to NATS at {self.nats_url}: {exc}") \
                from exc
        self._js = self._nc.jetstream()
        self._services = SessionServices(cfg, self.metrics, self.handshake,
                                         SessionBus(self._js, self._nc_out, cfg), self.registry)
        if cfg.session_lease_s > 0:
            await self.registry.attach(ClusterOwnership(self._nc, self._js, cfg, self.metrics))
        tls = self._tls_context()
        if cfg.ws_port is not None:
            self._ws_server = await serve(
                self._on_websocket, cfg.host, cfg.ws_port, ssl=tls,
                ping_interval=None,  # the session pings (WebSocketTransport.unresponsive)
                close_timeout=2, max_size=cfg.ws_max_message, max_queue=4,
                compression=None,
            )
            self.ws_port = self._ws_server.sockets[0].getsockname()[1]
        if cfg.tcp_port is not None:
            self._tcp_server = await asyncio.start_server(
                self._on_stream, cfg.host, cfg.tcp_port, ssl=tls, limit=64 * 1024,
            )
            self.tcp_port = self._tcp_server.sockets[0].getsockname()[1]
        if cfg.metrics_port is not None:
            server, _thread = start_http_server(cfg.metrics_port, addr=cfg.host,
                                                registry=self.metrics.registry)
            self._metrics_server = server
            self.metrics_port = server.server_port
        log.info("gateway listening: ws %s, %s %s, metrics %s", self.ws_port,
                 "tls" if tls else "tcp", self.tcp_port, self.metrics_port)

    def _tls_context(self) -> ssl.SSLContext | None:
        cfg = self.config
        if cfg.tls_cert is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cfg.tls_cert, cfg.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise GatewayError(f"cannot load the TLS certificate {cfg.tls_cert}: {exc}") \
                from exc
        return context

    async def stop(self) -> None:
        self._stopping = True
        if self._ws_server is not None:
            self._ws_server.close(close_connections=False)
        if self._tcp_server is not None:
            self._tcp_server.close()
        sessions = list(self.sessions.values())
        await asyncio.gather(*(s.close(CloseCode.GOING_AWAY, "gateway shutting down")
                               for s in sessions), return_exceptions=True)
        for task in list(self._all):
            task.cancel()
        await asyncio.gather(*self._all, return_exceptions=True)
        if self.registry.ownership is not None:
            await self.registry.ownership.stop()
        if self._ws_server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws_server.wait_closed(), 5)
        for nc in (self._nc_out, self._nc):
            if nc is not None:
                # Bounded: with the NATS server gone, drain() waits for a reconnect that may
                # never come, and SIGTERM must still stop the gateway.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(nc.drain(), 5)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(nc.close(), 2)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        self.authenticator.close()

    # -- sessions ------------------------------------------------------------------------------

    async def _serve(self, transport: Transport) -> None:
        assert self._services is not None, "the gateway is not started"
        session = Session(transport, self._services)
        task = asyncio.current_task()
        assert task is not None
        self._all.add(task)
        try:
            await session.run()
        finally:
            self._all.discard(task)

    async def _on_websocket(self, ws: ServerConnection) -> None:
        if self._stopping:
            await ws.close(int(CloseCode.GOING_AWAY), "gateway shutting down")
            return
        transport = WebSocketTransport(ws, self.config.ws_ping_interval_s,
                                       self.config.ws_ping_timeout_s)
        self._keepalive(transport.os_socket())
        await self._serve(transport)

    def _keepalive(self, sock: socket.socket | None) -> None:
        cfg = self.config
        with contextlib.suppress(OSError):
            enable_tcp_keepalive(sock, cfg.tcp_keepalive_idle_s, cfg.tcp_keepalive_interval_s,
                                 cfg.tcp_keepalive_count)

    async def _on_stream(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        if self._stopping:
            writer.close()
            return
        transport = StreamTransport(reader, writer, tls=self.config.tls)
        self._keepalive(transport.os_socket())
        await self._serve(transport)
