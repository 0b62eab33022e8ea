"""Shared by the gateway's integration tests: a migrated database with a gateway login and
accounts, the three JetStream streams, the gateway (in this process or as a process), and
reading back what reached the bus."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import sqlalchemy as sa
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from suho_mt5.db import Edition, make_engine
from suho_mt5.gateway import DatabaseAuthenticator, Gateway, GatewayConfig, GatewayMetrics
from suho_mt5.gateway.simulator import SimAccount
from suho_mt5.protocol import PACKET_SIZE
from tests.db.schema._support import alembic
from tests.support.secrets import find_secrets, register
from tests.support.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[3]
TENANT = "tenant_gw"
OTHER_TENANT = "tenant_other"
KEY = "gw-test-key-0123456789abcdef"
GATEWAY_PASSWORD = "gw-pass-4e1d9c7a"
register(KEY, GATEWAY_PASSWORD)
STREAMS = {
    "MT5_ACCOUNTS": ["mt5.account.>"],
    "MT5_SIGNALS": ["mt5.signal.>"],
    "MT5_COMMANDS": ["mt5.command.>", "mt5.config.>"],
}


@dataclass
class GatewayDb:
    owner_url: str
    gateway_url: str
    """A LOGIN role in mt5_app: what the gateway runs with."""
    accounts: list[SimAccount] = field(default_factory=list)
    other_tenant_account: uuid.UUID = field(default_factory=uuid.uuid4)


def prepare_database(url: str, n_accounts: int, edition: Edition,
                     cheap_from: int | None = None) -> GatewayDb:
    """Migrate ``url`` to ``edition``, create a gateway login and accounts that
    share :data:`KEY` (one bcrypt hash for all: hashing costs ~170 ms).

    Accounts from index ``cheap_from`` on get a bcrypt hash of cost 4 instead of
    ``hash_api_key``'s 12 (``verify_api_key`` reads the cost from the hash): hundreds of EAs
    logging in at once, twice, would otherwise cost minutes of the database's CPU, and what
    their tests measure is the relay, not the hash."""
    engine = make_engine(url)
    role = f"gw_{uuid.uuid4().hex[:10]}"
    try:
        alembic(engine, "upgrade", "head", edition=edition)
        db = GatewayDb(url, str(sa.make_url(url).set(username=role, password=GATEWAY_PASSWORD)
                                .render_as_string(hide_password=False)))
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE ROLE {role} LOGIN PASSWORD '{GATEWAY_PASSWORD}' IN ROLE mt5_app")
            digest = conn.execute(sa.text("SELECT hash_api_key(:k)"), {"k": KEY}).scalar_one()
            cheap = digest
            if cheap_from is not None:
                crypto = conn.execute(sa.text(
                    "SELECT extnamespace::regnamespace::text FROM pg_extension"
                    " WHERE extname = 'pgcrypto'")).scalar_one()
                cheap = conn.execute(sa.text(
                    f"SELECT {crypto}.crypt(:k, {crypto}.gen_salt('bf', 4))"), {"k": KEY}
                ).scalar_one()
            rows = []
            for i in range(n_accounts + 1):
                account = uuid.uuid4()
                tenant = TENANT if i < n_accounts else OTHER_TENANT
                if i < n_accounts:
                    db.accounts.append(SimAccount(account, KEY))
                else:
                    db.other_tenant_account = account
                rows.append({"a": account, "t": tenant, "u": f"user_{i}", "l": 5000 + i,
                             "h": cheap if cheap_from is not None and i >= cheap_from
                             else digest})
            conn.execute(sa.text(
                "INSERT INTO mt5_user_accounts (account_id, tenant_id, user_id, broker_name,"
                " broker_server, mt5_login, mt5_account_number, account_type, api_key_hash)"
                " VALUES (:a, :t, :u, 'ICMarkets', 'ICMarkets-Demo', :l, '1', 'demo', :h)"),
                rows)
        return db
    finally:
        engine.dispose()


async def create_streams(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for name, subjects in STREAMS.items():
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
            await js.add_stream(StreamConfig(name=name, subjects=subjects,
                                             duplicate_window=120))
    finally:
        await nc.close()


async def delete_streams(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for name in STREAMS:
            with contextlib.suppress(Exception):
                await js.delete_stream(name)
    finally:
        await nc.close()


def gateway_config(**overrides: object) -> GatewayConfig:
    settings: dict[str, object] = {"host": "127.0.0.1", "ws_port": 0, "tcp_port": 0,
                                   "metrics_port": 0}
    settings.update(overrides)
    return GatewayConfig(**settings)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running_gateway(db: GatewayDb, nats_url: str, **overrides: object
                          ) -> AsyncIterator[Gateway]:
    """The gateway in this process, on real sockets (ports picked by the OS)."""
    config = gateway_config(**overrides)
    gw = Gateway(config, nats_url=nats_url,
                 metrics=GatewayMetrics(account_labels=config.metrics_account_labels),
                 authenticator=DatabaseAuthenticator(db.gateway_url, workers=2))
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


def metric(gw: Gateway, name: str, **labels: str) -> float:
    value = gw.metrics.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


class GatewayProcess:
    """``suho-mt5 gateway run`` as a child process (stop with SIGKILL to simulate a crash)."""

    def __init__(self, db: GatewayDb, nats_url: str, log_path: Path, *,
                 extra: list[str] | None = None) -> None:
        self.db = db
        self.nats_url = nats_url
        self.log_path = log_path
        self.ws_port = free_port()
        self.tcp_port = free_port()
        self.metrics_port = free_port()
        self.extra = extra or []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        argv = [sys.executable, "-c", "from suho_mt5.cli import main; main()", "gateway", "run",
                "--url",
                self.db.gateway_url, "--nats-url", self.nats_url, "--host", "127.0.0.1",
                "--ws-port", str(self.ws_port), "--tcp-port", str(self.tcp_port),
                "--metrics-port", str(self.metrics_port), *self.extra]
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=REPO_ROOT,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.metrics_port), 0.2):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gateway not ready: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.check_log()

    def check_log(self) -> None:
        """The gateway's log holds none of the suite's secrets (keys, passwords)."""
        if self.log_path.exists():
            leaks = find_secrets(self.log_path.read_text(errors="replace"))
            assert not leaks, f"secrets in the gateway's log {self.log_path}: {leaks}"

    def rss_bytes(self) -> int:
        import psutil

        assert self.proc is not None
        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def url(self, transport: str) -> str:
        port = self.ws_port if transport == "ws" else self.tcp_port
        return f"{transport}://127.0.0.1:{port}"


@contextlib.contextmanager
def gateway_process(db: GatewayDb, nats_url: str, tmp_path: Path, **kw: object
                    ) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(db, nats_url, tmp_path / "gateway.log", **kw)  # type: ignore[arg-type]
    try:
        yield proc.start()
    finally:
        proc.stop()


async def stored_packets(js: JetStreamContext, stream: str = "MT5_ACCOUNTS"
                         ) -> tuple[Counter[tuple[str, int]], list[str]]:
    """Every packet stored in ``stream``: (account, sequence) -> how many times, and the
    subjects of the frames, in stream order."""
    info = await js.stream_info(stream)
    counts: Counter[tuple[str, int]] = Counter()
    subjects: list[str] = []
    total = info.state.messages
    if total == 0:
        return counts, subjects
    sub = await js.pull_subscribe(">", stream=stream,
                                  config=ConsumerConfig(ack_policy=AckPolicy.NONE))
    try:
        while len(subjects) < total:
            for msg in await sub.fetch(min(1000, total - len(subjects)), timeout=5):
                subjects.append(msg.subject)
                data = msg.data
                assert len(data) % PACKET_SIZE == 0
                for off in range(0, len(data), PACKET_SIZE):
                    account = str(uuid.UUID(bytes=data[off + 24:off + 40]))
                    seq = int.from_bytes(data[off + 8:off + 16], "little")
                    counts[(account, seq)] += 1
    finally:
        await sub.unsubscribe()
    return counts, subjects


async def wait_for(predicate: object, timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Poll an async or sync predicate until true or ``timeout``; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result or time.monotonic() > deadline:
            return bool(result)
        await asyncio.sleep(interval)


def signal_packet(account: uuid.UUID, signal_id: uuid.UUID | None = None) -> bytes:
    """A SIGNAL as the backend publishes it (its ``sequence`` is replaced by the gateway)."""
    from suho_mt5.protocol import SignalPacket, WireAction, encode

    return encode(SignalPacket(0, time.time_ns() // 1000, account.bytes,
                               (signal_id or uuid.uuid4()).bytes, "EURUSD", 109_530_000,
                               109_320_000, 109_820_000, 10_000_000, 0, 8_500, WireAction.BUY))


async def publish_signals(js: JetStreamContext, account: uuid.UUID, count: int,
                          tenant: str = TENANT) -> list[uuid.UUID]:
    from suho_mt5._subjects import outbound_subject

    ids = [uuid.uuid4() for _ in range(count)]
    for signal_id in ids:
        await js.publish(outbound_subject("signal", tenant, account),
                         signal_packet(account, signal_id))
    return ids


async def stored_executions(js: JetStreamContext) -> Counter[uuid.UUID]:
    """signal_id -> number of EXECUTION_REPORT packets for it on the bus."""
    from suho_mt5.protocol import ExecutionReportPacket, decode_frame

    info = await js.stream_info("MT5_ACCOUNTS")
    out: Counter[uuid.UUID] = Counter()
    if info.state.messages == 0:
        return out
    sub = await js.pull_subscribe("mt5.account.*.*.execution", stream="MT5_ACCOUNTS",
                                  config=ConsumerConfig(ack_policy=AckPolicy.NONE))
    try:
        while True:
            try:
                msgs = await sub.fetch(1000, timeout=1)
            except Exception:
                break
            for msg in msgs:
                for packet in decode_frame(msg.data):
                    assert isinstance(packet, ExecutionReportPacket)
                    out[uuid.UUID(bytes=packet.signal_id)] += 1
    finally:
        await sub.unsubscribe()
    return out


async def consumers_settled(js: JetStreamContext, accounts: list[uuid.UUID]) -> bool:
    """Every account's signal consumer has delivered and been acked for everything."""
    for account in accounts:
        info = await js.consumer_info("MT5_SIGNALS", f"gw_signal_{account.hex}")
        if info.num_pending or info.num_ack_pending:
            return False
    return True


