"""EA gateway: signal latency with 500 connected EAs, and inbound packets/s per transport.

The gateway runs as its own process (accounts from a static table instead of the database:
the benchmark measures the relay, not bcrypt), nats-server as another, and the simulated EAs
in this process; all share the machine's two cores, so every figure includes the EAs' own
work. The baselines are measured in the same run: the same signals through JetStream to a
plain nats-py push consumer (no gateway), and the same frames published straight to
JetStream by one nats-py client.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.js.api import DeliverPolicy, StreamConfig

from suho_mt5._subjects import account_subject, message_id, outbound_subject
from suho_mt5.gateway import open_connection, run_fast
from suho_mt5.gateway.simulator import Rates, SimAccount, SimulatedEA
from suho_mt5.protocol import AckPacket, BrokerQuotePacket, SignalPacket, WireAction, encode

from ._registry import Rate, Row, Section, Settings, section
from ._stats import quantile

REPO_ROOT = Path(__file__).resolve().parents[1]
TENANT = "tenant_bench"
KEY = "bench-key"
STREAMS = {
    "MT5_ACCOUNTS": ["mt5.account.>"],
    "MT5_SIGNALS": ["mt5.signal.>"],
    "MT5_COMMANDS": ["mt5.command.>", "mt5.config.>"],
}
GOAL_P99_MS = 10.0
#: seconds between the last EA's WELCOME and the first timed SIGNAL
SETTLE_S = 10.0


def _accounts(first: int, count: int) -> list[SimAccount]:
    return [SimAccount(uuid.UUID(int=first + i), KEY) for i in range(count)]


def serve(nats_url: str, ws_port: int, tcp_port: int, accounts_file: str,
          metrics_port: int) -> None:
    """The gateway process of the benchmark (``python -c 'from benchmarks.gateway import
    serve; serve(...)'``): static accounts, no database."""
    import logging
    import signal

    from suho_mt5.gateway import Gateway, GatewayConfig, StaticAuthenticator, tune_gc

    logging.basicConfig(level=logging.WARNING)
    accounts = {uuid.UUID(a): (TENANT, KEY) for a in json.loads(Path(accounts_file).read_text())}

    async def main() -> None:
        gw = Gateway(GatewayConfig(host="127.0.0.1", ws_port=ws_port, tcp_port=tcp_port,
                                   metrics_port=metrics_port),
                     nats_url=nats_url, authenticator=StaticAuthenticator(accounts))
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await gw.start()
        tune_gc()  # as suho-mt5 gateway run does
        await stop.wait()
        await gw.stop()

    run_fast(main())


def _hop_quantiles(metrics_port: int) -> dict[str, tuple[float, float]]:
    """hop -> (p50, p99) upper bucket bounds in ms, from the gateway's own histogram."""
    import urllib.request

    from suho_mt5.gateway import signal_hop_bounds

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10
                                  ).read().decode()
    return {hop: (p50, p99) for hop, (_, p50, p99) in signal_hop_bounds(text).items()}


def _loop_name() -> str:
    import importlib.util

    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    return quantile(values, 0.50), quantile(values, 0.99), quantile(values, 0.999)


