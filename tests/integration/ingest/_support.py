"""Shared by the ingest tests of every database lane: a migrated database with an
``mt5_ingest`` login and registered accounts, a fresh nats-server with the bus contract,
packet and frame generators, and a bridge run in the test's event loop or as a process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from suho_mt5._nats import nats_servers
from suho_mt5._subjects import account_subject, message_id
from suho_mt5.db import psycopg_conninfo
from suho_mt5.ingest import Bridge, BridgeMetrics, BridgeSettings, setup_streams
from suho_mt5.ingest.streams import DEFAULT_CONTRACT, BusContract
from suho_mt5.protocol import (
    AccountSnapshotPacket,
    BrokerQuotePacket,
    HeartbeatPacket,
    OrderEventPacket,
    Packet,
    WireDealType,
    WireOrderState,
    WireOrderType,
    encode_frame,
)
from tests.support.servers import NatsServer, serving

REPO_ROOT = Path(__file__).resolve().parents[3]
INGEST_LOGIN = "suho_bridge_test"
INGEST_PASSWORD = "bridge-pw"
TENANTS = ("acme", "globex.eu", "initech")  # one with a dot: carried escaped on subjects
BASE_TIME = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
BASE_US = int(BASE_TIME.timestamp()) * 1_000_000
TABLE_OF = {"quote": "mt5_broker_quotes", "snapshot": "mt5_account_balance_history",
            "heartbeat": "mt5_ea_heartbeat", "order": "mt5_trade_orders",
            "execution": "mt5_signal_executions"}


def libpq(url: str) -> str:
    """The libpq URI of a SQLAlchemy URL (without ``single_backend``, which libpq refuses)."""
    return psycopg_conninfo(url)[0]


@dataclass
class IngestDb:
    """A migrated database: the superuser URL, the bridge's login URL, the accounts."""

    admin_url: str
    ingest_url: str
    accounts: dict[uuid.UUID, str] = field(default_factory=dict)  # account -> tenant

    def connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(libpq(self.admin_url), autocommit=True)

    def count(self, table: str) -> int:
        with self.connect() as conn:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None
            return int(row[0])

    def counts(self) -> dict[str, int]:
        return {t: self.count(t) for t in TABLE_OF.values()}

    def add_accounts(self, per_tenant: int, tenants: tuple[str, ...] = TENANTS,
                     margin_mode: str | None = None) -> list[uuid.UUID]:
        made: list[uuid.UUID] = []
        with self.connect() as conn:
            for tenant in tenants:
                for _ in range(per_tenant):
                    acc = uuid.uuid4()
                    conn.execute(
                        "INSERT INTO mt5_user_accounts (account_id, tenant_id, user_id,"
                        " broker_name, broker_server, mt5_login, mt5_account_number,"
                        " account_type, margin_mode) VALUES (%s, %s, 'u', 'Broker',"
                        " 'Broker-Demo', %s, '1', 'demo', %s)",
                        (acc, tenant, (acc.int % 2**62) + 1, margin_mode))
                    self.accounts[acc] = tenant
                    made.append(acc)
        return made


