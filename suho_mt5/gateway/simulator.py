"""EA simulator: many Expert Advisors over real sockets, behaving like careful EAs.

Each simulated EA authenticates with HELLO, streams quotes, account snapshots, heartbeats
and order events at the seed's per-account rates (or ``speed`` times faster), executes the
signals it receives (once per ``signal_id``) and reports each with an EXECUTION_REPORT, ACKs
everything the backend sends, and on any disconnect reconnects, resumes from what WELCOME
says and resends its outbox (data packets not yet covered by a cumulative ACK).

``suho-mt5 simulate`` runs it from the command line; tests and benchmarks call
:func:`simulate` or drive :class:`SimulatedEA` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from suho_mt5.errors import (
    ConfigError,
    GatewayError,
    ProtocolError,
    SessionClosedError,
    SessionRefusedError,
)
from suho_mt5.protocol import (
    AccountSnapshotPacket,
    AckPacket,
    BrokerQuotePacket,
    CommandPacket,
    ConfigPacket,
    ErrorPacket,
    ExecutionReportPacket,
    GoodbyePacket,
    HeartbeatPacket,
    MessageType,
    OrderEventPacket,
    Packet,
    SignalPacket,
    WireDealType,
    WireOrderState,
    WireOrderType,
    encode,
)

from .client import EAConnection, Resume, open_connection

__all__ = [
    "Rates",
    "SimAccount",
    "SimulatedEA",
    "SimulationReport",
    "load_accounts",
    "provision_accounts",
    "simulate",
]

_SYMBOLS = (("EURUSD", 109_530_000), ("GBPUSD", 126_120_000), ("XAUUSD", 265_010_000_000))


@dataclass(frozen=True, slots=True)
class SimAccount:
    account_id: uuid.UUID
    api_key: str


@dataclass(frozen=True, slots=True)
class Rates:
    """Per-account rates; the defaults are the seed's records per day per account."""

    quotes_per_s: float = 1.0  # 86,400 a day
    snapshot_every_s: float = 30.0  # 2,880 a day
    heartbeat_every_s: float = 30.0  # 2,880 a day
    orders_per_day: float = 50.0
    speed: float = 1.0
    """Multiplies every rate (``--speed``)."""

    def interval(self, per_s: float) -> float:
        return 1.0 / (per_s * self.speed) if per_s > 0 else float("inf")


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class EAStats:
    sessions: int = 0
    refused: int = 0
    close_codes: Counter[int] = field(default_factory=Counter)
    data_sent: list[int] = field(default_factory=list)
    """Sequences of the data packets this EA numbered (each must be stored exactly once)."""
    resent: int = 0
    signals: list[tuple[int, bytes, int, int]] = field(default_factory=list)
    """(sequence, signal_id, timestamp_us, received_ns) of every SIGNAL received first time."""
    duplicate_signals: int = 0
    executions: int = 0
    commands: int = 0
    errors: Counter[str] = field(default_factory=Counter)


