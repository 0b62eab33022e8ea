"""The EA gateway under attack, before and after the hardening of docs/security.md, side by
side in one run.

Everything runs on this machine's two cores, as in the attack the hardening answers: native
TimescaleDB (keys checked by bcrypt at cost 12 in ``mt5_authenticate``), nats-server, the
gateway as a process (``suho-mt5 gateway run``), 50 legitimate TCP EAs and the signal
publisher in this process, and the attacker in a process of its own, at the lowest CPU
priority (nice 19): a real attacker spends its own machines' CPU, not the gateway host's, and
on two shared cores an attacker at equal priority measures the machine, not the gateway (it
still makes its 1,500 attempts a second). Clients use addresses of their own on the loopback
network (127.0.x.y), so each "address" is a different client to the gateway's limits.

For each version of the code (``before``: the tree at :data:`BEFORE_COMMIT`, the commit this
work started from, unpacked with ``git archive``; ``after``: this checkout):

1. quiet: signal latency (SIGNAL timestamp -> the EA's socket) of 50 connected EAs at 100
   signals/s (1,000 a phase: the p99 is the tenth slowest), and WELCOME time of 20 EAs
   connecting for the first time;
2. a wrong-key flood from 50 addresses, each attempting as fast as it is let (4 at a time);
3. a flood of 1,500 attempts a second from one address; an EA with the right key at that
   address tries to get in;
4. refusal time of an unknown account, a wrong key and a deactivated account (20 each, each
   from its own address).

``python -m benchmarks.attack`` runs it alone and prints the table;
``python -m benchmarks --only attack`` puts it in docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._registry import Row, Section, Settings, section
from ._stats import quantile

REPO = Path(__file__).resolve().parents[1]
#: The code as it was before the hardening (issue 22): integ at the start of the work.
BEFORE_COMMIT = "4ae5db0"
N_EAS = 50
SIGNAL_RATE = 100.0
PHASE_S = 10.0
# The attacker runs from 3 s before a phase's measurements to 3 s after them.
ATTACK_S = PHASE_S + 6
# HELLOs at once from the one flooding address: a refused HELLO is answered after a pause of
# a second, so a flood of 1,500 a second needs at least that many in flight.
FLOOD_1500_IN_FLIGHT = 1800


# -- the attacker (its own process) --


def attacker(tcp_port: int, addresses: list[str], per_address: int, rate: float,
             duration_s: float, accounts: list[str], out: str) -> None:
    """Send HELLOs with wrong keys from ``addresses`` (``per_address`` at a time each, at most
    ``rate`` a second in all when > 0) for ``duration_s``; write what came back to ``out``."""
    from suho_mt5.gateway import run_fast

    run_fast(_attack(tcp_port, addresses, per_address, rate, duration_s, accounts, out))


async def _attack(tcp_port: int, addresses: list[str], per_address: int, rate: float,
                  duration_s: float, accounts: list[str], out: str) -> None:
    from suho_mt5.protocol import HelloPacket, WelcomePacket, decode, encode

    results: dict[str, int] = {}
    end = time.monotonic() + duration_s
    tokens = asyncio.Semaphore(0)

    async def pace() -> None:
        if rate <= 0:
            return
        step = 1.0 / rate
        next_at = time.monotonic()
        while time.monotonic() < end:
            next_at += step
            tokens.release()
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        for _ in range(len(addresses) * per_address):  # the loops still waiting: stop
            tokens.release()

    async def loop(address: str) -> None:
        while time.monotonic() < end:
            if rate > 0:
                await tokens.acquire()
                if time.monotonic() >= end:
                    break
            account = uuid.UUID(random.choice(accounts)) if accounts else uuid.uuid4()
            kind = "error"
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    "127.0.0.1", tcp_port, local_addr=(address, 0)), 10)
                writer.write(encode(HelloPacket(0, time.time_ns() // 1000, account.bytes, 0,
                                                0, 0, "wrong-" + uuid.uuid4().hex)))
                data = await asyncio.wait_for(reader.read(144), 30)
                if len(data) == 144:
                    packet = decode(data)
                    kind = (packet.result.name if isinstance(packet, WelcomePacket)
                            else type(packet).__name__)
                writer.close()
            except (OSError, TimeoutError, Exception):
                await asyncio.sleep(0.05)
            results[kind] = results.get(kind, 0) + 1

    await asyncio.gather(pace(), *(loop(a) for a in addresses for _ in range(per_address)))
    Path(out).write_text(json.dumps(results))


# -- the legitimate side --


@dataclass
class _Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    welcome_s: list[float] = field(default_factory=list)
    attack: dict[str, int] = field(default_factory=dict)
    key_checks: float = 0.0
    #: the checks of the newcomers' first logins, one each (part of ``key_checks``)
    newcomer_checks: int = 0
    pg_cpu: float = 0.0
    gw_cpu: float = 0.0
    fds_peak: int = 0
    log_bytes: int = 0
    neighbour: str = ""
    load: float = 0.0
    eas_alive: int = 0
    refusal_ms: dict[str, list[float]] = field(default_factory=dict)


def _pct(values: list[float], q: float) -> float:
    return quantile(values, q)


_SEQUENCES: dict[int, int] = {}


def _next_seq(conn: Any) -> int:
    """The EA's own packet sequence (ACKs and HEARTBEATs share it; it must grow)."""
    seq = _SEQUENCES[id(conn)] = _SEQUENCES.get(id(conn), 0) + 1
    return seq


