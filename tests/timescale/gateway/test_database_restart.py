"""PostgreSQL restarted while the gateway authenticates EAs (docs/security.md, "Faults").

The gateway checks keys through a real login in ``mt5_app`` on a TimescaleDB server of the
test's own (``_outage_ts_proc``: the session's servers are shared and must stay up), which
is stopped (``pg_ctl stop -m fast``) for a few seconds and started again while EAs log in
over and over and others stream. A key check that meets the outage is answered
``UNAVAILABLE`` (close ``BACKEND_UNAVAILABLE``, a retry delay), never ``REFUSED``
(``AUTH_FAILED`` tells a real EA to stop retrying), and is not counted against the address's
failed logins; the connected EAs keep streaming, every packet ACKed is on the bus; and once
the server is back, every EA gets in again (the pool's pre-ping replaces the dead
connections).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import nats
import pytest

from suho_mt5.db import Edition
from suho_mt5.errors import SessionRefusedError
from suho_mt5.gateway import DatabaseAuthenticator, Gateway, open_connection
from suho_mt5.gateway.simulator import SimAccount
from suho_mt5.protocol import AckPacket, BrokerQuotePacket, CloseCode, SessionResult
from tests.support.fixtures import PgServer

from ._support import GatewayDb, metric, prepare_database, running_gateway, stored_packets

pytestmark = pytest.mark.timeout(120)

#: how long the database stays down
DOWN_S = 3.0
#: the streaming EAs' packet interval
EVERY_S = 0.05


@pytest.fixture
def restartable_db(_outage_ts_proc: Any) -> Iterator[tuple[GatewayDb, Any]]:
    """Accounts and a gateway login on a TimescaleDB server this test may stop and start;
    the first two accounts' keys are hashed at bcrypt cost 12 (a check takes ~200 ms, so
    one is likely running when the server stops), the others' at cost 4."""
    executor = _outage_ts_proc
    server = PgServer.of(executor)
    name = server.create_database()
    try:
        yield prepare_database(server.url(name), 14, Edition.TIMESCALE, cheap_from=2), executor
    finally:
        if not executor.running():
            executor.start()
        server.drop_database(name)


@dataclass
class Attempt:
    started: float
    ended: float
    outcome: str
    close_code: int | None = None
    retry_after_ms: int = 0


@dataclass
class Streamer:
    account: SimAccount
    sent: list[tuple[int, float]] = field(default_factory=list)
    acked: set[int] = field(default_factory=set)
    closed: int | None = None


async def _log_in_again_and_again(url: str, account: SimAccount, stop: asyncio.Event,
                                  attempts: list[Attempt]) -> None:
    """An EA that logs in, leaves at once and logs in again, waiting what a refusal asks."""
    while not stop.is_set():
        started, pause = time.monotonic(), 0.1
        try:
            conn = await open_connection(url)
        except OSError as exc:
            attempts.append(Attempt(started, time.monotonic(), f"connect: {exc}"))
            await asyncio.sleep(pause)
            continue
        try:
            await conn.hello(account.account_id, account.api_key)
            outcome = "ACCEPTED"
        except SessionRefusedError:
            assert conn.welcome is not None
            outcome = conn.welcome.result.name
            pause = conn.welcome.retry_after_ms / 1000
        except Exception as exc:  # closed without a WELCOME, a protocol error: a finding
            outcome = f"{type(exc).__name__}: {exc}"
        finally:
            await conn.close()
        welcome = conn.welcome
        attempts.append(Attempt(started, time.monotonic(), outcome, conn.close_code,
                                welcome.retry_after_ms if welcome is not None else 0))
        await asyncio.sleep(pause)


async def _stream(url: str, me: Streamer, connected: asyncio.Event, stop: asyncio.Event
                  ) -> None:
    """A connected EA sending a quote every :data:`EVERY_S` and reading its ACKs."""
    conn = await open_connection(url)
    await conn.hello(me.account.account_id, me.account.api_key)
    connected.set()
    acc = me.account.account_id.bytes

    async def read() -> None:
        while packets := await conn.recv():
            me.acked.update(p.acked_sequence for p in packets if isinstance(p, AckPacket))
        me.closed = conn.close_code or -1

    reading = asyncio.create_task(read())
    seq = 0
    while not stop.is_set() and me.closed is None:
        seq += 1
        await conn.send(BrokerQuotePacket(seq, time.time_ns() // 1000, acc, "EURUSD",
                                          109_531_000, 109_533_000, 0, 0, 2))
        me.sent.append((seq, time.monotonic()))
        await asyncio.sleep(EVERY_S)
    deadline = time.monotonic() + 10
    while len(me.acked) < seq and me.closed is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    still_open = me.closed is None
    await conn.close()
    reading.cancel()
    await asyncio.gather(reading, return_exceptions=True)
    if still_open:
        me.closed = None  # closed by us, at the end


