"""nats-server's store disk full while an EA streams (docs/security.md, "Faults"): the EA is
told why with a GOODBYE, nothing acknowledged is lost, and once space returns (and the
operator restarts nats-server on the same store) the EA resends and everything it sent is in
the stream exactly once.

The store is a 16 MB tmpfs mounted by the test (root only). nats-server sizes JetStream to
75% of the free space at its start (12 MB here) and the streams have no byte limit, so a
filler file written after the start fills the *disk* (ENOSPC), not a JetStream limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest

from suho_mt5.errors import ProtocolError, SessionClosedError, SessionRefusedError
from suho_mt5.gateway import (
    EAConnection,
    Gateway,
    GatewayConfig,
    StaticAuthenticator,
    open_connection,
)
from suho_mt5.protocol import AckPacket, BrokerQuotePacket, CloseCode, ErrorPacket, now_us
from tests.support.servers import NatsServer, serving
from tests.timescale.gateway._support import create_streams, stored_packets

pytestmark = pytest.mark.timeout(120)

KEY = "store-full-key-4f7a2c"
PUBLISH_FAILED = "cannot publish to the bus: "


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "16m") -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("filling nats-server's disk needs a tmpfs of its own: mount needs root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(path)], capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs on {path}: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the disk is full; the bytes written."""
    written = 0
    with path.open("wb") as filler:
        try:
            while True:
                written += filler.write(bytes(1 << 16))
                filler.flush()
        except OSError:
            pass
    return written


@dataclass
class Ea:
    """One EA streaming quotes: what it sent, the highest ACK, the replays refused."""

    account: uuid.UUID
    conn: EAConnection | None = None
    sent: int = 0
    acked: int = 0
    replayed: list[int] = field(default_factory=list)
    goodbye_at: float = 0.0

    def quotes(self, first: int, last: int) -> list[BrokerQuotePacket]:
        ts = now_us()
        return [BrokerQuotePacket(seq, ts + seq, self.account.bytes, "EURUSD",
                                  109_531_000 + seq % 100, 109_533_000 + seq % 100, 0, 0, 2)
                for seq in range(first, last + 1)]

    async def send(self, first: int, last: int) -> None:
        assert self.conn is not None
        for start in range(first, last + 1, 20):
            await self.conn.send(*self.quotes(start, min(start + 19, last)))
        self.sent = max(self.sent, last)

    async def read(self, until: float, acked: int | None = None) -> None:
        """ACKs and ERRORs until the connection ends, the time is up or ``acked`` is."""
        assert self.conn is not None
        while time.monotonic() < until and (acked is None or self.acked < acked):
            try:
                packets = await self.conn.recv(max(0.01, until - time.monotonic()))
            except TimeoutError:
                return
            if not packets:
                return
            if self.conn.close_code is not None and not self.goodbye_at:
                self.goodbye_at = time.monotonic()
            for packet in packets:
                if isinstance(packet, AckPacket):
                    self.acked = max(self.acked, packet.acked_sequence)
                elif isinstance(packet, ErrorPacket):
                    self.replayed.append(packet.ref_sequence)

    async def wait_acked(self, sequence: int, timeout: float = 10.0) -> None:
        until = time.monotonic() + timeout
        await self.read(until, sequence)
        assert self.acked >= sequence, f"ACK {self.acked} < {sequence}"


async def hello(gateway: Gateway, account: uuid.UUID, timeout: float = 15.0
                ) -> tuple[EAConnection | None, str]:
    """HELLO once: the open connection, or None and what refused it."""
    conn = await open_connection(f"tcp://127.0.0.1:{gateway.tcp_port}")
    try:
        await conn.hello(account, KEY, timeout=timeout)
    except (SessionRefusedError, SessionClosedError, TimeoutError) as exc:
        await conn.close()
        return None, f"{type(exc).__name__}: {exc}"
    except ProtocolError:  # a GOODBYE instead of the WELCOME
        await conn.close()
        return None, f"GOODBYE {conn.close_code}: {conn.close_reason}"
    return conn, "ACCEPTED"


