"""``suho-mt5 demo``: the seed's whole data flow on servers of its own, then its numbers.

EA (simulated, real sockets, 144-byte packets) -> gateway -> NATS JetStream -> Data Bridge
-> TimescaleDB, and back: signals -> JetStream -> gateway -> EA -> execution report ->
bridge -> the schema's triggers. Steps, each timed:

1. servers: nats-server, and the native TimescaleDB ``make setup`` installs (or the PGlite
   engine, or any database given by URL), in a temporary directory;
2. ``db upgrade``; logins for the bridge (``mt5_ingest``) and the applications (``mt5_app``);
3. two tenants with their accounts and API keys; the bus's streams; when redis-server is
   installed, the latest-state cache's users (a writer, one reader per tenant);
4. the Data Bridge and the gateway, as ``python -m suho_mt5`` processes (both writing the
   cache);
5. simulated EAs over WebSocket and TCP, a reference feed, and a "model" publishing signals
   the EAs execute and close;
6. ``mt5_maintain()``, then the report (:mod:`suho_mt5.demo.report`), with one line of live
   state per tenant read back from the cache as the tenant's own user;
7. everything stopped and removed, also on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

from sqlalchemy.engine import make_url

from suho_mt5._nats import nats_servers
from suho_mt5.db import psycopg_conninfo
from suho_mt5.demo.ea import DemoEA
from suho_mt5.demo.market import BROKERS, INSTRUMENTS, Broker, Market
from suho_mt5.demo.servers import (
    NativeCluster,
    NatsServer,
    RedisServer,
    Service,
    TimescaleEngine,
    free_port,
    make_workdir,
    native_timescaledb_available,
)
from suho_mt5.errors import DemoError, SuhoError

__all__ = ["DemoOptions", "DemoRun", "Tenant", "run_demo"]

Engine = Literal["auto", "native", "pglite"]
Progress = Callable[[str], None]

BRIDGE_CONSUMER = ("MT5_ACCOUNTS", "suho-bridge")


@dataclass(frozen=True)
class DemoOptions:
    engine: Engine = "auto"
    database_url: str | None = None
    edition: str | None = None
    """Schema flavour for ``database_url`` (``db upgrade --edition``); None: detected."""
    nats_url: str | None = None
    cluster: bool = False
    """Start a 3-node NATS JetStream cluster (R3 streams) instead of one nats-server."""
    duration_s: float = 20.0
    accounts_per_tenant: int = 3
    speed: float = 10.0
    """Multiplies the seed's per-account rates (1 quote/s, a snapshot and a heartbeat every
    30 s)."""
    signals_per_s: float = 3.0
    hold_s: float = 2.0


@dataclass
class Tenant:
    tenant_id: str
    broker: Broker
    accounts: list[tuple[uuid.UUID, str]] = field(default_factory=list)


@dataclass
class DemoRun:
    """Where the demo ran and what it did; :mod:`suho_mt5.demo.report` adds the queries."""

    engine: str
    database_url: str
    app_url: str
    bridge_url: str
    nats_url: str
    tenants: list[Tenant]
    logins: bool
    timings: dict[str, float] = field(default_factory=dict)
    eas: list[DemoEA] = field(default_factory=list)
    signals_published: int = 0
    reference_quotes: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    gateway_metrics_url: str | None = None
    #: The latest-state cache (:class:`suho_mt5.demo.cache.DemoCache`), None without one.
    cache: Any = None


def _plain(url: str) -> str:
    """A libpq URI for psycopg, from a SQLAlchemy URL."""
    return psycopg_conninfo(url)[0]


@contextlib.contextmanager
def _step(run_timings: dict[str, float], name: str, progress: Progress) -> Iterator[None]:
    progress(name)
    start = time.monotonic()
    yield
    run_timings[name] = round(time.monotonic() - start, 2)


class _Stack:
    """What the demo started, stopped in reverse order whatever happens."""

    def __init__(self) -> None:
        self.stops: list[Callable[[], None]] = []

    def push(self, stop: Callable[[], None]) -> None:
        self.stops.append(stop)

    def close(self) -> None:
        while self.stops:
            with contextlib.suppress(Exception):
                self.stops.pop()()


# ----------------------------------------------------------------------------- setup

def _choose_engine(options: DemoOptions, notes: list[str]) -> str:
    if options.database_url is not None:
        return "external"
    if options.engine != "auto":
        return options.engine
    why = native_timescaledb_available()
    if why is None:
        return "native"
    notes.append(f"native TimescaleDB unavailable ({why}): using the PGlite engine")
    return "pglite"


_S = TypeVar("_S", NativeCluster, NatsServer, RedisServer, TimescaleEngine)


def _start(server: _S, stack: _Stack, pids: dict[str, int]) -> _S:
    """Start ``server``, registered to be stopped first (a half-started one too)."""
    stack.push(server.stop)
    server.start()
    pids[server.name] = server.pid
    return server


def _start_nats_cluster(workdir: Path, stack: _Stack, pids: dict[str, int]) -> str:
    """Three nats-server processes routed into one JetStream cluster: their URL list."""
    from suho_mt5.demo.cluster import NatsCluster

    nats_dir = workdir / "nats"
    nats_dir.mkdir()
    cluster = NatsCluster(nats_dir, size=3)
    stack.push(cluster.stop)
    cluster.start()
    for i, node in enumerate(cluster.nodes):
        pids[f"nats-server-{i + 1}"] = node.pid
    return cluster.url


def _start_database(engine: str, workdir: Path, stack: _Stack, pids: dict[str, int]
                    ) -> str:
    if engine == "native":
        cluster = NativeCluster(workdir / "postgresql", password=secrets.token_hex(12))
        (workdir / "postgresql").mkdir()
        _start(cluster, stack, pids)
        import psycopg

        with psycopg.connect(_plain(cluster.url()), autocommit=True) as conn:
            conn.execute("CREATE DATABASE suho_demo")
        return cluster.url("suho_demo")
    engine_dir = workdir / "pglite"
    engine_dir.mkdir()
    return _start(TimescaleEngine(engine_dir), stack, pids).url


def _create_logins(url: str, suffix: str) -> tuple[str, str] | None:
    """Logins for the bridge (``mt5_ingest``) and the applications (``mt5_app``), with
    random passwords; None when this login may not create roles."""
    import psycopg
    from psycopg import sql

    made = []
    try:
        with psycopg.connect(_plain(url), autocommit=True) as conn:
            for name, role, extra in ((f"suho_demo_bridge{suffix}", "mt5_ingest", "BYPASSRLS"),
                                      (f"suho_demo_app{suffix}", "mt5_app", "")):
                password = secrets.token_hex(16)
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                      (name,)).fetchone()
                verb = "ALTER" if exists else "CREATE"
                conn.execute(sql.SQL(f"{verb} ROLE {{}} LOGIN {extra} PASSWORD {{}}").format(
                    sql.Identifier(name), sql.Literal(password)))
                if not exists:
                    conn.execute(sql.SQL("GRANT {} TO {}").format(
                        sql.Identifier(role), sql.Identifier(name)))
                made.append(make_url(url).set(username=name, password=password)
                            .render_as_string(hide_password=False))
    except psycopg.errors.InsufficientPrivilege:
        return None
    except psycopg.Error as exc:
        raise DemoError(f"cannot create the demo's logins: {exc}") from exc
    return made[0], made[1]


def _create_tenants(url: str, options: DemoOptions, suffix: str) -> list[Tenant]:
    from suho_mt5.commands.account import create

    tenants = [Tenant(f"demo-alpha{suffix}", BROKERS[0]), Tenant(f"demo-beta{suffix}",
                                                                 BROKERS[1])]
    base = 50_000_000 + secrets.randbelow(10**8)
    for t_index, tenant in enumerate(tenants):
        for i in range(options.accounts_per_tenant):
            login = base + 100 * t_index + i
            made = create(url, tenant_id=tenant.tenant_id, user_id=f"trader-{i + 1}",
                          broker_name=tenant.broker.name,
                          broker_server=f"{tenant.broker.name.replace(' ', '')}-Demo",
                          mt5_login=login, mt5_account_number=str(login), leverage=100)
            tenant.accounts.append((made.account.account_id, made.api_key))
    return tenants


# ----------------------------------------------------------------------------- the flow

async def _reference_feed(js: Any, market: Market, stop: asyncio.Event, run: DemoRun) -> None:
    from suho_mt5.ingest.reconcile import encode_reference

    while not stop.is_set():
        now = time.time()
        for instrument in INSTRUMENTS:
            await js.publish(f"mt5.market.{instrument.symbol}",
                             encode_reference(market.reference_quote(instrument, now)))
            run.reference_quotes += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)


async def _signals(js: Any, market: Market, run: DemoRun, options: DemoOptions,
                   until: float) -> None:
    """The "model": trend-following ideas on reference prices, moved to each account's
    broker by its recent deviation, published through :func:`publish_signal`."""
    import psycopg

    from suho_mt5.commands.signal import publish_signal

    accounts = [(t, a) for t in run.tenants for a, _ in t.accounts]
    rng = market.rng
    loop = asyncio.get_running_loop()
    # The PGlite engine serves one client at a time, and the bridge and the gateway need it
    # too: a connection per signal there. Elsewhere one warm connection, as a signal service
    # would keep (a new backend's first insert into a hypertable costs tens of ms of cache
    # loading, which would show up as signal latency).
    shared = run.engine != "pglite"
    conn = await psycopg.AsyncConnection.connect(_plain(run.bridge_url)) if shared else None
    # With the cache: the broker's current offset is read from it (latest quote against
    # latest reference price, as the tenant's user), and it is told each signal's status.
    references: Any = None
    listener: Any = None
    if run.cache is not None:
        from suho_mt5.cache import CacheReader, CacheWriter

        references = CacheReader(run.cache.url, credentials=run.cache.passwords)
        listener = CacheWriter(run.cache.writer_url, name="demo-signals")
    try:
        while loop.time() < until:
            tenant, account = rng.choice(accounts)
            idea = market.idea(time.time())
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(_plain(run.bridge_url))
            await publish_signal(
                conn, js, tenant_id=tenant.tenant_id, account_id=account,
                symbol=tenant.broker.symbol(idea.instrument.symbol), action=idea.action,
                volume=Decimal("0.10"), entry_price=idea.entry, stop_loss=idea.stop_loss,
                take_profit=idea.take_profit, confidence=idea.confidence,
                model_version="demo-trend-v1", strategy_name="trend-follow",
                polygon_bid=idea.reference_bid, polygon_ask=idea.reference_ask,
                expires_at=datetime.now(UTC) + timedelta(minutes=5), adjust_to_broker=True,
                references=references, listener=listener)
            run.signals_published += 1
            if not shared:
                await conn.close()
            await asyncio.sleep(rng.expovariate(options.signals_per_s))
    finally:
        if conn is not None:
            await conn.close()
        if listener is not None:
            await listener.close()
        if references is not None:
            await references.close()


async def _bridge_caught_up(js: Any, timeout: float) -> bool:
    """The bridge's consumer has nothing pending and nothing unacknowledged."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        info = await js.consumer_info(*BRIDGE_CONSUMER)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return True
        await asyncio.sleep(0.25)
    return False


