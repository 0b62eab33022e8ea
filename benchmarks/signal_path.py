"""The signal path a backend uses: from the :func:`~suho_mt5.commands.signal.publish_signal`
call to the EA's socket, with 500 EAs connected, against the gateway benchmark's own baseline
(a SIGNAL packet published straight to JetStream) measured beside it in the same run.

Processes: native TimescaleDB (started as the other benchmarks start it, but with
PostgreSQL's durable commit: ``fsync``, ``full_page_writes`` and ``synchronous_commit`` on),
nats-server, the gateway (static accounts, as in the gateway benchmark), the simulated EAs
(their own process, streaming at the seed's rates), and this process as the long-running
backend: one database connection of an ``mt5_ingest`` login and one NATS connection, kept
open while it calls ``publish_signal`` for every timed signal.

``publish_signal`` stamps the packet with the moment the call starts, so the latency the EAs
compute from the packet's timestamp is publish_signal call -> EA socket. Inside each call the
backend times (``time.perf_counter``) the insert and its commit, the JetStream publish (to its
ack) and the status update and its commit, through the function's public seams (its
``listener``, told after each commit, and a thin wrapper of the JetStream context): the
function itself is not changed. The EA has the signal as soon as JetStream has stored it, so
its latency is about insert+commit + publish -> EA; the status update comes after.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
from nats.js.api import DeliverPolicy

from suho_mt5._subjects import outbound_subject
from suho_mt5.gateway import run_fast
from suho_mt5.protocol import SignalPacket, WireAction, encode

from ._registry import Row, Section, Settings, section
from ._stats import quantile as _q
from .gateway import (
    GOAL_P99_MS,
    REPO_ROOT,
    SETTLE_S,
    TENANT,
    _accounts,
    _create_streams,
    _GatewayProcess,
    _hop_quantiles,
    _loop_name,
    _start_fleet,
)

_TITLE = "Signal path: publish_signal call -> EA socket (500 EAs, native TimescaleDB)"
#: PostgreSQL's own defaults, over the benchmarks' "-c fsync=off ... synchronous_commit=off"
_DURABLE = "-c fsync=on -c full_page_writes=on -c synchronous_commit=on"
_perf = time.perf_counter
#: untimed publish_signal calls before the first timed one
_WARM_UP = 20
#: the phases alternate every this many calls
_BLOCK = 100


@dataclass
class _Call:
    """One publish_signal call: perf_counter marks (s) and the wall clock at its publish."""

    start: float = 0.0
    first_commit: float = 0.0  # the insert's commit was asked for
    committed: float = 0.0  # the insert's commit returned (listener told "pending")
    publish_start: float = 0.0
    publish_end: float = 0.0
    sent: float = 0.0  # the status update's commit returned (listener told "sent")
    end: float = 0.0
    publish_wall_ns: int = 0


class _Timer:
    """The listener, the JetStream wrapper and the connection wrapper that mark one call's
    steps."""

    def __init__(self, js: Any, conn: Any) -> None:
        self._js = js
        self.conn = _TimedConnection(conn, self)
        self.call = _Call()

    def signal_changed(self, tenant_id: str, account_id: uuid.UUID, signal_id: uuid.UUID,
                       time: datetime, status: str, details: Mapping[str, Any]) -> None:
        if status == "pending":
            self.call.committed = _perf()
        elif status == "sent":
            self.call.sent = _perf()

    async def publish(self, subject: str, payload: bytes, **kwargs: Any) -> Any:
        self.call.publish_wall_ns = time.time_ns()
        self.call.publish_start = time.perf_counter()
        try:
            return await self._js.publish(subject, payload, **kwargs)
        finally:
            self.call.publish_end = time.perf_counter()


class _TimedConnection:
    """The backend's psycopg connection as publish_signal uses it (cursor, commit,
    rollback), marking when the insert's commit is asked for."""

    def __init__(self, conn: Any, timer: _Timer) -> None:
        self._conn = conn
        self._timer = timer

    def cursor(self) -> Any:
        return self._conn.cursor()

    async def commit(self) -> None:
        if not self._timer.call.first_commit:
            self._timer.call.first_commit = _perf()
        await self._conn.commit()

    async def rollback(self) -> None:
        await self._conn.rollback()


@dataclass
class _Phase:
    """What the backend did in one phase; latencies the EAs saw are joined in later."""

    label: str
    calls: dict[str, _Call] = field(default_factory=dict)  # signal id hex -> marks
    raw: set[str] = field(default_factory=set)  # the baseline's signal ids (hex)
    beside: list[float] = field(default_factory=list)  # JetStream -> plain consumer (ms)
    load: float = 0.0


