"""Ingest across Data Bridge processes: ``suho-mt5 ingest run`` x 1, 2 and 4 sharing the
durable consumer, on native TimescaleDB and one nats-server, at the seed's packet mix with
one packet per message (what an EA at the seed's rates sends: a quote a second is one
frame). Each process's CPU time, nats-server's and PostgreSQL's are read during the run
(psutil), so the side that stops the curve is named from what it used, not guessed.

Servers as in :mod:`benchmarks.ingest` (``$SUHO_BENCH_TIMESCALE_URL`` or one started here).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from ._registry import Row, Section, Settings, section
from .ingest import _accounts, _database, _feed_frames, _timescale, _until_drained

PROCESSES = (1, 2, 4)
MESSAGES = 20_000
KINDS = ("quote",) * 28 + ("snapshot", "heartbeat")  # the seed's mix: 94 % quotes
#: the seed's packets per second per account (docs/scaling.md: 1 + 1/30 + 1/30 + 70/86,400)
PACKETS_PER_ACCOUNT = 1 + 1 / 30 + 1 / 30 + 70 / 86_400
GATEWAY_EAS, GATEWAY_SPEED, GATEWAY_SECONDS = 100, 20.0, 10.0


@dataclass
class Run:
    processes: int
    seconds: float
    cpu: dict[str, float]
    """CPU seconds used during the run: ``bridges``, ``postgres``, ``nats``."""

    @property
    def rate(self) -> float:
        return MESSAGES / self.seconds


def _cpu(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each live process of ``pids``."""
    import psutil

    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        out[pid] = t.user + t.system
    return out


def _used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings (a process started in between: all of it)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _postgres_pids(admin: str) -> list[int]:
    """The postmaster and every backend (the bridges' connections exist before the run)."""
    import psutil

    from tests.integration.ingest._support import libpq

    with psycopg.connect(libpq(admin)) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    try:
        postmaster = psutil.Process(int(row[0])).parent()
    except psutil.Error:
        return []
    if postmaster is None:
        return []
    return [postmaster.pid, *(c.pid for c in postmaster.children(recursive=True))]


async def _publish(nats_url: str, frames: list[tuple[str, bytes, str]]) -> None:
    from tests.integration.ingest._support import jetstream, publish_all

    async with jetstream(nats_url) as (_nc, js):
        await publish_all(js, frames)


async def _purge(nats_url: str) -> None:
    from tests.integration.ingest._support import jetstream

    async with jetstream(nats_url) as (_nc, js):
        await js.purge_stream("MT5_ACCOUNTS")


async def _drained(nats_url: str) -> None:
    from tests.integration.ingest._support import jetstream

    async with jetstream(nats_url, setup=False) as (_nc, js):
        await _until_drained(js)


def _one_run(n: int, ingest_url: str, admin: str, nats: Any,
             frames: list[tuple[str, bytes, str]], work: Path) -> Run:
    """``n`` bridge processes, started and subscribed first; then every frame published at
    once; the time from the first publish to the last ack."""
    from tests.integration.ingest._support import bridge_process, stop_process

    asyncio.run(_purge(nats.url))
    logs = [work / f"bridge-{n}-{i}.log" for i in range(n)]
    procs = [bridge_process(ingest_url, nats.url, "--batch-size", "1000", "--workers", "1",
                            log=log) for log in logs]
    try:
        deadline = time.monotonic() + 60
        while not all(log.exists() and "bridge started" in log.read_text() for log in logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"bridge processes did not start: {logs}")
            time.sleep(0.1)
        time.sleep(1.0)  # their first pull requests are waiting
        def groups() -> dict[str, list[int]]:
            # PostgreSQL's backends of the bridges may start during the run: listed again
            return {"bridges": [p.pid for p in procs], "postgres": _postgres_pids(admin),
                    "nats": [nats.pid]}

        before = {k: _cpu(v) for k, v in groups().items()}
        start = time.perf_counter()
        asyncio.run(_publish(nats.url, frames))
        asyncio.run(_drained(nats.url))
        took = time.perf_counter() - start
        after = {k: _cpu(v) for k, v in groups().items()}
    finally:
        for p in procs:
            stop_process(p, timeout=60)
    return Run(n, took, {k: _used(before[k], after[k]) for k in after})