@contextlib.asynccontextmanager
async def bus_and_bridge(nats_url: str, ingest_url: str
                         ) -> AsyncIterator[tuple[JetStreamContext, Any]]:
    """The bus contract declared, a Data Bridge running in this process with the login
    ``ingest_url``, and a psycopg connection of that login (for ``publish_signal``)."""
    import psycopg

    from suho_mt5.ingest.bridge import Bridge, BridgeSettings
    from suho_mt5.ingest.streams import DEFAULT_CONTRACT, setup_streams
    from tests.integration.ingest._support import libpq

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await setup_streams(js, DEFAULT_CONTRACT)
    bridge = Bridge(BridgeSettings(url=ingest_url, nats_url=nats_url, fetch_timeout=0.5,
                                   offline_check_every=3600.0, consumer_poll_every=0.5))
    bridging = asyncio.create_task(bridge.run())
    db = await psycopg.AsyncConnection.connect(libpq(ingest_url), autocommit=True)
    try:
        yield js, db
    finally:
        bridge.stop()
        await asyncio.wait_for(bridging, 60)
        await db.close()
        await nc.close()


#: where the Data Bridge writes each kind of EA packet (one row per packet)
TABLES = ("mt5_broker_quotes", "mt5_account_balance_history", "mt5_ea_heartbeat",
          "mt5_trade_orders", "mt5_signal_executions")