class _Fleet:
    """50 EAs connected over TCP, reading signals and ACKing them; latency per SIGNAL."""

    def __init__(self, tcp_url: str, accounts: list[Any]) -> None:
        self.url = tcp_url
        self.accounts = accounts
        self.conns: list[Any] = []
        self.latencies: list[float] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def connect(self) -> None:
        from suho_mt5.gateway import open_connection

        async def one(i: int, account: Any) -> Any:
            conn = await open_connection(self.url, source_address=f"127.0.9.{i + 1}")
            await conn.hello(account.account_id, account.api_key, timeout=120)
            return conn

        self.conns = list(await asyncio.gather(*(one(i, a)
                                                 for i, a in enumerate(self.accounts))))
        self._tasks = [asyncio.create_task(self._read(c)) for c in self.conns]
        self._tasks += [asyncio.create_task(self._beat(c)) for c in self.conns]

    @staticmethod
    async def _beat(conn: Any) -> None:
        """A HEARTBEAT every 5 s, as an EA sends (the gateway closes a silent one)."""
        from suho_mt5.protocol import HeartbeatPacket

        while True:
            await asyncio.sleep(5)
            with contextlib.suppress(Exception):
                await conn.send(HeartbeatPacket(_next_seq(conn), time.time_ns() // 1000,
                                                conn.welcome.account_id, "1.0", 4410, 20,
                                                True, True))

    def alive(self) -> int:
        return sum(1 for c in self.conns if c.close_code is None)

    async def _read(self, conn: Any) -> None:
        from suho_mt5.protocol import AckPacket, MessageType, SignalPacket

        while True:
            packets = await conn.recv()
            if not packets:
                return
            for packet in packets:
                if isinstance(packet, SignalPacket):
                    if self.latencies is not None:
                        self.latencies.append(conn.received_ns / 1e6 - packet.timestamp_us / 1e3)
                    await conn.send(AckPacket(_next_seq(conn), time.time_ns() // 1000,
                                              packet.account_id, packet.sequence,
                                              MessageType.SIGNAL))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for conn in self.conns:
            with contextlib.suppress(Exception):
                await conn.close()


