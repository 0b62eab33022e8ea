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
from suho_mt5.errors import BusUnavailableError, GatewayError, redact
from suho_mt5.protocol import CloseCode, GoodbyePacket, encode, now_us

from ._auth import AccountDirectory, Authenticator, KeyChecks, LoginLimiter, VerifiedKeys
from ._bus import SessionBus
from ._common import cancel_and_wait
from ._config import GatewayConfig
from ._handshake import CROWDED, Handshake
from ._metrics import GatewayMetrics
from ._ownership import ClusterOwnership
from ._proxy import MAX_HEADER, ProxyHeaderError, TrustedProxies, parse_proxy_header
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
        self.metrics = metrics or GatewayMetrics(account_labels=config.metrics_account_labels)
        #: (account, key) pairs verified before, re-read every ``auth_recheck_s``.
        self.keys = VerifiedKeys(config.auth_cache_ttl_s, config.max_tracked_addresses)
        self.limiter = LoginLimiter(config.max_failed_logins, config.failed_login_window_s,
                                    config.max_tracked_addresses,
                                    config.max_failed_logins_per_account)
        self.checks = KeyChecks(authenticator.authenticate,
                                workers=getattr(authenticator, "workers", config.auth_workers),
                                limit=config.auth_queue_limit,
                                unknown_rate=config.auth_unknown_rate,
                                unknown_burst=config.auth_unknown_burst,
                                on_start=self.metrics.key_checks.inc)
        #: Which account ids may exist (read every ``auth_directory_refresh_s``).
        self.directory = AccountDirectory(config.auth_directory_refresh_s,
                                          config.auth_unlisted_rate, config.auth_unlisted_burst,
                                          self.checks.expected_s)
        #: What every session's handshake asks: the key (keys, checks), the address (limiter).
        self.handshake = Handshake(config, self.metrics, self.keys, self.limiter, self.checks,
                                   self.directory)
        self.proxies = TrustedProxies(config.proxy_protocol_from)
        self._tls: ssl.SSLContext | None = None
        self._recheck: asyncio.Task[None] | None = None
        self._directory_task: asyncio.Task[None] | None = None
        #: Which session owns each account.
        self.registry: SessionRegistry[Session] = SessionRegistry(sessions)
        self._nc: NatsClient | None = None
        self._nc_out: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._services: SessionServices | None = None
        self._all: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Task[None]] = set()
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
        if self.proxies and cfg.tls and cfg.ws_port is not None:
            raise GatewayError("the PROXY protocol with TLS in the gateway is not supported on "
                               "the WebSocket port: terminate TLS in the proxy, or send no "
                               "PROXY header (docs/gateway.md)")
        if self.proxies and cfg.tls and cfg.tcp_port is not None:
            raise GatewayError("the PROXY protocol with TLS in the gateway is not supported on "
                               "the stream port: terminate TLS in the proxy (docs/gateway.md)")
        try:
            servers = nats_servers(self.nats_url)
            self._nc = await nats.connect(servers=servers, connect_timeout=5,
                                          max_reconnect_attempts=-1, name="suho-mt5-gateway")
            self._nc_out = await nats.connect(servers=servers, connect_timeout=5,
                                              max_reconnect_attempts=-1,
                                              name="suho-mt5-gateway-outbound")
        except Exception as exc:
            raise BusUnavailableError(f"cannot connect to NATS at {redact(self.nats_url)}: "
                                      f"{redact(str(exc))}") \
                from exc
        self._js = self._nc.jetstream()
        self._services = SessionServices(cfg, self.metrics, self.handshake,
                                         SessionBus(self._js, self._nc_out, cfg), self.registry)
        if cfg.session_lease_s > 0:
            await self.registry.attach(ClusterOwnership(self._nc, self._js, cfg, self.metrics))
        tls = self._tls = self._tls_context()
        if cfg.ws_port is not None:
            self._ws_server = await serve(
                self._on_websocket, cfg.host, cfg.ws_port, ssl=tls,
                ping_interval=None,  # the session pings (WebSocketTransport.unresponsive)
                close_timeout=2, max_size=cfg.ws_max_message, max_queue=4,
                compression=None, backlog=cfg.listen_backlog,
                create_connection=proxied_connection(self.proxies) if self.proxies else None,
            )
            self.ws_port = self._ws_server.sockets[0].getsockname()[1]
        if cfg.tcp_port is not None:
            self._tcp_server = await asyncio.start_server(
                self._on_stream, cfg.host, cfg.tcp_port, ssl=tls, limit=64 * 1024,
                backlog=cfg.listen_backlog,
            )
            self.tcp_port = self._tcp_server.sockets[0].getsockname()[1]
        if cfg.metrics_port is not None:
            server, _thread = start_http_server(cfg.metrics_port, addr=cfg.metrics_host,
                                                registry=self.metrics.registry)
            self._metrics_server = server
            self.metrics_port = server.server_port
        if cfg.auth_recheck_s > 0:
            self._recheck = asyncio.create_task(self._recheck_keys(), name="recheck-keys")
        await self.refresh_directory()
        if cfg.auth_directory_refresh_s > 0:
            self._directory_task = asyncio.create_task(self._refresh_directory(),
                                                       name="account-directory")
        log.info("gateway listening: ws %s, %s %s, metrics %s:%s%s", self.ws_port,
                 "tls" if tls else "tcp", self.tcp_port, cfg.metrics_host, self.metrics_port,
                 f"; PROXY protocol from {', '.join(cfg.proxy_protocol_from)}"
                 if self.proxies else "")

    def _tls_context(self) -> ssl.SSLContext | None:
        cfg = self.config
        if cfg.tls_cert is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.minimum_version = ssl.TLSVersion[cfg.tls_minimum_version]
        except KeyError:
            raise GatewayError(f"unknown TLS version {cfg.tls_minimum_version!r}: "
                               "TLSv1_2 or TLSv1_3") from None
        if context.minimum_version < ssl.TLSVersion.TLSv1_2:
            raise GatewayError("TLS older than 1.2 is not accepted")
        self._load_certificate(context)
        return context

    def _load_certificate(self, context: ssl.SSLContext) -> None:
        cfg = self.config
        try:
            context.load_cert_chain(cfg.tls_cert or "", cfg.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise GatewayError(f"cannot load the TLS certificate {cfg.tls_cert}: {exc}") \
                from exc

    def reload_tls(self) -> bool:
        """Read the certificate and key files again (SIGHUP): new connections get the new
        certificate, open ones keep theirs. A file that cannot be read leaves the old
        certificate in place (logged). Returns whether it was reloaded."""
        if self._tls is None:
            log.warning("SIGHUP: no TLS certificate to reload")
            return False
        try:
            self._load_certificate(self._tls)
        except GatewayError as exc:
            log.error("TLS certificate not reloaded (the old one stays): %s", exc)
            return False
        log.info("TLS certificate reloaded from %s", self.config.tls_cert)
        return True

    async def _recheck_keys(self) -> None:
        """Every ``auth_recheck_s``: re-read the key of every account held as verified or
        connected; a deactivated account or a changed key is forgotten and its session ends
        (AUTH_FAILED)."""
        while True:
            await asyncio.sleep(self.config.auth_recheck_s)
            try:
                await self.recheck_keys()
            except Exception as exc:  # the database may be away: try again next time
                log.warning("cannot re-read the API keys of connected accounts: %s", exc)

    async def _refresh_directory(self) -> None:
        while True:
            await asyncio.sleep(self.config.auth_directory_refresh_s)
            await self.refresh_directory()

    async def refresh_directory(self) -> None:
        """Read which account ids may exist (kept as it was when the database cannot say)."""
        try:
            self.directory.update(await self.authenticator.account_digests())
        except Exception as exc:
            log.warning("cannot read the account directory (the last one stays): %s", exc)

    async def recheck_keys(self) -> list[uuid.UUID]:
        """One pass of :meth:`_recheck_keys`; returns the accounts dropped."""
        by_tenant: dict[str, dict[uuid.UUID, str | None]] = {}
        for identity in self.keys.to_recheck(self.sessions):
            by_tenant.setdefault(identity.tenant_id, {})[identity.account_id] = \
                identity.key_fingerprint
        dropped = []
        for tenant, accounts in by_tenant.items():
            now = await self.authenticator.fingerprints(tenant, accounts)
            for account, fingerprint in accounts.items():
                if now.get(account) != fingerprint:
                    dropped.append(account)
        for account in dropped:
            self.keys.forget(account)
            session = self.sessions.get(account)
            log.warning("account %s deactivated or its API key changed: %s", account,
                        "session closed" if session is not None else "not connected")
            if session is not None:
                self._spawn(session.close(CloseCode.AUTH_FAILED,
                                          "account deactivated or API key changed"))
        return dropped

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._recheck, self._directory_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._ws_server is not None:
            self._ws_server.close(close_connections=False)
        if self._tcp_server is not None:
            self._tcp_server.close()
        sessions = list(self.sessions.values())
        await asyncio.gather(*(s.close(CloseCode.GOING_AWAY, "gateway shutting down")
                               for s in sessions), return_exceptions=True)
        await cancel_and_wait(list(self._all))
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
        peer = None
        if self.proxies:
            try:
                peer = await self._proxy_header(reader, writer)
            except (ProxyHeaderError, OSError, TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError) as exc:
                self.handshake.sampled("proxy", logging.WARNING,
                                       "connection from %s dropped: %s",
                                       writer.get_extra_info("peername"), exc)
                writer.transport.abort()
                return
        transport = StreamTransport(reader, writer, tls=self.config.tls, peer=peer)
        if self.handshake.crowded(transport.peer):
            # Refused before a session is made for it: a flood's excess connections cost an
            # accept, one GOODBYE and a close (a session's set-up and wind-up cost several
            # times that, on the loop every connected EA's signals go through).
            self.metrics.connections.labels(transport.name).inc()
            self.metrics.closes.labels(str(int(CloseCode.RATE_LIMITED))).inc()
            writer.write(encode(GoodbyePacket(0, now_us(), bytes(16), 0, CloseCode.RATE_LIMITED,
                                              CROWDED)))
            writer.close()
            return
        self._keepalive(transport.os_socket())
        await self._serve(transport)

    async def _proxy_header(self, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> str | None:
        """The client address a trusted proxy sent ahead of the stream (``None``: the
        connection is not from a trusted proxy, or the proxy sent no address)."""
        peername = writer.get_extra_info("peername")
        if not peername or not self.proxies.trusts(str(peername[0])):
            return None
        async with asyncio.timeout(self.config.hello_timeout_s):
            data = await reader.readexactly(1)
            if data == b"\r":  # v2: 16 fixed bytes, then the length they give
                data += await reader.readexactly(15)
                length = int.from_bytes(data[14:16], "big")
                if 16 + length > MAX_HEADER:
                    raise ProxyHeaderError(f"a PROXY v2 header of {length} bytes")
                data += await reader.readexactly(length)
            else:
                data += await reader.readuntil(b"\n")
        header = parse_proxy_header(data)
        if header is None or header.length != len(data):
            raise ProxyHeaderError("a PROXY header that does not end where it should")
        return header.address


def proxied_connection(trusted: TrustedProxies) -> type[ServerConnection]:
    """A ``websockets`` server connection that reads a PROXY header first on connections
    from ``trusted`` addresses (before the HTTP upgrade), and reports the address in it as
    :attr:`remote_address`."""

    class ProxiedConnection(ServerConnection):
        _proxy_buffer: bytes | None = None
        _client: str | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            peer = transport.get_extra_info("peername")
            if peer and trusted.trusts(str(peer[0])):
                self._proxy_buffer = b""

        def data_received(self, data: bytes) -> None:
            buffer = self._proxy_buffer
            if buffer is None:
                super().data_received(data)
                return
            buffer += data
            try:
                header = parse_proxy_header(buffer)
            except ProxyHeaderError as exc:
                log.warning("WebSocket connection from %s dropped: %s",
                            self.transport.get_extra_info("peername"), exc)
                self.transport.abort()
                return
            if header is None:
                if len(buffer) > MAX_HEADER:
                    self.transport.abort()
                    return
                self._proxy_buffer = buffer
                return
            self._proxy_buffer = None
            self._client = header.address
            if len(buffer) > header.length:
                super().data_received(buffer[header.length:])

        @property
        def remote_address(self) -> Any:
            if self._client is not None:
                return (self._client, 0)
            return super().remote_address

    return ProxiedConnection
