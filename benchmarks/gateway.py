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

REPO_ROOT = Path(__file__).resolve().parents[1]
TENANT = "tenant_bench"
KEY = "bench-key"
STREAMS = {
    "MT5_ACCOUNTS": ["mt5.account.>"],
    "MT5_SIGNALS": ["mt5.signal.>"],
    "MT5_COMMANDS": ["mt5.command.>", "mt5.config.>"],
}
GOAL_P99_MS = 10.0


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

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10
                                  ).read().decode()
    buckets: dict[str, list[tuple[float, float]]] = {}
    for line in text.splitlines():
        if line.startswith("suho_gateway_signal_hop_seconds_bucket{"):
            labels, value = line[len("suho_gateway_signal_hop_seconds_bucket{"):].split("} ")
            parts = dict(p.split("=") for p in labels.split(","))
            le = parts["le"].strip('"')
            buckets.setdefault(parts["hop"].strip('"'), []).append(
                (float("inf") if le == "+Inf" else float(le), float(value)))
    out = {}
    for hop, points in buckets.items():
        total = points[-1][1] or 1.0

        def bound(q: float, points: list[tuple[float, float]] = points,
                  total: float = total) -> float:
            return next(le for le, n in points if n >= q * total) * 1000

        out[hop] = (bound(0.5), bound(0.99))
    return out


def _loop_name() -> str:
    import importlib.util

    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentiles(values: list[float]) -> tuple[float, float, float]:
    data = sorted(values)

    def at(p: float) -> float:
        return data[min(len(data) - 1, int(p * len(data)))]

    return at(0.50), at(0.99), at(0.999)


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


@dataclass
class _Fleet:
    latency: list[float]
    connected: int
    sessions: int
    numbered: int
    stored_once: int
    stored_twice_or_more: int
    signals: int
    executed_once: int
    consumers_settled: int