async def _create_streams(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for name, subjects in STREAMS.items():
        await js.add_stream(StreamConfig(name=name, subjects=subjects, duplicate_window=120))
    await nc.close()


def _signal(account: uuid.UUID) -> bytes:
    return encode(SignalPacket(0, time.time_ns() // 1000, account.bytes, uuid.uuid4().bytes,
                               "EURUSD", 109_530_000, 0, 0, 10_000_000, 0, 8_500,
                               WireAction.BUY))


async def _direct_latency(nats_url: str, count: int, rate: float) -> list[float]:
    """Baseline: JetStream publish -> a plain nats-py push consumer, no gateway."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    account = uuid.UUID(int=10**9)
    subject = outbound_subject("signal", TENANT, account)
    got: list[float] = []
    done = asyncio.Event()

    async def on_msg(msg: object) -> None:
        data = msg.data  # type: ignore[attr-defined]
        ts = int.from_bytes(data[16:24], "little")
        got.append((time.time_ns() - ts * 1000) / 1e6)
        await msg.ack()  # type: ignore[attr-defined]
        if len(got) >= count:
            done.set()

    sub = await js.subscribe(subject, cb=on_msg, manual_ack=True,
                             deliver_policy=DeliverPolicy.NEW)
    for _ in range(count):
        await js.publish(subject, _signal(account))
        await asyncio.sleep(1 / rate)
    await asyncio.wait_for(done.wait(), 30)
    await sub.unsubscribe()
    await nc.close()
    return got


def fleet(ws_url: str, tcp_url: str, first: int, count: int, stream_s: float,
          out_path: str) -> None:
    """The simulated EAs' process of the benchmark: ``count`` EAs (odd ones WebSocket, even
    ones TCP) stream at the seed's rates for ``stream_s`` from their first WELCOME, reconnect
    and resume as needed, drain, and write what they saw to ``out_path`` (JSON). Their own
    process, so that neither their work nor the publisher's shares an event loop with the
    other; each SIGNAL's receipt is stamped when its bytes reached the process."""
    from suho_mt5.gateway import tune_gc

    accounts = _accounts(first, count)

    async def main() -> list[SimulatedEA]:
        eas = [SimulatedEA(a, ws_url if i % 2 else tcp_url, Rates())
               for i, a in enumerate(accounts)]
        tune_gc()
        await asyncio.gather(*(ea.run(stream_s, drain_s=30, connect_timeout_s=120)
                               for ea in eas))
        return eas

    eas = run_fast(main())
    Path(out_path).write_text(json.dumps([{
        "account": ea.account.account_id.hex,
        "sessions": ea.stats.sessions,
        "data_sent": ea.stats.data_sent,
        "outbox": len(ea.outbox),
        "resent": ea.stats.resent,
        "duplicate_signals": ea.stats.duplicate_signals,
        "signals": [[seq, sid.hex(), ts, recv] for seq, sid, ts, recv in ea.stats.signals],
        "errors": dict(ea.stats.errors),
    } for ea in eas]))