async def _traffic(run: DemoRun, options: DemoOptions, ws_port: int, tcp_port: int,
                   progress: Progress) -> None:
    import nats

    from suho_mt5.gateway.simulator import Rates, SimAccount

    nc = await nats.connect(servers=nats_servers(run.nats_url))
    js = nc.jetstream()
    market = Market(time.time())
    stop_feed = asyncio.Event()
    feed = asyncio.create_task(_reference_feed(js, market, stop_feed, run))
    try:
        await asyncio.sleep(0.5)  # the first reference quotes are in before the first tick
        rates = Rates(speed=options.speed)
        index = 0
        for tenant in run.tenants:
            for account, key in tenant.accounts:
                url = (f"ws://127.0.0.1:{ws_port}" if index % 2 == 0
                       else f"tcp://127.0.0.1:{tcp_port}")
                run.eas.append(DemoEA(SimAccount(account, key), url, rates, market=market,
                                      broker=tenant.broker, hold_s=options.hold_s))
                index += 1
        loop = asyncio.get_running_loop()
        progress(f"streaming: {len(run.eas)} EAs (WebSocket and TCP) for "
                 f"{options.duration_s:.0f} s, reference feed, signals")
        eas = asyncio.gather(*(ea.run(options.duration_s, drain_s=30) for ea in run.eas))
        try:
            connect_deadline = loop.time() + 60
            while not any(ea.connected.is_set() for ea in run.eas):
                if loop.time() > connect_deadline:
                    raise DemoError("no simulated EA could open a session at the gateway "
                                    "within 60 s")
                await asyncio.sleep(0.05)
            # Signals stop early enough for their trades to close while the EAs still stream.
            until = loop.time() + max(1.0, options.duration_s - 3 * options.hold_s)
            await _signals(js, market, run, options, until)
            for ea in run.eas:
                await ea.close_all()
            await eas
        except BaseException:
            eas.cancel()
            with contextlib.suppress(BaseException):
                await eas
            raise
        stop_feed.set()
        await feed
        progress("waiting for the bridge to commit what was sent")
        if not await _bridge_caught_up(js, timeout=60):
            run.notes.append("the bridge had not caught up after 60 s")
    finally:
        stop_feed.set()
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feed
        await nc.close()