class SimulatedEA:
    """One simulated EA; :meth:`run` until a deadline, reconnecting as needed."""

    def __init__(self, account: SimAccount, url: str, rates: Rates = Rates(), *,
                 seed: int | None = None, reconnect_delay_s: float = 0.2,
                 record: Callable[[bytes], object] | None = None) -> None:
        self.account = account
        #: Called with every data packet when it is first sent (not on a resend): the
        #: stream ``suho-mt5 ingest replay`` reads back.
        self.record = record
        self.url = url
        self.rates = rates
        self.rng = random.Random(seed if seed is not None else account.account_id.int)
        self.reconnect_delay_s = reconnect_delay_s
        self.next_sequence = 1
        self.outbox: deque[tuple[int, bytes]] = deque()
        self.handled = {"signal": 0, "command": 0, "config": 0}
        self.executed: set[bytes] = set()
        self.stats = EAStats()
        self.conn: EAConnection | None = None
        self.stop_producing = asyncio.Event()
        self.connected = asyncio.Event()
        self.on_signal: Callable[[SignalPacket], None] | None = None
        self.paused = False
        self._received_ns = 0

    @property
    def acc(self) -> bytes:
        return self.account.account_id.bytes

    def _number(self) -> int:
        seq = self.next_sequence
        self.next_sequence += 1
        return seq

    async def _send_data(self, build: Callable[[int], Packet]) -> None:
        seq = self._number()
        data = encode(build(seq))
        if self.record is not None:
            self.record(data)
        self.outbox.append((seq, data))
        self.stats.data_sent.append(seq)
        if self.conn is not None and self.connected.is_set():
            with contextlib.suppress(SessionClosedError):
                await self.conn.send_raw(data)

    async def _send_control(self, packet_of: Callable[[int], Packet]) -> None:
        if self.conn is not None and self.connected.is_set():
            with contextlib.suppress(SessionClosedError):
                await self.conn.send(packet_of(self._number()))

    # -- one session ------------------------------------------------------------------------

    async def session(self) -> None:
        """Connect, HELLO, resend the outbox, then stream until the connection ends."""
        conn = await open_connection(self.url)
        self.conn = conn
        try:
            resume = Resume(self.handled["signal"], self.handled["command"],
                            self.handled["config"])
            welcome = await conn.hello(self.account.account_id, self.account.api_key, resume)
            self.stats.sessions += 1
            last = welcome.last_accepted_sequence
            # An EA that lost its counter continues after what the backend has stored.
            self.next_sequence = max(self.next_sequence, last + 1)
            while self.outbox and self.outbox[0][0] <= last:
                self.outbox.popleft()
            if self.outbox:
                self.stats.resent += len(self.outbox)
                await conn.send_raw(b"".join(data for _, data in self.outbox))
            self.connected.set()
            self._received_ns = conn.received_ns
            for packet in conn.early_packets():
                await self._handle(packet)
            producer = asyncio.create_task(self._produce())
            try:
                while True:
                    packets = await conn.recv()
                    if not packets:
                        break
                    self._received_ns = conn.received_ns
                    for packet in packets:
                        await self._handle(packet)
            finally:
                producer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await producer
        finally:
            self.connected.clear()
            if conn.close_code is not None:
                self.stats.close_codes[conn.close_code] += 1
            await conn.close()
            self.conn = None

    async def _handle(self, packet: Packet) -> None:
        if isinstance(packet, SignalPacket):
            await self._on_signal(packet)
        elif isinstance(packet, CommandPacket | ConfigPacket):
            channel = "command" if isinstance(packet, CommandPacket) else "config"
            if packet.sequence > self.handled[channel]:
                self.handled[channel] = packet.sequence
                self.stats.commands += 1
            await self._ack(packet.sequence, packet.MESSAGE_TYPE)
        elif isinstance(packet, AckPacket):
            while self.outbox and self.outbox[0][0] <= packet.acked_sequence:
                self.outbox.popleft()
        elif isinstance(packet, ErrorPacket):
            self.stats.errors[packet.code.name] += 1
        elif isinstance(packet, GoodbyePacket):
            pass  # the close follows; EAConnection noted the code

    async def _on_signal(self, sig: SignalPacket) -> None:
        # When its bytes reached the process, not now: with hundreds of EAs in one event
        # loop, "now" would add this process's own queue to the measured latency.
        received = self._received_ns or time.time_ns()
        if sig.sequence <= self.handled["signal"]:
            self.stats.duplicate_signals += 1
            await self._ack(sig.sequence, MessageType.SIGNAL)
            return
        self.stats.signals.append((sig.sequence, sig.signal_id, sig.timestamp_us, received))
        if self.on_signal is not None:
            self.on_signal(sig)
        if sig.signal_id not in self.executed:
            self.executed.add(sig.signal_id)
            self.stats.executions += 1
            ticket = self.rng.randrange(1, 2**40)
            price = sig.entry_price or 109_531_000
            await self._send_data(lambda seq: ExecutionReportPacket(
                seq, _now_us(), self.acc, sig.signal_id, ticket, price, 1_000, 10009))
            self.after_execution(sig, ticket, price)
        self.handled["signal"] = sig.sequence
        await self._ack(sig.sequence, MessageType.SIGNAL)

    def after_execution(self, sig: SignalPacket, ticket: int, price: int) -> None:
        """Called once per executed signal with the position's ticket and entry price (raw
        fixed point): a subclass can close the trade later (the demo does)."""

    async def _ack(self, sequence: int, mtype: MessageType) -> None:
        await self._send_control(lambda seq: AckPacket(seq, _now_us(), self.acc, sequence, mtype))

    async def _produce(self) -> None:
        rates = self.rates
        loop = asyncio.get_running_loop()
        start = loop.time()
        due = {
            "quote": start + self.rng.uniform(0, rates.interval(rates.quotes_per_s)),
            "snapshot": start + self.rng.uniform(0, rates.interval(1 / rates.snapshot_every_s)),
            "heartbeat": start,
            "order": start + self.rng.expovariate(1 / rates.interval(rates.orders_per_day
                                                                      / 86_400)),
        }
        while not self.stop_producing.is_set():
            kind = min(due, key=due.__getitem__)
            delay = due[kind] - loop.time()
            if delay > 0:
                # A plain sleep (at most 1 s, then the stop flag is checked): wait_for on the
                # event would create a task per packet, hundreds a second in a big fleet.
                await asyncio.sleep(min(delay, 1.0))
                if self.stop_producing.is_set():
                    return
                if loop.time() < due[kind]:
                    continue
            if self.paused:
                due[kind] = loop.time() + 0.05
                continue
            if kind == "quote":
                await self._send_data(self._quote)
                due[kind] += rates.interval(rates.quotes_per_s)
            elif kind == "snapshot":
                await self._send_data(self._snapshot)
                due[kind] += rates.interval(1 / rates.snapshot_every_s)
            elif kind == "heartbeat":
                await self._send_data(lambda s: HeartbeatPacket(
                    s, _now_us(), self.acc, "sim-1.0", 4410, 12, True, True))
                due[kind] += rates.interval(1 / rates.heartbeat_every_s)
            else:
                await self._send_data(self._order)
                due[kind] += self.rng.expovariate(1 / rates.interval(rates.orders_per_day
                                                                     / 86_400))

    def _snapshot(self, seq: int) -> Packet:
        return AccountSnapshotPacket(seq, _now_us(), self.acc, 10_000_0000, 10_012_3400,
                                     217_5000, 9_794_8400, 4_603_3747, 100, "USD")

    def _quote(self, seq: int) -> Packet:
        symbol, price = self.rng.choice(_SYMBOLS)
        bid = price + self.rng.randrange(-50_000, 50_000) * 10
        return BrokerQuotePacket(seq, _now_us(), self.acc, symbol, bid, bid + 20_000, 0,
                                 100_000_000, 2)

    def _order(self, seq: int) -> Packet:
        symbol, price = self.rng.choice(_SYMBOLS)
        ticket = self.rng.randrange(1, 2**40)
        return OrderEventPacket(seq, _now_us(), self.acc, ticket, ticket, symbol, 10_000_000,
                                price, 0, 0, 0, 0, 0, 42, WireOrderType.BUY, WireDealType.BUY,
                                WireOrderState.OPEN)

    # -- the whole run ------------------------------------------------------------------------

    async def run(self, duration_s: float, *, drain_s: float = 10.0,
                  connect_timeout_s: float = 120.0) -> EAStats:
        """Stream for ``duration_s`` from the first WELCOME on, reconnecting whenever the
        connection ends; then stop producing and wait up to ``drain_s`` until every data
        packet is acknowledged. Gives up if no session opens within ``connect_timeout_s``."""
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(self._keep_connected(float("inf")))
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.connected.wait(), connect_timeout_s)
            if self.stats.sessions:
                await asyncio.sleep(duration_s)
            self.stop_producing.set()
            deadline = loop.time() + drain_s
            while self.outbox and loop.time() < deadline:
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if self.conn is not None:
                await self.conn.close()
        return self.stats

    async def _keep_connected(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        delay = self.reconnect_delay_s
        while loop.time() < until:
            try:
                await self.session()
                delay = self.reconnect_delay_s
            except SessionRefusedError as exc:
                self.stats.refused += 1
                delay = max(delay, exc.retry_after_ms / 1000)
            except (SessionClosedError, ProtocolError, OSError, TimeoutError):
                pass
            except Exception as exc:  # a simulated EA never gives up; it counts what it saw
                self.stats.errors[type(exc).__name__] += 1
            # Jitter, so that a gateway restart is not met by every EA at the same instant.
            await asyncio.sleep(delay * self.rng.uniform(0.5, 1.5))
            delay = min(delay * 2, 2.0)


@dataclass
class SimulationReport:
    accounts: int
    sessions: int
    refused: int
    data_packets: int
    unacknowledged: int
    resent: int
    signals: int
    duplicate_signals: int
    executions: int
    close_codes: dict[int, int]
    errors: dict[str, int]
    latency_ms: list[float]
    """Signal timestamp -> receipt by the EA, per signal (same clock when run on one host)."""

    def summary(self) -> str:
        lat = sorted(self.latency_ms)

        def pct(p: float) -> str:
            return f"{lat[min(len(lat) - 1, int(p * len(lat)))]:.2f}" if lat else "-"

        return (
            f"accounts {self.accounts}, sessions {self.sessions}, refused {self.refused}\n"
            f"data packets sent {self.data_packets}, not acknowledged {self.unacknowledged}, "
            f"resent after reconnect {self.resent}\n"
            f"signals received {self.signals} (duplicates {self.duplicate_signals}), "
            f"executed {self.executions}\n"
            f"signal latency ms p50 {pct(0.5)} p99 {pct(0.99)} p99.9 {pct(0.999)}\n"
            f"close codes {dict(self.close_codes)}, errors {dict(self.errors)}"
        )


def report_of(eas: Sequence[SimulatedEA]) -> SimulationReport:
    close_codes: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    latency = []
    for ea in eas:
        close_codes.update(ea.stats.close_codes)
        errors.update(ea.stats.errors)
        latency += [(recv - ts * 1000) / 1e6 for _, _, ts, recv in ea.stats.signals]
    return SimulationReport(
        accounts=len(eas),
        sessions=sum(ea.stats.sessions for ea in eas),
        refused=sum(ea.stats.refused for ea in eas),
        data_packets=sum(len(ea.stats.data_sent) for ea in eas),
        unacknowledged=sum(len(ea.outbox) for ea in eas),
        resent=sum(ea.stats.resent for ea in eas),
        signals=sum(len(ea.stats.signals) for ea in eas),
        duplicate_signals=sum(ea.stats.duplicate_signals for ea in eas),
        executions=sum(ea.stats.executions for ea in eas),
        close_codes=dict(close_codes),
        errors=dict(errors),
        latency_ms=latency,
    )


async def simulate(url: str, accounts: Sequence[SimAccount], duration_s: float,
                   rates: Rates = Rates(), *, drain_s: float = 10.0,
                   record: Callable[[bytes], object] | None = None) -> SimulationReport:
    """Run one :class:`SimulatedEA` per account against the gateway at ``url``; ``record``
    gets every data packet the EAs send, once, in the order they send them."""
    eas = [SimulatedEA(a, url, rates, record=record) for a in accounts]
    await asyncio.gather(*(ea.run(duration_s, drain_s=drain_s) for ea in eas))
    return report_of(eas)


def load_accounts(path: str | Path) -> list[SimAccount]:
    """Accounts from a JSON file: ``[{"account_id": "...", "api_key": "..."}, ...]``."""
    try:
        entries = json.loads(Path(path).read_text("utf-8"))
        return [SimAccount(uuid.UUID(e["account_id"]), str(e["api_key"])) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read simulator accounts from {path}: {exc}") from exc


def provision_accounts(url: str, count: int, tenant_id: str = "tenant_sim"
                       ) -> list[SimAccount]:
    """Create ``count`` demo accounts in ``tenant_id`` sharing one new random API key (one
    slow hash for all). Needs a login that may insert into ``mt5_user_accounts`` (the
    owner, for a demo database)."""
    from sqlalchemy import text

    from suho_mt5.db import make_engine

    key = secrets.token_hex(32)
    base = 100_000_000 + secrets.randbelow(10**9)  # logins unique per broker server
    accounts = [SimAccount(uuid.uuid4(), key) for _ in range(count)]
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            digest = conn.execute(text("SELECT hash_api_key(:k)"), {"k": key}).scalar_one()
            conn.execute(
                text(
                    "INSERT INTO mt5_user_accounts (account_id, tenant_id, user_id,"
                    " broker_name, broker_server, mt5_login, mt5_account_number, account_type,"
                    " api_key_hash) VALUES (:a, :t, :u, 'SimBroker', 'SimBroker-Demo', :l,"
                    " :n, 'demo', :h)"
                ),
                [{"a": a.account_id, "t": tenant_id, "u": f"sim_{i}", "l": base + i,
                  "n": str(base + i), "h": digest} for i, a in enumerate(accounts)],
            )
    except Exception as exc:
        raise GatewayError(f"cannot provision simulator accounts: {exc}") from exc
    finally:
        engine.dispose()
    return accounts