def rows_in_database(url: str, accounts: list[uuid.UUID]) -> Counter[tuple[str, int]]:
    """(account, sequence) -> rows holding it, over the tables the bridge writes."""
    engine = make_engine(url)
    rows: Counter[tuple[str, int]] = Counter()
    try:
        with engine.connect() as conn:
            for table in TABLES:
                for account, sequence, n in conn.execute(sa.text(
                        f"SELECT account_id, sequence, count(*) FROM {table}"
                        " WHERE account_id = ANY(:a) AND sequence IS NOT NULL"
                        " GROUP BY 1, 2"), {"a": accounts}):
                    rows[(str(account), int(sequence))] += int(n)
    finally:
        engine.dispose()
    return rows


async def assert_in_database_once(js: JetStreamContext, db_url: str, eas: list[Any],
                                  published: set[uuid.UUID], timeout: float = 90.0) -> None:
    """The Data Bridge has caught up with the bus; every data packet the simulated EAs
    numbered is in the database once, and each signal of ``published`` is ``executed``
    (its EXECUTION_REPORT closed the loop)."""
    import psycopg

    from suho_mt5.ingest.streams import DEFAULT_CONTRACT
    from tests.integration.ingest._support import libpq

    async def bridged() -> bool:
        info = await js.consumer_info("MT5_ACCOUNTS", DEFAULT_CONTRACT.bridge.durable)
        return not (info.num_pending or info.num_ack_pending)

    assert await wait_for(bridged, timeout, 0.2), "the bridge did not catch up"
    expected = {(str(ea.account.account_id), seq) for ea in eas for seq in ea.stats.data_sent}
    in_db = await asyncio.to_thread(rows_in_database, db_url,
                                    [ea.account.account_id for ea in eas])
    assert set(in_db) == expected, "the database misses or has extra packets"
    assert set(in_db.values()) == {1}, "a packet is in the database twice"
    async with await psycopg.AsyncConnection.connect(libpq(db_url)) as conn, \
            conn.cursor() as cur:
        await cur.execute("SELECT status, count(*) FROM mt5_trading_signals"
                          " WHERE signal_id = ANY(%s) GROUP BY 1", (list(published),))
        assert {str(k): v for k, v in await cur.fetchall()} == {"executed": len(published)}