def run_demo(options: DemoOptions, progress: Progress = lambda _: None) -> dict[str, Any]:
    """Run the demo and return its report (:func:`suho_mt5.demo.report.collect`).

    Every process it starts is stopped, and its temporary directory removed, before it
    returns or raises (KeyboardInterrupt included)."""
    import suho_mt5.demo.cache as demo_cache
    from suho_mt5.commands.db import maintain, upgrade
    from suho_mt5.commands.ingest import setup_streams
    from suho_mt5.demo.report import collect

    started = time.monotonic()
    stack = _Stack()
    workdir = make_workdir("demo")
    stack.push(lambda: shutil.rmtree(workdir, ignore_errors=True))
    notes: list[str] = []
    timings: dict[str, float] = {}
    pids: dict[str, int] = {}
    try:
        engine = _choose_engine(options, notes)
        with _step(timings, "servers", progress):
            if options.nats_url is None and options.cluster:
                nats_url = _start_nats_cluster(workdir, stack, pids)
            elif options.nats_url is None:
                nats_dir = workdir / "nats"
                nats_dir.mkdir()
                nats_url = _start(NatsServer(nats_dir), stack, pids).url
            else:
                nats_url = options.nats_url
            setup_streams(nats_url)  # first: a bus that is not there fails the demo at once
            cache = demo_cache.start(workdir, notes)
            if cache is not None:
                _start(cache.server, stack, pids)
            url = (options.database_url
                   if options.database_url is not None and engine == "external"
                   else _start_database(engine, workdir, stack, pids))
        suffix = f"_{secrets.token_hex(3)}" if engine == "external" else ""
        with _step(timings, "migrate", progress):
            upgrade(url, edition=options.edition)
            logins = None if engine == "pglite" else _create_logins(url, suffix)
            if logins is None:
                if engine != "pglite":
                    notes.append("this login may not create roles: every component uses it")
                bridge_url = app_url = url
            else:
                bridge_url, app_url = logins
                if engine == "external":
                    stack.push(lambda: _drop_logins(url, suffix))
        with _step(timings, "accounts", progress):
            tenants = _create_tenants(url, options, suffix.replace("_", "-"))
            if cache is not None:
                demo_cache.grant(cache, [t.tenant_id for t in tenants])
        run = DemoRun(engine=engine, database_url=url, app_url=app_url, bridge_url=bridge_url,
                      nats_url=nats_url, tenants=tenants, logins=logins is not None,
                      timings=timings, pids=pids, notes=notes, cache=cache)
        with_cache = [] if cache is None else ["--cache-url", cache.writer_url]
        with _step(timings, "services", progress):
            bridge_metrics, ws_port, tcp_port = free_port(), free_port(), free_port()
            gateway_metrics = free_port()
            run.gateway_metrics_url = f"http://127.0.0.1:{gateway_metrics}/metrics"
            bridge = Service(workdir, "data-bridge", [
                "ingest", "run", "--url", bridge_url, "--nats-url", nats_url,
                "--metrics-port", str(bridge_metrics), "--batch-size", "200",
                "--offline-after", "10", "--offline-check-every", "2", *with_cache],
                bridge_metrics)
            stack.push(bridge.stop)
            bridge.start()
            gateway = Service(workdir, "gateway", [
                "gateway", "run", "--url", app_url, "--nats-url", nats_url,
                "--host", "127.0.0.1", "--ws-port", str(ws_port), "--tcp-port",
                str(tcp_port), "--heartbeat", "5", "--metrics-port", str(gateway_metrics),
                *with_cache], tcp_port)
            stack.push(gateway.stop)
            gateway.start()
            pids["data-bridge"], pids["gateway"] = bridge.pid, gateway.pid
        with _step(timings, "traffic", progress):
            asyncio.run(_traffic(run, options, ws_port, tcp_port, progress))
        with _step(timings, "maintain", progress):
            maintain(url)
        with _step(timings, "report", progress):
            report = collect(run)
            report["cache"] = (None if cache is None
                               else asyncio.run(demo_cache.read_back(cache, run)))
        bridge.stop()
        gateway.stop()
        report["bridge_exit_code"] = bridge.proc.returncode if bridge.proc else None
        report["gateway_exit_code"] = gateway.proc.returncode if gateway.proc else None
        report["timings_s"]["total"] = round(time.monotonic() - started, 1)
        return report
    except SuhoError as exc:
        kind = type(exc) if isinstance(exc, DemoError) else DemoError
        raise kind(f"{exc}{_kept_logs(workdir)}") from exc
    except Exception as exc:  # psycopg, nats, OS: one line naming the step, not a traceback
        failed_at = _STEPS[min(len(timings), len(_STEPS) - 1)]
        raise DemoError(f"the demo failed at step {failed_at!r}: {type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
                        f"{_kept_logs(workdir)}") from exc
    finally:
        with contextlib.suppress(Exception):  # a closed pipe must not skip the stopping
            progress("stopping")
        stack.close()


_STEPS = ("servers", "migrate", "accounts", "services", "traffic", "maintain", "report")


def _kept_logs(workdir: Path) -> str:
    """Copy the servers' and services' logs out of the work directory (removed when the demo
    ends) and say where they are."""
    logs = sorted(workdir.rglob("*.log"))
    if not logs:
        return ""
    keep = Path(tempfile.mkdtemp(prefix="suho-demo-logs-"))
    for log in logs:
        with contextlib.suppress(OSError):
            shutil.copy(log, keep / log.name)
    return f" (logs kept in {keep})"


def _drop_logins(url: str, suffix: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(_plain(url), autocommit=True) as conn:
        for name in (f"suho_demo_bridge{suffix}", f"suho_demo_app{suffix}"):
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