@pytest.mark.timeout(120)
def test_a_full_store_disk_refuses_publishes_clearly_and_loses_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ea = Ea(uuid.uuid4())
    newcomer = uuid.uuid4()
    report: dict[str, object] = {}

    async def scenario(server: NatsServer) -> None:
        await create_streams(server.url)
        # 1.5 s per PubAck instead of 5 s: the GOODBYE comes 3 x 1.5 s + 1.2 s after the
        # disk fills, not 16 s.
        gateway = Gateway(GatewayConfig(host="127.0.0.1", ws_port=None, tcp_port=0,
                                        publish_timeout_s=1.5),
                          nats_url=server.url,
                          authenticator=StaticAuthenticator({ea.account: ("acme", KEY),
                                                             newcomer: ("acme", KEY)}))
        await gateway.start()
        try:
            ea.conn, _ = await hello(gateway, ea.account)
            assert ea.conn is not None
            for first in range(1, 200, 10):  # 20 frames at least, each acknowledged
                await ea.send(first, first + 9)
                await ea.wait_acked(first + 9)
            report["acked_before_fill"] = ea.acked

            report["filler_bytes"] = fill(store / "filler")
            # The EA keeps streaming into the full disk: the gateway must close it with a
            # GOODBYE that says the bus refused the write.
            started = time.monotonic()
            streaming = asyncio.create_task(ea.send(201, 700))
            reading = asyncio.create_task(ea.read(started + 40))
            await asyncio.sleep(2)
            # A newcomer during the fault is refused (the gateway can neither claim the
            # account in its key-value bucket nor read its last stored sequence).
            conn, outcome = await hello(gateway, newcomer)
            report["newcomer_during_fault"] = outcome
            assert conn is None, "a HELLO was accepted while the bus cannot store"
            await reading
            with contextlib.suppress(SessionClosedError):
                await streaming
            report["goodbye_after_s"] = round(ea.goodbye_at - started, 1)
            report["closed_after_s"] = round(time.monotonic() - started, 1)
            report["goodbye"] = (ea.conn.close_code, ea.conn.close_reason)
            assert ea.conn.close_code == CloseCode.BACKEND_UNAVAILABLE
            reason = ea.conn.close_reason
            assert reason.startswith(PUBLISH_FAILED) and reason[len(PUBLISH_FAILED):], reason
            await ea.conn.close()
            acked_before_fault = ea.acked
            report["acked_before_fault"] = acked_before_fault
            report["sent_before_fault"] = ea.sent

            # The operator's recovery: free space, restart nats-server on the same store
            # (2.9.10 ignores the SIGTERM: restart kills it after a second).
            (store / "filler").unlink()
            stop_started = time.monotonic()
            server.restart(stop_timeout=1)
            report["restart_s"] = round(time.monotonic() - stop_started, 1)
            nc = await nats.connect(server.url)
            try:
                frames_before = (await nc.jetstream().stream_info("MT5_ACCOUNTS")
                                 ).state.messages
            finally:
                await nc.close()

            deadline = time.monotonic() + 20
            while True:
                ea.conn, outcome = await hello(gateway, ea.account, timeout=5)
                if ea.conn is not None or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.5)
            assert ea.conn is not None, f"no session after the restart: {outcome}"
            stored = ea.conn.welcome.last_accepted_sequence  # type: ignore[union-attr]
            report["welcome_last_accepted"] = stored
            assert stored >= acked_before_fault, "an acknowledged packet is gone"
            # The EA resends from its own last ACK: what the bus holds already is refused
            # as a replay (never stored twice), the rest is stored.
            ea.replayed.clear()
            final = ea.sent + 100
            await ea.send(acked_before_fault + 1, final)
            await ea.wait_acked(final)
            report["resent"] = final - acked_before_fault
            report["refused_as_replay"] = len(ea.replayed)
            assert sorted(ea.replayed) == list(range(acked_before_fault + 1, stored + 1))
            await ea.conn.close()
        finally:
            await gateway.stop()

        nc = await nats.connect(server.url)
        try:
            counts, _ = await stored_packets(nc.jetstream())
        finally:
            await nc.close()
        mine = {seq: n for (account, seq), n in counts.items() if account == str(ea.account)}
        report["in_stream"] = len(mine)
        report["frames_before_fault"] = frames_before
        report["duplicates"] = sum(n - 1 for n in mine.values())
        assert set(mine) == set(range(1, final + 1)), "packets missing from the stream"
        assert set(mine.values()) == {1}, "a packet is in the stream twice"

    with small_tmpfs(store):
        def make(workdir: Path) -> NatsServer:
            server = NatsServer(workdir)
            server.store_dir = store / "jetstream"
            return server

        with serving(make, "nats-storefull") as server:
            try:
                asyncio.run(scenario(server))
            finally:
                print("store full:", report)
                marks = ("[WRN]", "[ERR]", "[FTL]", "Trapped", "Restored", "Starting nats",
                         "Server is ready")
                print("nats-server log:", *(line for line in
                                            server.log_path.read_text().splitlines()
                                            if any(mark in line for mark in marks)), sep="\n")