def test_postgresql_restarted_while_eas_log_in_is_unavailable_never_refused(
    restartable_db: tuple[GatewayDb, Any], nats_url: str,
) -> None:
    """Nine EAs log in over and over (six from the start, two of them with cost-12 keys; three
    first try while the database is down), three stream quotes, while PostgreSQL stops for
    :data:`DOWN_S` s and starts again."""
    db, executor = restartable_db
    slow, streaming, looping, late = (db.accounts[:2], db.accounts[2:5], db.accounts[5:9],
                                      db.accounts[9:12])
    attempts: dict[uuid.UUID, list[Attempt]] = {a.account_id: []
                                                for a in [*slow, *looping, *late]}
    streamers = [Streamer(a) for a in streaming]

    async def scenario() -> tuple[Gateway, float, float, int]:
        # No cache: every HELLO is a key check in the database, the strictest case (with the
        # cache, an EA coming back needs no check at all); the keys of connected accounts are
        # re-read every second, so re-reads fail during the outage too.
        async with running_gateway(db, nats_url, auth_cache_ttl_s=0.0,
                                   auth_recheck_s=1.0) as gw:
            tcp, ws = f"tcp://127.0.0.1:{gw.tcp_port}", f"ws://127.0.0.1:{gw.ws_port}"
            stop, stop_streaming = asyncio.Event(), asyncio.Event()
            streams = []
            for me in streamers:
                connected = asyncio.Event()
                streams.append(asyncio.create_task(
                    _stream(tcp, me, connected, stop_streaming)))
                await asyncio.wait_for(connected.wait(), 10)
            loops = [asyncio.create_task(_log_in_again_and_again(
                ws if i % 2 else tcp, a, stop, attempts[a.account_id]))
                for i, a in enumerate([*slow, *looping])]
            await asyncio.sleep(2)
            down_at = time.monotonic()
            await asyncio.to_thread(executor.stop)  # pg_ctl stop -m fast
            loops += [asyncio.create_task(_log_in_again_and_again(
                ws if i % 2 else tcp, a, stop, attempts[a.account_id]))
                for i, a in enumerate(late)]
            await asyncio.sleep(DOWN_S)
            await asyncio.to_thread(executor.start)
            up_at = time.monotonic()

            def all_back() -> bool:
                return all(any(t.outcome == "ACCEPTED" and t.started >= up_at for t in tries)
                           for tries in attempts.values())

            deadline = up_at + 20
            while not all_back() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            stop.set()
            await asyncio.gather(*loops)
            stop_streaming.set()
            await asyncio.gather(*streams)
            window = gw.limiter._failures.get("127.0.0.1")
            return gw, down_at, up_at, 0 if window is None else len(window.failures)

    gw, down_at, up_at, limiter_failures = asyncio.run(scenario())

    outcomes = Counter(t.outcome for tries in attempts.values() for t in tries)
    during = Counter(t.outcome for tries in attempts.values() for t in tries
                     if t.ended >= down_at and t.started <= up_at)
    back_in = {account: min(t.ended for t in tries
                            if t.outcome == "ACCEPTED" and t.started >= up_at) - up_at
               for account, tries in attempts.items()
               if any(t.outcome == "ACCEPTED" and t.started >= up_at for t in tries)}
    reasons = {r: metric(gw, "suho_gateway_auth_failures_total", reason=r)
               for r in ("refused", "rate_limited", "busy", "unavailable")}
    print(f"\nEA logins: {dict(outcomes)}; during the outage: {dict(during)}; in again "
          f"after the restart: {sorted(round(s, 2) for s in back_in.values())} s; auth "
          f"failures by reason: {reasons}; failed logins counted for 127.0.0.1: "
          f"{limiter_failures}")

    # The outage was met: HELLOs got UNAVAILABLE, with BACKEND_UNAVAILABLE and a retry delay.
    assert outcomes["UNAVAILABLE"] >= len(late)
    assert set(outcomes) == {"ACCEPTED", "UNAVAILABLE"}, outcomes  # never REFUSED, never
    # RATE_LIMITED, never closed without a WELCOME
    for tries in attempts.values():
        for t in tries:
            if t.outcome == SessionResult.UNAVAILABLE.name:
                assert t.close_code == CloseCode.BACKEND_UNAVAILABLE
                assert t.retry_after_ms > 0
    assert reasons["refused"] == reasons["rate_limited"] == 0
    # Nothing counted against the address: its window holds no failure.
    assert limiter_failures == 0
    assert not gw.limiter.blocked("127.0.0.1")
    # Every EA got in again once the database was back.
    assert set(back_in) == set(attempts), f"not back in: {set(attempts) - set(back_in)}"
    # Once the server was back, no HELLO was turned away (no dead connection was used).
    after = Counter(t.outcome for tries in attempts.values() for t in tries
                    if t.started >= up_at)
    assert set(after) == {"ACCEPTED"}, after

    # The connected EAs stayed connected and were ACKed throughout, outage included.
    async def on_bus() -> Counter[tuple[str, int]]:
        nc = await nats.connect(nats_url)
        try:
            return (await stored_packets(nc.jetstream()))[0]
        finally:
            await nc.close()

    stored = asyncio.run(on_bus())
    for me in streamers:
        assert me.closed is None, f"a connected EA was closed: {me.closed}"
        assert me.acked == {seq for seq, _ in me.sent}
        assert any(down_at <= at <= up_at for seq, at in me.sent)
        account = str(me.account.account_id)
        assert {seq for (acc, seq) in stored if acc == account} >= me.acked


def test_key_checks_after_a_restart_no_check_saw_get_fresh_connections(
    restartable_db: tuple[GatewayDb, Any],
) -> None:
    """A restart between two key checks (none failed, so nothing told the pool its
    connections died): the next checks succeed at once, on fresh connections (the pool's
    pre-ping), instead of failing on the dead ones."""
    db, executor = restartable_db
    auth = DatabaseAuthenticator(db.gateway_url, workers=2)

    async def check_all() -> list[uuid.UUID]:
        who = await asyncio.gather(*(auth.authenticate(a.account_id, a.api_key)
                                     for a in db.accounts[2:6]))
        return [identity.account_id for identity in who]

    try:
        expected = [a.account_id for a in db.accounts[2:6]]
        assert asyncio.run(check_all()) == expected  # the pool now holds two connections
        executor.stop()
        executor.start()
        assert asyncio.run(check_all()) == expected
    finally:
        auth.close()