class _GatewayProcess:
    """The benchmark's gateway as a child process, restartable on the same ports."""

    def __init__(self, nats_url: str, accounts_file: Path) -> None:
        self.nats_url = nats_url
        self.accounts_file = accounts_file
        self.ws_port, self.tcp_port, self.metrics_port = _free_port(), _free_port(), _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from benchmarks.gateway import serve; import sys; "
             "serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], "
             "int(sys.argv[5]))",
             self.nats_url, str(self.ws_port), str(self.tcp_port), str(self.accounts_file),
             str(self.metrics_port)],
            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        for port in (self.tcp_port, self.ws_port, self.metrics_port):
            _wait_port(port, self.proc)

    def kill(self) -> None:
        """A crash: SIGKILL, nothing flushed, no GOODBYE."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def connected(self) -> int:
        import urllib.request

        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                          timeout=5).read().decode()
        except OSError:
            return 0
        return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("suho_gateway_connected_eas{")))

    def wait_connected(self, count: int, timeout: float = 180) -> int:
        deadline = time.monotonic() + timeout
        while (n := self.connected()) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return n


async def _publish_signals(nats_url: str, accounts: list[SimAccount], count: int,
                           rate: float, baseline: list[float] | None = None
                           ) -> list[uuid.UUID]:
    """``count`` SIGNALs round-robin over ``accounts`` at ``rate`` per second (paced on the
    loop's clock); each packet's timestamp is set just before its JetStream publish.

    With ``baseline``, every fifth SIGNAL is followed by one on a subject no gateway serves,
    consumed here by a plain nats-py push consumer: its latencies (ms) are appended, the
    same path without the gateway, measured at the same moments under the same load."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    loop = asyncio.get_running_loop()
    published: list[uuid.UUID] = []
    sub = None
    direct = uuid.UUID(int=10**9 + 1)
    direct_subject = outbound_subject("signal", TENANT, direct)
    if baseline is not None:
        got = baseline

        async def on_msg(msg: object) -> None:
            now = time.time_ns()
            ts = int.from_bytes(msg.data[16:24], "little")  # type: ignore[attr-defined]
            got.append((now - ts * 1000) / 1e6)
            await msg.ack()  # type: ignore[attr-defined]

        sub = await js.subscribe(direct_subject, cb=on_msg, manual_ack=True,
                                 deliver_policy=DeliverPolicy.NEW)
    start = loop.time()
    for i in range(count):
        account = accounts[i % len(accounts)].account_id
        packet = _signal(account)
        published.append(uuid.UUID(bytes=packet[40:56]))
        await js.publish(outbound_subject("signal", TENANT, account), packet)
        if sub is not None and i % 5 == 0:
            await js.publish(direct_subject, _signal(direct))
        delay = start + (i + 1) / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    if sub is not None:
        await asyncio.sleep(1.0)
        await sub.unsubscribe()
    await nc.close()
    return published


@dataclass
class _Fleet:
    latency: list[float]
    connected: int
    reconnected: int
    sessions: int
    numbered: int
    stored_once: int
    stored_twice_or_more: int
    signals: int
    executed_once: int
    received_once: int
    duplicate_signals: int
    consumers_settled: int
    load: float
    hops: dict[str, tuple[float, float]]
    rss_mb: float
    beside: list[float]


def _start_fleet(gw: _GatewayProcess, n_eas: int, stream_s: float, out: Path
                 ) -> subprocess.Popen[bytes]:
    """The :func:`fleet` process: EAs of accounts 1..``n_eas`` on ``gw``, writing ``out``."""
    return subprocess.Popen(
        [sys.executable, "-c", "from benchmarks.gateway import fleet; import sys; "
         "fleet(sys.argv[1], sys.argv[2], 1, int(sys.argv[3]), float(sys.argv[4]), "
         "sys.argv[5])",
         f"ws://127.0.0.1:{gw.ws_port}", f"tcp://127.0.0.1:{gw.tcp_port}", str(n_eas),
         str(stream_s), str(out)],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def _run_fleet(gw: _GatewayProcess, nats_url: str, workdir: Path, n_eas: int, count: int,
               rate: float, stream_s: float) -> _Fleet:
    """The fleet's run: all connected, ``count`` SIGNALs for the latency figures, then the
    gateway crashes (SIGKILL) and restarts while more SIGNALs are published (some while it is
    down); at the end every packet and signal is counted on the bus."""
    accounts = _accounts(1, n_eas)
    out = workdir / "fleet.json"
    proc = _start_fleet(gw, n_eas, stream_s, out)
    try:
        connected = gw.wait_connected(n_eas)
        # Steady state: the first seconds after hundreds of EAs connected at once (their
        # 3 consumers each just created in JetStream, every EA's first HEARTBEAT) are
        # measured by no one here; see docs/gateway.md, "Measured".
        time.sleep(SETTLE_S)
        beside: list[float] = []
        timed = run_fast(_publish_signals(nats_url, accounts, count, rate, beside))
        load = os.getloadavg()[0]
        time.sleep(1.0)
        hops = _hop_quantiles(gw.metrics_port)
        import psutil

        assert gw.proc is not None
        rss_mb = psutil.Process(gw.proc.pid).memory_info().rss / 2**20
        gw.kill()
        # Published while the gateway is down (n_eas / rate seconds), then after it is back.
        down = run_fast(_publish_signals(nats_url, accounts, n_eas, rate))
        gw.start()
        reconnected = gw.wait_connected(n_eas)
        after = run_fast(_publish_signals(nats_url, accounts, n_eas, rate))
        proc.wait(stream_s + 300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    eas = json.loads(out.read_text())
    timed_ids = {sid.hex for sid in timed}
    latency = [(recv - ts * 1000) / 1e6 for ea in eas for _, sid, ts, recv in ea["signals"]
               if sid in timed_ids]
    dump = os.environ.get("SUHO_BENCH_GATEWAY_DUMP")
    if dump:  # every timed signal: account, publish time (us), latency (ms); for diagnosis
        Path(dump).write_text(json.dumps([
            [ea["account"], ts, (recv - ts * 1000) / 1e6] for ea in eas
            for _, sid, ts, recv in ea["signals"] if sid in timed_ids]))
    received: dict[str, int] = {}
    for ea in eas:
        for _, sid, _, _ in ea["signals"]:
            received[sid] = received.get(sid, 0) + 1
    published = timed + down + after
    stored, executions = run_fast(_bus_counts(nats_url, accounts))
    numbered = {(uuid.UUID(ea["account"]).bytes, seq) for ea in eas for seq in ea["data_sent"]}
    return _Fleet(
        latency, connected, reconnected, sum(ea["sessions"] for ea in eas), len(numbered),
        sum(1 for k in numbered if stored[0].get(k) == 1),
        sum(1 for n in stored[0].values() if n > 1), len(published),
        sum(1 for sid in published if executions.get(sid) == 1),
        sum(1 for sid in published if received.get(sid.hex) == 1),
        sum(ea["duplicate_signals"] for ea in eas), stored[1], load, hops, rss_mb, beside)


async def _bus_counts(nats_url: str, accounts: list[SimAccount]
                      ) -> tuple[tuple[dict[tuple[bytes, int], int], int],
                                 dict[uuid.UUID, int]]:
    """What is on the bus: (stored packets, consumers settled), executions per signal."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    settled = 0
    deadline = time.monotonic() + 60
    while True:  # the last ACKs may still be on their way
        settled = 0
        for a in accounts:
            info = await js.consumer_info("MT5_SIGNALS", f"gw_signal_{a.account_id.hex}")
            settled += not (info.num_pending or info.num_ack_pending)
        if settled == len(accounts) or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    stored, executions = await _read_bus(js)
    await nc.close()
    return (stored, settled), executions


async def _read_bus(js: object) -> tuple[dict[tuple[bytes, int], int],
                                         dict[uuid.UUID, int]]:
    """(account, sequence) -> times stored, and signal_id -> EXECUTION_REPORTs stored."""
    from collections import Counter

    from nats.js.api import AckPolicy, ConsumerConfig

    stored: Counter[tuple[bytes, int]] = Counter()
    executions: Counter[uuid.UUID] = Counter()
    info = await js.stream_info("MT5_ACCOUNTS")  # type: ignore[attr-defined]
    total = info.state.messages
    sub = await js.pull_subscribe(  # type: ignore[attr-defined]
        ">", stream="MT5_ACCOUNTS", config=ConsumerConfig(ack_policy=AckPolicy.NONE))
    seen = 0
    while seen < total:
        for msg in await sub.fetch(min(1000, total - seen), timeout=10):
            seen += 1
            data = msg.data
            for off in range(0, len(data), 144):
                stored[(data[off + 24:off + 40], int.from_bytes(data[off + 8:off + 16],
                                                                "little"))] += 1
                if data[off + 5] == 0x05:  # EXECUTION_REPORT
                    executions[uuid.UUID(bytes=data[off + 40:off + 56])] += 1
    await sub.unsubscribe()
    return stored, executions


async def _gateway_inbound(url: str, accounts: list[SimAccount], seconds: float) -> float:
    """Quote frames of 100 packets sent as fast as the gateway takes them, by several
    connections; packets per second acknowledged (stored on JetStream)."""
    batch = 100

    async def one(account: SimAccount) -> int:
        conn = await open_connection(url)
        welcome = await conn.hello(account.account_id, account.api_key)
        seq = welcome.last_accepted_sequence
        acc = account.account_id.bytes
        sent = 0
        acked = seq
        end = time.monotonic() + seconds

        async def read_acks() -> None:
            nonlocal acked
            while True:
                packets = await conn.recv()
                if not packets:
                    return
                for p in packets:
                    if isinstance(p, AckPacket):
                        acked = max(acked, p.acked_sequence)

        reader = asyncio.create_task(read_acks())
        now = time.time_ns() // 1000
        while time.monotonic() < end:
            frame = b"".join(encode(BrokerQuotePacket(seq + i + 1, now, acc, "EURUSD",
                                                      109_531_000, 109_533_000, 0, 0, 2))
                             for i in range(batch))
            seq += batch
            sent += batch
            await conn.send_raw(frame)
            while seq - acked > 20 * batch:  # keep the pipe full, not the gateway's memory
                await asyncio.sleep(0.001)
        while acked < seq:
            await asyncio.sleep(0.01)
        reader.cancel()
        await conn.close()
        return sent

    start = time.perf_counter()
    totals = await asyncio.gather(*(one(a) for a in accounts))
    return sum(totals) / (time.perf_counter() - start)


async def _direct_inbound(nats_url: str, seconds: float) -> float:
    """Baseline: the same 100-packet frames published straight to JetStream, one client,
    each publish awaited in turn (what the gateway does per connection)."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    account = uuid.UUID(int=2 * 10**9)
    subject = account_subject(TENANT, account, "quote")
    seq = 0
    end = time.monotonic() + seconds
    start = time.perf_counter()
    while time.monotonic() < end:
        frame = b"".join(encode(BrokerQuotePacket(seq + i + 1, 0, account.bytes, "EURUSD", 1,
                                                  2, 0, 0, 2)) for i in range(100))
        await js.publish(subject, frame, headers={"Nats-Msg-Id": message_id(account, seq + 1)})
        seq += 100
    rate = seq / (time.perf_counter() - start)
    await nc.close()
    return rate


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the benchmark gateway exited")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the benchmark gateway did not start")


@section("EA gateway (suho_mt5.gateway)", order=40)
def gateway_section(settings: Settings) -> Section:
    sys.path.insert(0, str(REPO_ROOT))
    from tests.support.servers import NatsServer

    quick = settings.repeats < 7
    n_eas = 100 if quick else 500
    n_signals = 500 if quick else 3000
    rate = 200.0
    stream_s = 25.0 if quick else 60.0
    inbound_s = 2.0 if quick else 5.0
    workdir = Path(tempfile.mkdtemp(prefix="suho-bench-gw-"))
    nats_server = NatsServer(workdir).start()
    gw: _GatewayProcess | None = None
    try:
        asyncio.run(_create_streams(nats_server.url))
        inbound_accounts = {"ws": _accounts(100_001, 10), "tcp": _accounts(200_001, 10)}
        every = _accounts(1, n_eas) + inbound_accounts["ws"] + inbound_accounts["tcp"]
        accounts_file = workdir / "accounts.json"
        accounts_file.write_text(json.dumps([str(a.account_id) for a in every]))
        gw = _GatewayProcess(nats_server.url, accounts_file)
        gw.start()
        direct = run_fast(_direct_latency(nats_server.url, min(n_signals, 1000), rate))
        fleet = _run_fleet(gw, nats_server.url, workdir, n_eas, n_signals, rate, stream_s)
        latency, connected, hops = fleet.latency, fleet.connected, fleet.hops
        inbound = {t: run_fast(_gateway_inbound(
            f"{t}://127.0.0.1:{gw.ws_port if t == 'ws' else gw.tcp_port}",
            inbound_accounts[t], inbound_s)) for t in ("ws", "tcp")}
        direct_inbound = run_fast(_direct_inbound(nats_server.url, inbound_s))
    finally:
        if gw is not None:
            gw.stop()
        nats_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    p50, p99, p999 = _percentiles(latency)
    d50, d99, d999 = _percentiles(direct)
    b50, b99, b999 = _percentiles(fleet.beside)
    received = len(latency)
    rows = [
        Row(f"signal published -> EA socket receipt, p50 ({connected} EAs connected)", None,
            "ms", measured=p50, note=f"{received} of {n_signals} signals received; "
            f"load average (1 min) {fleet.load:.2f}"),
        Row("same, p99", None, "ms", measured=p99,
            target_text=f"goal < {GOAL_P99_MS:g} ms",
            note="met" if p99 < GOAL_P99_MS else "NOT met"),
        Row("same, p99.9", None, "ms", measured=p999),
        Row(f"goal / p99 ({GOAL_P99_MS:g} ms / measured p99)", None, "x",
            measured=GOAL_P99_MS / p99, target=1.0, target_text=">= 1x"),
        Row("baseline: JetStream publish -> nats-py push consumer, no gateway, alone, p50",
            None, "ms", measured=d50,
            note=f"p99 {d99:.2f} ms, p99.9 {d999:.2f} ms (before the EAs connect)"),
        Row("baseline beside the EAs: the same, interleaved with the timed signals, p50", None,
            "ms", measured=b50, note=f"p99 {b99:.2f} ms, p99.9 {b999:.2f} ms "
            f"({len(fleet.beside)} signals); gateway p99 = {p99 / b99:.1f}x this"),
        Row(f"{n_eas} EAs streaming {stream_s:g} s, gateway crashed (SIGKILL) and restarted "
            "in the middle: sessions opened (2 each)", None, "sessions",
            measured=fleet.sessions, target=2 * n_eas, target_text=f"{2 * n_eas}",
            note=f"{connected} connected before the crash, {fleet.reconnected} after"),
        Row("packets the EAs numbered that are on JetStream exactly once", None, "fraction",
            measured=fleet.stored_once / max(1, fleet.numbered), target=1.0,
            target_text="1", note=f"{fleet.stored_once} of {fleet.numbered}; "
            f"{fleet.stored_twice_or_more} stored more than once"),
        Row("signals (before, during and after the restart) executed exactly once", None,
            "fraction", measured=fleet.executed_once / max(1, fleet.signals), target=1.0,
            target_text="1", note=f"{fleet.executed_once} of {fleet.signals} with one "
            f"EXECUTION_REPORT on the bus; {fleet.received_once} received once, "
            f"{fleet.duplicate_signals} redelivered"),
        Row("signal consumers with nothing pending or unacked at the end (every signal acked)",
            None, "consumers", measured=fleet.consumers_settled, target=n_eas,
            target_text=f"{n_eas}"),
        Row(f"gateway process RSS serving the {n_eas} EAs", None, "MB",
            measured=fleet.rss_mb),
        *(Row(f"gateway's own histogram, hop {hop}: p99 at most", None, "ms",
              measured=p99_bound, note=f"p50 at most {p50_bound:g} ms")
          for hop, (p50_bound, p99_bound) in hops.items()),
        Row("inbound through the gateway, WebSocket (10 connections, 100-packet messages)",
            Rate(inbound["ws"], inbound["ws"]), "packets/s",
            note=f"{inbound['ws'] / direct_inbound:.2f}x direct publish"),
        Row("inbound through the gateway, TCP stream (10 connections)",
            Rate(inbound["tcp"], inbound["tcp"]), "packets/s",
            note=f"{inbound['tcp'] / direct_inbound:.2f}x direct publish"),
        Row("baseline: the same frames published straight to JetStream, one client",
            Rate(direct_inbound, direct_inbound), "packets/s", target_text="baseline"),
    ]
    intro = (
        f"{n_eas} simulated EAs (half WebSocket, half TCP; their own process) connected to a "
        f"gateway process, streaming at the seed's per-account rates; {n_signals} SIGNALs "
        f"published round-robin at {rate:g}/s by a third process for the latency figures "
        f"({SETTLE_S:g} s after the last EA connected), "
        f"then the gateway is killed (SIGKILL) and restarted while {2 * n_eas} more are "
        "published (half while it is down). Latency is the SIGNAL's timestamp (set just "
        "before the JetStream publish) to the moment its bytes reached the EAs' process "
        "(stamped by the event loop's read callback), on one clock; it includes JetStream's "
        "store, the gateway and both sockets, all on the same two cores as nats-server and "
        f"the EAs. Event loop: {_loop_name()} (gateway, EAs and publisher). "
        "Latencies in ms; `median` is the measured value. "
        f"Signals: {statistics.fmean(latency) if latency else 0:.2f} ms mean."
    )
    return Section("EA gateway (suho_mt5.gateway)", intro, rows)