async def _gateway_latency(nats_url: str, ws_port: int, tcp_port: int, n_eas: int,
                           count: int, rate: float, stream_s: float) -> _Fleet:
    """``n_eas`` simulated EAs (half WebSocket, half TCP) stream at the seed's rates for
    ``stream_s`` while SIGNALs are published round-robin: publish -> receipt on the EA's
    socket; then every packet and signal is counted on the bus."""
    accounts = _accounts(1, n_eas)
    eas = [SimulatedEA(a, f"ws://127.0.0.1:{ws_port}" if i % 2 else
                       f"tcp://127.0.0.1:{tcp_port}", Rates()) for i, a in enumerate(accounts)]
    run = asyncio.gather(*(ea.run(stream_s, drain_s=15) for ea in eas))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while not all(ea.connected.is_set() for ea in eas) and loop.time() < deadline:
        await asyncio.sleep(0.1)
    connected = sum(ea.connected.is_set() for ea in eas)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    published: list[uuid.UUID] = []
    for i in range(count):
        account = accounts[i % n_eas].account_id
        packet = _signal(account)
        published.append(uuid.UUID(bytes=packet[40:56]))
        await js.publish(outbound_subject("signal", TENANT, account), packet)
        await asyncio.sleep(1 / rate)
    await run
    latency = [(recv - ts * 1000) / 1e6 for ea in eas for _, _, ts, recv in ea.stats.signals]
    stored, executions = await _read_bus(js)
    numbered = {(ea.account.account_id.bytes, seq) for ea in eas for seq in ea.stats.data_sent}
    settled = 0
    for a in accounts:
        info = await js.consumer_info("MT5_SIGNALS", f"gw_signal_{a.account_id.hex}")
        settled += not (info.num_pending or info.num_ack_pending)
    await nc.close()
    return _Fleet(
        latency, connected, sum(ea.stats.sessions for ea in eas), len(numbered),
        sum(1 for k in numbered if stored.get(k) == 1),
        sum(1 for n in stored.values() if n > 1), len(published),
        sum(1 for sid in published if executions.get(sid) == 1), settled)


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
    stream_s = 10.0 if quick else 60.0
    inbound_s = 2.0 if quick else 5.0
    workdir = Path(tempfile.mkdtemp(prefix="suho-bench-gw-"))
    nats_server = NatsServer(workdir).start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        asyncio.run(_create_streams(nats_server.url))
        inbound_accounts = {"ws": _accounts(100_001, 10), "tcp": _accounts(200_001, 10)}
        every = _accounts(1, n_eas) + inbound_accounts["ws"] + inbound_accounts["tcp"]
        accounts_file = workdir / "accounts.json"
        accounts_file.write_text(json.dumps([str(a.account_id) for a in every]))
        ws_port, tcp_port, metrics_port = _free_port(), _free_port(), _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-c", "from benchmarks.gateway import serve; import sys; "
             "serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], "
             "int(sys.argv[5]))",
             nats_server.url, str(ws_port), str(tcp_port), str(accounts_file),
             str(metrics_port)],
            cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        _wait_port(tcp_port, proc)
        _wait_port(ws_port, proc)
        direct = run_fast(_direct_latency(nats_server.url, min(n_signals, 1000), rate))
        fleet = run_fast(_gateway_latency(nats_server.url, ws_port, tcp_port, n_eas,
                                          n_signals, rate, stream_s))
        latency, connected = fleet.latency, fleet.connected
        import psutil

        rss_mb = psutil.Process(proc.pid).memory_info().rss / 2**20
        hops = _hop_quantiles(metrics_port)
        inbound = {t: run_fast(_gateway_inbound(
            f"{t}://127.0.0.1:{ws_port if t == 'ws' else tcp_port}", inbound_accounts[t],
            inbound_s)) for t in ("ws", "tcp")}
        direct_inbound = run_fast(_direct_inbound(nats_server.url, inbound_s))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        nats_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    p50, p99, p999 = _percentiles(latency)
    d50, d99, d999 = _percentiles(direct)
    received = len(latency)
    rows = [
        Row(f"signal published -> EA socket receipt, p50 ({connected} EAs connected)", None,
            "ms", measured=p50, note=f"{received} of {n_signals} signals received"),
        Row("same, p99", None, "ms", measured=p99,
            target_text=f"goal < {GOAL_P99_MS:g} ms",
            note="met" if p99 < GOAL_P99_MS else "NOT met"),
        Row("same, p99.9", None, "ms", measured=p999),
        Row(f"goal / p99 ({GOAL_P99_MS:g} ms / measured p99)", None, "x",
            measured=GOAL_P99_MS / p99, target=1.0, target_text=">= 1x"),
        Row("baseline: JetStream publish -> nats-py push consumer, no gateway, p50 / p99",
            None, "ms", measured=d50,
            note=f"p99 {d99:.2f} ms, p99.9 {d999:.2f} ms; gateway p99 = {p99 / d99:.1f}x"),
        Row(f"{n_eas} EAs streaming {stream_s:g} s: sessions opened (1 each: none dropped)",
            None, "sessions", measured=fleet.sessions, target=n_eas,
            target_text=f"{n_eas}", note=f"{connected} connected at once"),
        Row("packets the EAs numbered that are on JetStream exactly once", None, "fraction",
            measured=fleet.stored_once / max(1, fleet.numbered), target=1.0,
            target_text="1", note=f"{fleet.stored_once} of {fleet.numbered}; "
            f"{fleet.stored_twice_or_more} stored more than once"),
        Row("signals executed exactly once (one EXECUTION_REPORT on the bus)", None,
            "fraction", measured=fleet.executed_once / max(1, fleet.signals), target=1.0,
            target_text="1", note=f"{fleet.executed_once} of {fleet.signals}; "
            f"{fleet.consumers_settled} of {n_eas} consumers with nothing pending or unacked"),
        Row(f"gateway process RSS after serving the {n_eas} EAs", None, "MB", measured=rss_mb),
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
        f"{n_eas} simulated EAs (half WebSocket, half TCP) connected to a gateway process, "
        f"streaming at the seed's per-account rates; {n_signals} SIGNALs published "
        f"round-robin at {rate:g}/s. Latency is the SIGNAL's timestamp (set just before the "
        "JetStream publish) to its arrival in the EA's process, on one clock; it includes "
        "JetStream's store, the gateway, both sockets and the simulated EAs' event loop, all on "
        f"the same two cores. Event loop: {_loop_name()} (gateway and EAs). "
        "Latencies in ms; `median` is the measured value. "
        f"Signals: {statistics.fmean(latency) if latency else 0:.2f} ms mean."
    )
    return Section("EA gateway (suho_mt5.gateway)", intro, rows)
