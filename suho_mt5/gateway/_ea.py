"""One simulated EA: authenticates with HELLO, streams its data packets, executes the
signals it receives (once per ``signal_id``) and reports each with an EXECUTION_REPORT, ACKs
everything the backend sends, and on any disconnect reconnects, resumes from what WELCOME
says and resends its outbox (data packets not yet covered by a cumulative ACK).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from suho_mt5.errors import ProtocolError, SessionClosedError, SessionRefusedError
from suho_mt5.protocol import (
    AckPacket,
    CommandPacket,
    ConfigPacket,
    ErrorPacket,
    ExecutionReportPacket,
    GoodbyePacket,
    MessageType,
    Packet,
    SignalPacket,
    encode,
    now_us,
)

from ._traffic import DEFAULT_RATES, Rates, Schedule, data_packet
from .client import EAConnection, Resume, open_connection

__all__ = ["EAStats", "SimAccount", "SimulatedEA"]


@dataclass(frozen=True, slots=True)
class SimAccount:
    account_id: uuid.UUID
    api_key: str


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

    def __init__(self, account: SimAccount, url: str, rates: Rates = DEFAULT_RATES, *,
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
                seq, now_us(), self.acc, sig.signal_id, ticket, price, 1_000, 10009))
            self.after_execution(sig, ticket, price)
        self.handled["signal"] = sig.sequence
        await self._ack(sig.sequence, MessageType.SIGNAL)

    def after_execution(self, sig: SignalPacket, ticket: int, price: int) -> None:
        """Called once per executed signal with the position's ticket and entry price (raw
        fixed point): a subclass can close the trade later (the demo does)."""

    async def _ack(self, sequence: int, mtype: MessageType) -> None:
        await self._send_control(lambda seq: AckPacket(seq, now_us(), self.acc, sequence, mtype))

    def packet(self, kind: str, seq: int) -> Packet:
        """The data packet of ``kind`` (``quote``, ``snapshot``, ``heartbeat``, ``order``)
        numbered ``seq``: a subclass streams its own prices and trades (the demo's EA)."""
        return data_packet(kind, self.rng, self.acc, seq)

    async def _produce(self) -> None:
        loop = asyncio.get_running_loop()
        schedule = Schedule(self.rates, self.rng, loop.time())
        while not self.stop_producing.is_set():
            kind, due = schedule.next()
            delay = due - loop.time()
            if delay > 0:
                # A plain sleep (at most 1 s, then the stop flag is checked): wait_for on the
                # event would create a task per packet, hundreds a second in a big fleet.
                await asyncio.sleep(min(delay, 1.0))
                if self.stop_producing.is_set():
                    return
                if loop.time() < due:
                    continue
            if self.paused:
                schedule.due[kind] = loop.time() + 0.05
                continue
            await self._send_data(functools.partial(self.packet, kind))
            schedule.advance(kind)

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