async def _publish(nats_url: str, accounts: list[Any], seconds: float) -> None:
    import nats

    from suho_mt5._subjects import outbound_subject
    from suho_mt5.protocol import SignalPacket, WireAction, encode

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        n = int(seconds * SIGNAL_RATE)
        start = time.monotonic()
        for i in range(n):
            account = accounts[i % len(accounts)].account_id
            packet = encode(SignalPacket(0, time.time_ns() // 1000, account.bytes,
                                         uuid.uuid4().bytes, "EURUSD", 109_530_000, 0, 0,
                                         10_000_000, 0, 8_500, WireAction.BUY))
            await js.publish(outbound_subject("signal", "tenant_gw", account), packet)
            delay = start + (i + 1) / SIGNAL_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    finally:
        await nc.close()


async def _welcome_times(tcp_url: str, accounts: list[Any], first_address: int,
                         spacing_s: float = 0.25) -> list[float]:
    """Each EA connects for the first time (from an address of its own): seconds to WELCOME."""
    from suho_mt5.gateway import open_connection

    times = []
    for i, account in enumerate(accounts):
        started = time.monotonic()
        try:
            conn = await open_connection(tcp_url, source_address=f"127.0.8.{first_address + i}")
            await conn.hello(account.account_id, account.api_key, timeout=60)
            times.append(time.monotonic() - started)
            await conn.close()
        except Exception:
            times.append(float("inf"))
        await asyncio.sleep(spacing_s)
    return times


async def _refusal_ms(tcp_url: str, account: uuid.UUID, key: str, count: int, block: int
                      ) -> list[float]:
    from suho_mt5.gateway import open_connection

    out = []
    for i in range(count):
        conn = await open_connection(tcp_url, source_address=f"127.0.{block}.{i + 1}")
        started = time.perf_counter()
        with contextlib.suppress(Exception):
            await conn.hello(account, key, timeout=60)
        out.append((time.perf_counter() - started) * 1000)
        with contextlib.suppress(Exception):
            await conn.close()
    return out


def _metric(port: int, name: str, labels: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    where = rf"\{{{re.escape(labels)}\}}" if labels else ""
    match = re.search(rf"^{re.escape(name)}{where} (\S+)$", text, re.M)
    return float(match.group(1)) if match else -1.0  # -1: no such series


def _cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def _postgres_pids(port: int) -> list[int]:
    """The benchmark's own PostgreSQL: the postmaster listening on ``port``, its children."""
    import psutil

    for conn in psutil.net_connections("tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port \
                and conn.pid:
            postmaster = psutil.Process(conn.pid)
            return [postmaster.pid, *(c.pid for c in postmaster.children(recursive=True))]
    return []


class _Gateway:
    def __init__(self, tree: Path, url: str, nats_url: str, workdir: Path) -> None:
        from tests.support.servers import free_port

        self.tree, self.url, self.nats_url = tree, url, nats_url
        self.tcp_port, self.ws_port, self.metrics_port = free_port(), free_port(), free_port()
        self.log = workdir / f"gateway-{tree.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [sys.executable, "-c", "from suho_mt5.cli import main; main()", "gateway", "run",
                "--url", self.url, "--nats-url", self.nats_url, "--host", "127.0.0.1",
                "--ws-port", str(self.ws_port), "--tcp-port", str(self.tcp_port),
                "--metrics-port", str(self.metrics_port)]
        env = {**os.environ, "PYTHONPATH": str(self.tree), "PYTHONUNBUFFERED": "1"}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=self.tree, env=env)
        import socket

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.metrics_port), 0.2):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gateway not up: {self.log.read_text()[-2000:]}")

    def fds(self) -> int:
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def _phase(name: str, gw: _Gateway, nats_url: str, fleet: _Fleet, newcomers: list[Any],
                 first_address: int, attack: list[str] | None, pg_port: int) -> _Phase:
    phase = _Phase(name)
    attack_out = gw.log.with_name(f"attack-{name}-{gw.tree.name}.json")
    checks0 = _key_checks(gw.metrics_port)
    phase.eas_alive = fleet.alive()
    proc = None
    if attack is not None:
        proc = subprocess.Popen([sys.executable, "-c", *attack, str(attack_out)], cwd=REPO,
                                preexec_fn=lambda: os.nice(19))  # see the module's docstring
        await asyncio.sleep(3.0)
    assert gw.proc is not None
    pg = _postgres_pids(pg_port)
    cpu0, gcpu0, t0 = _cpu_seconds(pg), _cpu_seconds([gw.proc.pid]), time.monotonic()
    log0 = gw.log.stat().st_size
    fleet.latencies = phase.latencies
    fds = [gw.fds()]

    async def sample_fds() -> None:
        while True:
            await asyncio.sleep(0.5)
            fds.append(gw.fds())

    sampler = asyncio.create_task(sample_fds())
    welcome = asyncio.create_task(_welcome_times(fleet.url, newcomers, first_address,
                                                 PHASE_S / max(1, len(newcomers))))
    await _publish(nats_url, fleet.accounts, PHASE_S)
    phase.welcome_s = await welcome
    await asyncio.sleep(0.5)
    fleet.latencies = None
    sampler.cancel()
    elapsed = time.monotonic() - t0
    phase.pg_cpu = (_cpu_seconds(pg) - cpu0) / elapsed
    phase.gw_cpu = (_cpu_seconds([gw.proc.pid]) - gcpu0) / elapsed
    phase.fds_peak = max(fds)
    phase.log_bytes = gw.log.stat().st_size - log0
    phase.load = os.getloadavg()[0]
    if proc is not None:
        if name == "flood1500":
            phase.neighbour = await _neighbour(fleet)
        proc.wait(120)
        with contextlib.suppress(OSError, ValueError):
            phase.attack = json.loads(attack_out.read_text())
    phase.key_checks = _key_checks(gw.metrics_port) - max(0.0, checks0)
    phase.newcomer_checks = sum(1 for w in phase.welcome_s if w != float("inf"))
    return phase