def _gateway_cost(server: Any, nats: Any, work: Path, eas: int, seconds: float,
                  speed: float) -> tuple[int, float, float]:
    """``eas`` simulated EAs at ``speed`` times the seed's rates through one gateway process
    for ``seconds``: (packets the EAs sent, the gateway's CPU seconds, wall seconds)."""
    from suho_mt5.db import Edition
    from suho_mt5.gateway.simulator import Rates, SimulatedEA
    from tests.timescale.gateway._support import (
        GatewayProcess,
        create_streams,
        prepare_database,
    )

    db = prepare_database(server.url(server.create_database()), eas, Edition.TIMESCALE,
                          cheap_from=0)
    asyncio.run(create_streams(nats.url))
    gateway = GatewayProcess(db, nats.url, work / "gateway.log").start()
    assert gateway.proc is not None
    pid = gateway.proc.pid
    try:
        async def stream() -> tuple[int, float, float]:
            fleet = [SimulatedEA(a, gateway.url("tcp" if i % 2 else "ws"), Rates(speed=speed))
                     for i, a in enumerate(db.accounts)]
            running = asyncio.gather(*(ea.run(seconds + 600, drain_s=5) for ea in fleet))
            try:
                while not all(ea.stats.sessions for ea in fleet):
                    await asyncio.sleep(0.2)
                await asyncio.sleep(2)  # past the start's bursts
                sent = sum(len(ea.stats.data_sent) for ea in fleet)
                cpu = _used({}, _cpu([pid]))
                start = time.perf_counter()
                await asyncio.sleep(seconds)
                packets = sum(len(ea.stats.data_sent) for ea in fleet) - sent
                used = _used({}, _cpu([pid])) - cpu
                return packets, used, time.perf_counter() - start
            finally:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)

        return asyncio.run(stream())
    finally:
        gateway.stop()