def make_ingest_login(admin_url: str, bypassrls: bool = False) -> str:
    """The URL of a LOGIN in ``mt5_ingest`` on the same database (created once per cluster);
    with ``bypassrls`` one that bypasses row-level security, as docs/ingest.md recommends
    (the writer then COPYs straight into the tables)."""
    login = INGEST_LOGIN + ("_bypass" if bypassrls else "")
    with psycopg.connect(libpq(admin_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone()
        if not exists:
            with contextlib.suppress(psycopg.errors.DuplicateObject):
                conn.execute(f"CREATE ROLE {login} LOGIN PASSWORD '{INGEST_PASSWORD}'"
                             f" {'BYPASSRLS ' if bypassrls else ''}IN ROLE mt5_ingest")
    url = make_url(admin_url).set(username=login, password=INGEST_PASSWORD)
    return url.render_as_string(hide_password=False)


# --------------------------------------------------------------------------- packets

class Feed:
    """Packets of many accounts with per-account sequences, grouped into frames."""

    def __init__(self, accounts: dict[uuid.UUID, str]) -> None:
        self.accounts = accounts
        self.seq: Counter[uuid.UUID] = Counter()

    def packet(self, account: uuid.UUID, kind: str, **over: Any) -> Packet:
        self.seq[account] += 1
        s = self.seq[account]
        ts = over.pop("timestamp_us", BASE_US + s * 1000)
        a = account.bytes
        if kind == "quote":
            return BrokerQuotePacket(s, ts, a, over.get("symbol", "EURUSD"),
                                     over.get("bid", 109_530_000 + s % 500),
                                     over.get("ask", 109_545_000 + s % 500), 0, 100_000_000, 15)
        if kind == "snapshot":
            return AccountSnapshotPacket(s, ts, a, over.get("balance", 100_000_000),
                                         over.get("equity", 100_000_000 + s),
                                         over.get("margin", 0), 100_000_000,
                                         over.get("margin_level", 0), 100,
                                         over.get("currency", "USD"))
        if kind == "heartbeat":
            return HeartbeatPacket(s, ts, a, "1.0.0", over.get("terminal_build", 4410), 12,
                                   True, True)
        if kind == "order":
            return OrderEventPacket(s, ts, a, 10_000 + s, 10_000 + s, "EURUSD", 10_000_000,
                                    109_530_000, 0, 0, 0, -7_0000, 0, 42, WireOrderType.BUY,
                                    WireDealType.BUY, WireOrderState.OPEN)
        raise ValueError(kind)


@dataclass
class Published:
    """What a test published, to compare with the database."""

    per_table: Counter[str] = field(default_factory=Counter)
    messages: int = 0
    packets: int = 0

    @property
    def rows(self) -> int:
        return sum(self.per_table.values())


def frames_for(feed: Feed, total: int, frame_size: int,
               kinds: tuple[str, ...] = ("quote", "quote", "snapshot", "heartbeat", "order"),
               ) -> tuple[list[tuple[str, bytes, str]], Published]:
    """``total`` packets spread over every account and ``kinds``, in frames of at most
    ``frame_size`` packets of one account and kind: ``[(subject, payload, msg_id)]``."""
    accounts = list(feed.accounts)
    groups: dict[tuple[uuid.UUID, str], list[Packet]] = {}
    for i in range(total):
        acc = accounts[i % len(accounts)]
        kind = kinds[(i // len(accounts)) % len(kinds)]
        groups.setdefault((acc, kind), []).append(feed.packet(acc, kind))
    out: list[tuple[str, bytes, str]] = []
    pub = Published()
    for (acc, kind), packets in groups.items():
        for k in range(0, len(packets), frame_size):
            chunk = packets[k : k + frame_size]
            out.append((account_subject(feed.accounts[acc], acc, kind), encode_frame(chunk),
                        message_id(acc, chunk[0].sequence)))
            pub.per_table[TABLE_OF[kind]] += len(chunk)
            pub.packets += len(chunk)
    pub.messages = len(out)
    return out, pub


async def publish_all(js: Any, frames: list[tuple[str, bytes, str]]) -> None:
    for i, (subject, payload, msg_id) in enumerate(frames):
        await js.publish_async(subject, payload, headers={"Nats-Msg-Id": msg_id})
        if i % 2000 == 1999:
            await js.publish_async_completed()
    await js.publish_async_completed()


# --------------------------------------------------------------------------- servers

@contextlib.contextmanager
def nats_server(store: Path | None = None) -> Iterator[NatsServer]:
    def make(workdir: Path) -> NatsServer:
        server = NatsServer(workdir)
        if store is not None:
            server.store_dir = store
        return server

    with serving(make, "nats-ingest") as server:
        yield server


@contextlib.asynccontextmanager
async def jetstream(url: str, contract: BusContract = DEFAULT_CONTRACT,
                    setup: bool = True) -> AsyncIterator[tuple[Any, Any]]:
    import nats

    nc = await nats.connect(servers=nats_servers(url), max_reconnect_attempts=-1,
                            reconnect_time_wait=0.2)
    js = nc.jetstream()
    if setup:
        await setup_streams(js, contract)
    try:
        yield nc, js
    finally:
        await nc.close()


async def consumer_state(js: Any, contract: BusContract = DEFAULT_CONTRACT) -> Any:
    spec = contract.bridge
    return await js.consumer_info(spec.stream, spec.durable)


async def wait_until_drained(js: Any, db: IngestDb, expected_rows: int,
                             contract: BusContract = DEFAULT_CONTRACT,
                             timeout: float = 120.0, dead: int | None = None) -> None:
    """Until every message is acked and the tables hold ``expected_rows``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        info = await consumer_state(js, contract)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            rows = await asyncio.to_thread(lambda: sum(db.counts().values()))
            if rows >= expected_rows and (
                dead is None or await asyncio.to_thread(db.count, "mt5_ingest_dead_letters")
                >= dead
            ):
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not drained in {timeout} s: {await consumer_state(js, contract)}, "
                         f"{db.counts()}")


@contextlib.asynccontextmanager
async def running_bridge(settings: BridgeSettings, metrics: BridgeMetrics | None = None
                         ) -> AsyncIterator[Bridge]:
    bridge = Bridge(settings, metrics)
    task = asyncio.create_task(bridge.run())
    try:
        yield bridge
    finally:
        bridge.stop()
        await asyncio.wait_for(task, 60)


def bridge_process(db_url: str, nats_url: str, *extra: str,
                   log: Path | None = None) -> subprocess.Popen[bytes]:
    """``suho-mt5 ingest run`` as a child process (its own session)."""
    # The test data is dated in the past: no offline marking unless a test asks for it.
    argv = [sys.executable, "-c", "from suho_mt5.cli import main; main()", "ingest", "run",
            "--url", db_url, "--nats-url", nats_url, "--offline-check-every", "3600", *extra]
    out = log.open("ab") if log is not None else None
    try:
        return subprocess.Popen(argv, stdout=out or subprocess.DEVNULL,
                                stderr=out or subprocess.DEVNULL, cwd=REPO_ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                start_new_session=True)
    finally:
        if out is not None:
            out.close()  # the child has its own descriptor


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
                 timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout)


def assert_exactly_once(db: IngestDb, published: Published) -> None:
    counts = db.counts()
    for table, n in published.per_table.items():
        assert counts[table] == n, (table, counts[table], n)
    with db.connect() as conn:
        for table in published.per_table:
            dup = conn.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {table} GROUP BY tenant_id, account_id,"
                " sequence, time HAVING count(*) > 1) d").fetchone()
            assert dup is not None and dup[0] == 0, table


def quick_settings(db: IngestDb, nats_url: str, **over: Any) -> BridgeSettings:
    base: dict[str, Any] = {"url": db.ingest_url, "nats_url": nats_url, "fetch_timeout": 0.5,
                            "offline_check_every": 3600.0, "consumer_poll_every": 0.5}
    base.update(over)
    return BridgeSettings(**base)


def now_us() -> int:
    return int(datetime.now(UTC).timestamp() * 1_000_000)