def _key_checks(port: int) -> float:
    """Key checks the database made: the gateway's own count where it has one (after),
    else its refusals (before: every refusal was a check)."""
    checks = _metric(port, "suho_gateway_key_checks_total", "")
    if checks >= 0:
        return checks
    return max(0.0, _metric(port, "suho_gateway_auth_failures_total", 'reason="refused"'))


async def _neighbour(fleet: _Fleet) -> str:
    """An EA with the right key, at the flooding address, comes back."""
    from suho_mt5.errors import SessionRefusedError
    from suho_mt5.gateway import open_connection

    account = fleet.accounts[-1]
    conn = await open_connection(fleet.url, source_address="127.0.2.1")
    try:
        await conn.hello(account.account_id, account.api_key, timeout=60)
        result = "ACCEPTED"
    except SessionRefusedError:
        result = conn.welcome.result.name if conn.welcome is not None else "refused"
    with contextlib.suppress(Exception):
        await conn.close()
    return result


def _attack_argv(tcp_port: int, addresses: list[str], per_address: int, rate: float,
                 duration: float, accounts: list[str]) -> list[str]:
    code = ("import json, sys; from benchmarks.attack import attacker; "
            "attacker(*json.loads(sys.argv[1]), sys.argv[2])")
    return [code, json.dumps([tcp_port, addresses, per_address, rate, duration, accounts])]