def _stored_rows(admin: str) -> int:
    """Rows of the three tables the seed's mix goes to (each run's packets are new)."""
    from tests.integration.ingest._support import libpq

    with psycopg.connect(libpq(admin)) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM mt5_broker_quotes) + (SELECT count(*) FROM"
            " mt5_account_balance_history) + (SELECT count(*) FROM mt5_ea_heartbeat)"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _publish_alone(nats: Any, frames: list[tuple[str, bytes, str]]) -> float:
    asyncio.run(_purge(nats.url))
    start = time.perf_counter()
    asyncio.run(_publish(nats.url, frames))
    return time.perf_counter() - start


@section("Ingest across Data Bridge processes (suho-mt5 ingest run x 1, 2, 4)", order=45)
def scale_section(settings: Settings) -> Section:
    from tests.integration.ingest._support import nats_server

    repeats = 2 if settings.repeats <= 3 else 3
    runs: dict[int, list[Run]] = {n: [] for n in PROCESSES}
    load_before = os.getloadavg()
    publish_rates = []
    with _timescale() as server, nats_server() as nats, \
            tempfile.TemporaryDirectory(prefix="suho-bench-scale-") as tmp:
        admin, ingest_url = _database(server)
        accounts = _accounts(admin, 300)
        for r in range(repeats):
            for i, n in enumerate(PROCESSES):  # interleaved: a change of load hits all
                frames = _feed_frames(accounts, MESSAGES, 1,
                                      1_000_000 * (r * len(PROCESSES) + i + 1), KINDS)
                runs[n].append(_one_run(n, ingest_url, admin, nats, frames, Path(tmp)))
            frames = _feed_frames(accounts, MESSAGES, 1, 900_000_000 + 1_000_000 * r, KINDS)
            publish_rates.append(MESSAGES / _publish_alone(nats, frames))
        stored = _stored_rows(admin)
        if stored != repeats * len(PROCESSES) * MESSAGES:
            raise RuntimeError(f"{stored} rows stored for "
                               f"{repeats * len(PROCESSES) * MESSAGES} packets published")
        gw_packets, gw_cpu, gw_wall = _gateway_cost(server, nats, Path(tmp), GATEWAY_EAS,
                                                    GATEWAY_SECONDS, GATEWAY_SPEED)
    load_after = os.getloadavg()
    base = statistics.median(run.rate for run in runs[1])
    rows = []
    shares: dict[int, dict[str, float]] = {}
    for n in PROCESSES:
        rate = statistics.median(run.rate for run in runs[n])
        cpu = {k: statistics.median(run.cpu[k] / run.seconds for run in runs[n])
               for k in ("bridges", "postgres", "nats")}
        shares[n] = cpu
        rows.append(Row(
            f"{n} bridge process{'es' if n > 1 else ''}, 1 packet per message", None,
            "msg/s", None, "",
            f"x{rate / base:.2f} of 1 process; CPU cores busy: bridges "
            f"{cpu['bridges']:.2f}, PostgreSQL {cpu['postgres']:.2f}, nats-server "
            f"{cpu['nats']:.2f}", measured=rate))
    # Per core: work done per CPU-second of each side, whatever the machine's load.
    per_core = {k: statistics.median(MESSAGES / run.cpu[k] for run in runs[1] if run.cpu[k])
                for k in ("bridges", "postgres", "nats")}
    per_core["gateway"] = gw_packets / gw_cpu if gw_cpu else 0.0
    rows += [
        Row("per core: gateway, packets per CPU-second", None, "packets/s", None, "",
            f"{GATEWAY_EAS} EAs at {GATEWAY_SPEED:g}x the seed's rates (one packet per "
            f"frame), {gw_packets:,} packets in {gw_wall:.0f} s; the process's CPU time",
            measured=per_core["gateway"]),
        Row("per core: Data Bridge, packets per CPU-second", None, "packets/s", None, "",
            "1 process, 1 packet per message (above)", measured=per_core["bridges"]),
        Row("per core: PostgreSQL + TimescaleDB, rows per CPU-second", None, "rows/s", None,
            "", "every backend and the postmaster, during the 1-process runs",
            measured=per_core["postgres"]),
        Row("per core: nats-server, messages per CPU-second", None, "msg/s", None, "",
            "stored, delivered and acked (R1, one node)", measured=per_core["nats"]),
    ]
    rows.append(Row("publishing the same messages alone (the load generator)", None,
                    "msg/s", None, "", "nats-py publish_all, no bridge running",
                    measured=statistics.median(publish_rates)))
    best = max(PROCESSES, key=lambda n: statistics.median(run.rate for run in runs[n]))
    cores = os.cpu_count() or 1
    used = {n: sum(shares[n].values()) for n in PROCESSES}
    # CPU seconds each side spends per message, from the 1-process runs: the machine's
    # ceiling is its cores over their sum; one process cannot pass one core of its own.
    cost = {k: 1 / per_core[k] for k in ("bridges", "postgres", "nats") if per_core[k]}
    ceiling = cores / sum(cost.values()) if cost else 0.0
    side = max(cost, key=lambda k: cost[k]) if cost else "bridges"
    side_name = {"bridges": "the bridges' Python (fetch, decode, map, COPY formatting, acks)",
                 "postgres": "PostgreSQL (COPY, indexes, WAL, commit)",
                 "nats": "nats-server (store, deliver, acks)"}[side]
    alone = per_core["bridges"]
    if alone >= ceiling:
        stop = (f"One bridge process (one core at most) would reach {alone:,.0f} msg/s "
                f"alone, above that ceiling, so a second process can only help while cores "
                f"are idle, and a fourth adds context switches: the curve stops at 2 "
                f"processes, limited by the machine's cores, first by the bridges' side.")
    else:
        stop = (f"One bridge process (one core at most) stops at {alone:,.0f} msg/s, below "
                f"that ceiling: more processes raise the rate until the cores are full, at "
                f"about {ceiling / alone:.1f} processes' worth; past that the machine's "
                f"cores stop the curve, first by the {side} side.")
    note = (
        f"**Where the curve stops.** Per message, a bridge spends "
        f"{cost.get('bridges', 0) * 1e6:.0f} µs of CPU, PostgreSQL "
        f"{cost.get('postgres', 0) * 1e6:.0f} µs and nats-server "
        f"{cost.get('nats', 0) * 1e6:.0f} µs: the {cores} cores of this machine, given to "
        f"nothing else, carry at most {ceiling:,.0f} messages/s, and the largest share is "
        f"{side_name}. {stop} "
        f"Measured here: best at {best} process{'es' if best > 1 else ''} "
        f"(x{statistics.median(r.rate for r in runs[best]) / base:.2f} of one); the three "
        f"servers kept {used[1]:.2f}, {used[2]:.2f} and {used[4]:.2f} cores busy with 1, 2 "
        f"and 4 processes, far from 2: this machine is shared (load average "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after), so other work took the "
        f"rest and the wall-clock rates say less than the CPU costs. {repeats} interleaved "
        f"repeats of {MESSAGES:,} messages ({len(accounts)} accounts) per count, median; "
        f"ratios against the 1-process runs of the same benchmark run; every packet was "
        f"checked stored once (row count)."
    )
    capacity = ["", "What the per-core rates predict at the seed's per-account rates (1.07 "
                "packets/s per account, 94 % quotes; docs/scaling.md, the capacity model), "
                "in cores busy:", "", "| accounts | packets/s | gateway | Data Bridge | "
                "PostgreSQL | nats-server (per node) |", "|---:|---:|---:|---:|---:|---:|"]
    for accounts_n in (1_000, 10_000):
        rate = accounts_n * PACKETS_PER_ACCOUNT
        capacity.append(f"| {accounts_n:,} | {rate:,.0f} | " + " | ".join(
            f"{rate / per_core[k]:.2f}" if per_core[k] else "?"
            for k in ("gateway", "bridges", "postgres", "nats")) + " |")
    note += "\n" + "\n".join(capacity)
    return Section(
        "Ingest across Data Bridge processes (suho-mt5 ingest run x 1, 2, 4)",
        "N `suho-mt5 ingest run` child processes (1 worker, batches of 1,000 messages each) "
        "share the bridge's durable consumer on one nats-server and write to one native "
        "TimescaleDB as a login with BYPASSRLS. The messages carry one packet each at the "
        "seed's mix (28 quotes, 1 snapshot, 1 heartbeat); they are published after the "
        "processes have subscribed, and the time runs from the first publish to the last "
        "acknowledgement. CPU: each group's user + system seconds during the run, divided "
        "by its length (cores busy).",
        rows,
        extra_markdown=note,
    )