def _raw_signal(account: uuid.UUID) -> bytes:
    """The gateway benchmark's SIGNAL, numbered by its timestamp (set now, just before its
    publish) as publish_signal numbers its own, so an EA takes both kinds in order."""
    now = time.time_ns() // 1000
    return encode(SignalPacket(now, now, account.bytes, uuid.uuid4().bytes, "EURUSD",
                               109_530_000, 109_030_000, 110_530_000, 10_000_000, 0, 8_500,
                               WireAction.BUY))


async def _backend(ingest_url: str, nats_url: str, accounts: list[uuid.UUID], count: int,
                   rate: float, phases: list[tuple[str, bool]]) -> list[_Phase]:
    """The backend: one database connection, one NATS connection, kept open; per phase
    ``count`` publish_signal calls round-robin over ``accounts`` at ``rate`` per second (the
    phases alternating in blocks of ``_BLOCK`` calls), each followed by one raw JetStream
    publish to another account (the baseline through the gateway) and, every fifth, one to a
    subject no gateway serves (the baseline without it).
    ``phases``: (label, session synchronous_commit off)."""
    from suho_mt5._names import TENANT_SETTING
    from suho_mt5.commands._connect import connect_database
    from suho_mt5.commands.signal import publish_signal

    conn = await connect_database(ingest_url)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    timer = _Timer(js, conn)
    direct = uuid.UUID(int=10**9 + 1)
    direct_subject = outbound_subject("signal", TENANT, direct)
    sink: list[list[float]] = [[]]  # the current phase's baseline without the gateway

    async def on_msg(msg: Any) -> None:
        now = time.time_ns()
        sink[0].append((now - int.from_bytes(msg.data[16:24], "little") * 1000) / 1e6)
        await msg.ack()

    sub = await js.subscribe(direct_subject, cb=on_msg, manual_ack=True,
                             deliver_policy=DeliverPolicy.NEW)
    kwargs: dict[str, Any] = {
        "tenant_id": TENANT, "symbol": "EURUSD", "action": "BUY", "volume": Decimal("0.10"),
        "entry_price": Decimal("1.09530"), "stop_loss": Decimal("1.09030"),
        "take_profit": Decimal("1.10530"), "confidence": Decimal("0.85"),
        "strategy_name": "bench", "listener": timer}
    loop = asyncio.get_running_loop()
    try:
        async with conn.cursor() as cur:  # as `signal send` does: the tenant, for the session
            await cur.execute("SELECT set_config(%s, %s, false)", (TENANT_SETTING, TENANT))
        await conn.commit()
        for i in range(_WARM_UP):  # plans, the chunk, the first connections: not timed
            await publish_signal(conn, js, account_id=accounts[i % len(accounts)],
                                 **{k: v for k, v in kwargs.items() if k != "listener"})
        out = [_Phase(label) for label, _ in phases]
        loads: list[list[float]] = [[] for _ in phases]
        start = loop.time()
        for i in range(count * len(phases)):
            # the phases alternate in blocks, so that they share the machine's load
            k = (i // _BLOCK) % len(phases)
            phase = out[k]
            if i % _BLOCK == 0:
                if i:
                    loads[(k - 1) % len(phases)].append(os.getloadavg()[0])
                async with conn.cursor() as cur:
                    await cur.execute("SET synchronous_commit = "
                                      + ("off" if phases[k][1] else "on"))
                await conn.commit()
                sink[0] = phase.beside
            timer.call = call = _Call()
            signal_id = uuid.uuid4()
            call.start = _perf()
            await publish_signal(timer.conn, timer, account_id=accounts[i % len(accounts)],
                                 signal_id=signal_id, **kwargs)
            call.end = _perf()
            phase.calls[signal_id.hex] = call
            raw = _raw_signal(accounts[(i + len(accounts) // 2) % len(accounts)])
            phase.raw.add(raw[40:56].hex())
            await js.publish(outbound_subject("signal", TENANT, uuid.UUID(bytes=raw[24:40])),
                             raw)
            if i % 5 == 0:
                await js.publish(direct_subject, _raw_signal(direct))
            delay = start + (i + 1) / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        loads[(count * len(phases) - 1) // _BLOCK % len(phases)].append(os.getloadavg()[0])
        await asyncio.sleep(1.0)  # the last baseline messages
        for phase, seen in zip(out, loads, strict=True):
            phase.load = max(seen, default=0.0)
    finally:
        await sub.unsubscribe()
        await nc.close()
        await conn.close()
    return out


def _row_set(phase: _Phase, eas: list[dict[str, Any]], n_eas: int) -> tuple[list[Row], str]:
    """The phase's rows, and the sentence naming its limiting hop."""
    seen: dict[str, tuple[int, int]] = {}  # signal id hex -> (timestamp us, receipt ns)
    for ea in eas:
        for _, sid, ts, recv in ea["signals"]:
            seen.setdefault(sid, (ts, recv))
    e2e = [(seen[s][1] - seen[s][0] * 1000) / 1e6 for s in phase.calls if s in seen]
    # publish start -> EA: the same receipts, from the wall clock at the JetStream publish
    after = [(seen[s][1] - c.publish_wall_ns) / 1e6 for s, c in phase.calls.items() if s in seen]
    raw = [(seen[s][1] - seen[s][0] * 1000) / 1e6 for s in phase.raw if s in seen]
    calls = list(phase.calls.values())
    ms = 1000.0
    stored = [(c.committed - c.start) * ms for c in calls]
    insert = [(c.first_commit - c.start) * ms for c in calls]
    commit = [(c.committed - c.first_commit) * ms for c in calls]
    publish = [(c.publish_end - c.publish_start) * ms for c in calls]
    sent = [(c.sent - c.publish_end) * ms for c in calls]
    steps = {
        "insert + commit (call start -> insert committed)": stored,
        "of which the insert (its audit-log row included, by a trigger)": insert,
        "of which its commit": commit,
        "JetStream publish, to its ack": publish,
        "status update 'sent' + commit (after the EA has the signal)": sent,
        "whole publish_signal call": [(c.end - c.start) * ms for c in calls],
    }

    def stats(values: list[float]) -> str:
        return (f"p99 {_q(values, 0.99):.2f}, p99.9 {_q(values, 0.999):.2f}, "
                f"max {max(values, default=float('nan')):.2f} ms")

    p99 = _q(e2e, 0.99)
    rows = [
        Row(f"[{phase.label}] publish_signal call -> EA socket, p50 ({n_eas} EAs)", None, "ms",
            measured=_q(e2e, 0.5), note=f"{stats(e2e)}; {len(e2e)} of {len(phase.calls)} "
            f"received; load average (1 min) up to {phase.load:.2f}"),
        Row(f"[{phase.label}] same, p99", None, "ms", measured=p99,
            target_text=f"goal < {GOAL_P99_MS:g} ms",
            note="met" if p99 < GOAL_P99_MS else "NOT met"),
        Row(f"[{phase.label}] goal / p99 ({GOAL_P99_MS:g} ms / measured p99)", None, "x",
            measured=GOAL_P99_MS / p99, target=1.0, target_text=">= 1x"),
        *(Row(f"[{phase.label}] inside the call: {name}, p50", None, "ms",
              measured=_q(values, 0.5), note=stats(values))
          for name, values in steps.items()),
        Row(f"[{phase.label}] its JetStream publish start -> EA socket, p50", None, "ms",
            measured=_q(after, 0.5), note=stats(after)),
        Row(f"[{phase.label}] baseline beside it: SIGNAL published straight to JetStream -> "
            "EA socket (the gateway benchmark's figure), p50", None, "ms",
            measured=_q(raw, 0.5), note=f"{stats(raw)}; {len(raw)} signals; publish_signal "
            f"p99 = {p99 / _q(raw, 0.99):.1f}x this p99"),
        Row(f"[{phase.label}] baseline without the gateway: JetStream publish -> nats-py push "
            "consumer, p50", None, "ms", measured=_q(phase.beside, 0.5),
            note=f"{stats(phase.beside)}; {len(phase.beside)} signals"),
    ]
    stored99, after99 = _q(stored, 0.99), _q(after, 0.99)
    hop, other = (("the insert and its commit", "publish -> EA socket")
                  if stored99 >= after99 else ("publish -> EA socket", "the insert and its commit"))
    sentence = (
        f"**{phase.label}**: publish_signal -> EA socket p50 {_q(e2e, 0.5):.2f} ms, p99 "
        f"{p99:.2f} ms ({'under' if p99 < GOAL_P99_MS else 'over'} the {GOAL_P99_MS:g} ms goal; "
        f"{p99 / _q(raw, 0.99):.1f}x the p99 of a SIGNAL published straight to JetStream beside "
        f"it, {_q(raw, 0.99):.2f} ms). The limiting hop is {hop}: p99 "
        f"{max(stored99, after99):.2f} ms, against {min(stored99, after99):.2f} ms for {other} "
        f"(the insert, its audit-log row included, p99 {_q(insert, 0.99):.2f} ms; its commit "
        f"p99 {_q(commit, 0.99):.2f} ms; JetStream publish to ack p99 {_q(publish, 0.99):.2f} "
        f"ms; the status update, after the EA has the signal, p99 {_q(sent, 0.99):.2f} ms). "
        f"Load average (1 min) up to {phase.load:.2f}.")
    return rows, sentence


@section(_TITLE, order=41)
def signal_path_section(settings: Settings) -> Section:
    sys.path.insert(0, str(REPO_ROOT))
    from tests.support.servers import NatsServer

    from .ingest import _accounts_copy, _database, _timescale

    began = datetime.now(UTC)
    load_before = os.getloadavg()[0]
    quick = settings.repeats < 7
    n_eas = 100 if quick else 500
    count = 200 if quick else 1000
    rate = 50.0
    phases = [("durable commit", False), ("synchronous_commit=off", True)]
    accounts = [a.account_id for a in _accounts(1, n_eas)]
    # the EAs stream from their first WELCOME until the last phase has ended (and then some)
    stream_s = SETTLE_S + len(phases) * (count / rate + 3) + 30
    workdir = Path(tempfile.mkdtemp(prefix="suho-bench-sigpath-"))
    nats_server = NatsServer(workdir).start()
    gw: _GatewayProcess | None = None
    proc: subprocess.Popen[bytes] | None = None
    try:
        with _timescale(_DURABLE) as server:
            admin, ingest = _database(server)
            _accounts_copy(admin, dict.fromkeys(accounts, TENANT))
            asyncio.run(_create_streams(nats_server.url))
            accounts_file = workdir / "accounts.json"
            accounts_file.write_text(json.dumps([str(a) for a in accounts]))
            gw = _GatewayProcess(nats_server.url, accounts_file)
            gw.start()
            out = workdir / "fleet.json"
            proc = _start_fleet(gw, n_eas, stream_s, out)
            connected = gw.wait_connected(n_eas)
            time.sleep(SETTLE_S)
            done = run_fast(_backend(ingest, nats_server.url, accounts, count, rate, phases))
            hops = _hop_quantiles(gw.metrics_port)
            proc.wait(stream_s + 300)
        eas = json.loads(out.read_text())
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if gw is not None:
            gw.stop()
        nats_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    rows: list[Row] = []
    sentences = []
    for phase in done:
        phase_rows, sentence = _row_set(phase, eas, connected)
        rows += phase_rows
        sentences.append(sentence)
    rows += [Row(f"gateway's own histogram, hop {hop}: p99 at most", None, "ms",
                 measured=p99_bound, note=f"p50 at most {p50_bound:g} ms (both phases)")
             for hop, (p50_bound, p99_bound) in hops.items()]
    intro = (
        f"{connected} simulated EAs (half WebSocket, half TCP; their own process, streaming "
        "at the seed's rates) connected to a gateway process; one long-running backend (this "
        "process: one database connection of an `mt5_ingest` login, one NATS connection, "
        f"both kept open) calls `publish_signal` {count} times per phase at {rate:g}/s (the "
        f"two phases alternating every {_BLOCK} calls, after {_WARM_UP} untimed ones), "
        f"round-robin over the accounts, {SETTLE_S:g} s after the last EA connected. Each call "
        "is followed by one SIGNAL published straight to JetStream for another account (the "
        "gateway benchmark's measure, beside it under the same load) and, every fifth, one "
        "to a plain nats-py consumer (no gateway). Latency is the packet's timestamp (for "
        "`publish_signal` the moment the call starts) to the moment its bytes reached the "
        "EAs' process, on one clock; the steps inside the call are timed by the backend "
        "through the function's listener and a wrapper of its JetStream context. "
        "TimescaleDB runs with PostgreSQL's durable defaults (`fsync`, `full_page_writes`, "
        "`synchronous_commit` on), on the same two cores and disk as everything else; the "
        "second phase sets `synchronous_commit = off` for the backend's session only (a "
        "crash may lose the last commits' signals, never corrupt the database). "
        f"Event loop: {_loop_name()}. Latencies in ms; `median` is the measured value."
    )
    sentences.append(
        f"_This section: `python -m benchmarks --only signal_path`, {began:%Y-%m-%d %H:%M}-"
        f"{datetime.now(UTC):%H:%M} UTC; load average (1 min) {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after._")
    return Section(_TITLE, intro, rows, extra_markdown="\n\n".join(sentences))