def run_version(tree: Path, db: Any, nats_url: str, workdir: Path, pg_port: int,
                accounts_from: int) -> dict[str, _Phase]:
    """Every phase against the gateway of ``tree``; accounts from ``accounts_from`` on."""
    from suho_mt5.gateway import run_fast

    gw = _Gateway(tree, db.gateway_url, nats_url, workdir)
    gw.start()
    try:
        legit = db.accounts[accounts_from:accounts_from + N_EAS]
        pool = db.accounts[accounts_from + N_EAS:accounts_from + N_EAS + 80]
        targets: list[str] = []  # random account ids: what an attacker knows
        tcp = f"tcp://127.0.0.1:{gw.tcp_port}"

        async def scenario() -> dict[str, _Phase]:
            fleet = _Fleet(tcp, legit)
            await fleet.connect()
            try:
                phases = {}
                phases["quiet"] = await _phase("quiet", gw, nats_url, fleet, pool[0:20], 1,
                                               None, pg_port)
                spread = [f"127.0.1.{i}" for i in range(1, 51)]
                duration = ATTACK_S
                phases["flood50"] = await _phase(
                    "flood50", gw, nats_url, fleet, pool[20:40], 30,
                    _attack_argv(gw.tcp_port, spread, 4, 0, duration, targets), pg_port)
                await asyncio.sleep(2)
                phases["flood1500"] = await _phase(
                    "flood1500", gw, nats_url, fleet, pool[40:60], 60,
                    _attack_argv(gw.tcp_port, ["127.0.2.1"], FLOOD_1500_IN_FLIGHT, 1500,
                                 duration, targets),
                    pg_port)
                timing = _Phase("timing")
                deactivated = db.deactivated
                for kind, (account, key), block in (
                        ("unknown", (uuid.uuid4(), legit[0].api_key), 3),
                        ("wrong key", (legit[1].account_id, "wrong-key"), 4),
                        ("deactivated", (deactivated.account_id, deactivated.api_key), 5)):
                    timing.refusal_ms[kind] = await _refusal_ms(tcp, account, key, 20, block)
                timing.load = os.getloadavg()[0]
                phases["timing"] = timing
                return phases
            finally:
                await fleet.close()

        return run_fast(scenario())
    finally:
        gw.stop()


def _before_tree(workdir: Path) -> Path | None:
    tree = workdir / "before"
    tree.mkdir()
    try:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE_COMMIT],
                                 capture_output=True, check=True, timeout=120).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return tree


def _prepare(server: Any) -> Any:
    """A migrated database: 50 + 80 + 20 + 100 accounts whose keys are bcrypt at cost 12 (the
    seed's), one deactivated."""
    import sqlalchemy as sa

    from suho_mt5.db import Edition, make_engine
    from tests.timescale.gateway._support import prepare_database

    db = prepare_database(server.url(server.create_database()), 2 * (N_EAS + 80) + 40,
                          Edition.TIMESCALE)
    db.deactivated = db.accounts.pop(N_EAS)  # type: ignore[attr-defined]
    engine = make_engine(db.owner_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE mt5_user_accounts SET is_active = false"
                             " WHERE account_id = :a"),
                     {"a": db.deactivated.account_id})  # type: ignore[attr-defined]
    engine.dispose()
    return db


def measure_attack(with_before: bool = True) -> tuple[dict[str, dict[str, _Phase]], float]:
    sys.path.insert(0, str(REPO))
    from benchmarks.gateway import _create_streams
    from benchmarks.ingest import _timescale
    from tests.support.servers import NatsServer

    workdir = Path(tempfile.mkdtemp(prefix="suho-bench-attack-"))
    results: dict[str, dict[str, _Phase]] = {}
    started = time.monotonic()
    nats_server = NatsServer(workdir).start()
    try:
        with _timescale() as server:
            db = _prepare(server)
            asyncio.run(_create_streams(nats_server.url))
            versions: list[tuple[str, Path]] = []
            if with_before and (before := _before_tree(workdir)) is not None:
                versions.append(("before", before))
            versions.append(("after", REPO))
            for i, (name, tree) in enumerate(versions):
                results[name] = run_version(tree, db, nats_server.url, workdir, server.port,
                                            i * (N_EAS + 80))
    finally:
        nats_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return results, time.monotonic() - started


def _fmt_phase(p: _Phase, baseline: float) -> dict[str, str]:
    p99 = _pct(p.latencies, 0.99)
    welcome = [w for w in p.welcome_s if w != float("inf")]
    return {
        "signal p50 / p99 ms": f"{_pct(p.latencies, 0.5):.2f} / {p99:.2f} "
                               f"(x{p99 / baseline:.1f})",
        "new EA WELCOME p50 / max s": (f"{_pct(welcome, 0.5):.2f} / {max(welcome):.2f}"
                                       if welcome else "none")
                                      + (f" ({len(p.welcome_s) - len(welcome)} failed)"
                                         if len(welcome) < len(p.welcome_s) else ""),
        "connected EAs at the start": str(p.eas_alive),
        "key checks by the database (whole attack)": f"{p.key_checks:.0f}",
        "attacker results": ", ".join(f"{k} {v}" for k, v in sorted(p.attack.items())) or "-",
        "attacker's attempts a second": (f"{sum(p.attack.values()) / ATTACK_S:,.0f}"
                                         if p.attack else "-"),
        "PostgreSQL / gateway CPU": f"{p.pg_cpu * 100:.0f}% / {p.gw_cpu * 100:.0f}%",
        "gateway fds peak": str(p.fds_peak),
        "gateway log bytes": str(p.log_bytes),
        "neighbour with the right key": p.neighbour or "-",
        "load (1 min)": f"{p.load:.2f}",
    }


def render(results: dict[str, dict[str, _Phase]]) -> str:
    versions = list(results)
    lines = [f"| phase | figure | {' | '.join(versions)} |",
             f"|---|---|{'---|' * len(versions)}"]
    baselines = {v: _pct(results[v]["quiet"].latencies, 0.99) for v in versions}
    for phase in ("quiet", "flood50", "flood1500"):
        cells = {v: _fmt_phase(results[v][phase], baselines[v]) for v in versions}
        for figure in cells[versions[0]]:
            lines.append(f"| {phase} | {figure} | "
                         + " | ".join(cells[v][figure] for v in versions) + " |")
    for kind in ("unknown", "wrong key", "deactivated"):
        cells = []
        for v in versions:
            values = results[v]["timing"].refusal_ms[kind]
            cells.append(f"{_pct(values, 0.5):.0f} / {_pct(values, 0.9):.0f} / "
                         f"{max(values):.0f}")
        lines.append(f"| refusal time | {kind}: p50 / p90 / max ms | {' | '.join(cells)} |")
    lines.append("| refusal time | load (1 min) | "
                 + " | ".join(f"{results[v]['timing'].load:.2f}" for v in versions) + " |")
    return "\n".join(lines)


@section("EA gateway under attack (before / after the hardening)", order=75)
def attack_section(settings: Settings) -> Section:
    results, elapsed = measure_attack()
    after = results["after"]
    base = _pct(after["quiet"].latencies, 0.99)
    rows = [
        Row("wrong-key flood from 50 addresses: new EA WELCOME, max of 20", None, "s",
            measured=max(after["flood50"].welcome_s), target_text="< 1 s"),
        Row("same: connected EAs' signal p99 / unloaded p99", None, "x",
            measured=_pct(after["flood50"].latencies, 0.99) / base, target_text="< 2x"),
        Row("1,500 attempts/s from one address: signal p99 / unloaded p99", None, "x",
            measured=_pct(after["flood1500"].latencies, 0.99) / base, target_text="< 2x"),
        Row("same: attempts a second the attacker made", None, "/s",
            measured=sum(after["flood1500"].attack.values()) / ATTACK_S,
            target_text=">= 1,500"),
        Row("same: key checks made for that address (the phase's, less the newcomers' "
            "first logins)", None, "checks",
            measured=after["flood1500"].key_checks - after["flood1500"].newcomer_checks,
            target_text="<= 5"),
    ]
    return Section("EA gateway under attack (before / after the hardening)",
                   f"Run took {elapsed:.0f} s. " + (__doc__ or "").split("\n\n")[1], rows,
                   extra_markdown=render(results))


if __name__ == "__main__":
    results, elapsed = measure_attack("--after-only" not in sys.argv)
    print(render(results))
    print(f"\n({elapsed:.0f} s)")
