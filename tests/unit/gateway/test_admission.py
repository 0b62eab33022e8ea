"""The gateway's admission units without servers: the bounded, prioritised key-check queue,
the limiter's count of running checks, the PROXY protocol parser."""

from __future__ import annotations

import asyncio
import socket
import struct
import uuid

import pytest

from suho_mt5.db import AccountIdentity
from suho_mt5.errors import AuthenticationError, DatabaseError
from suho_mt5.gateway._auth import KeyChecks, KeyChecksBusy, LoginLimiter
from suho_mt5.gateway._proxy import ProxyHeaderError, TrustedProxies, parse_proxy_header


class _SlowChecks:
    """A key check that takes until released; records the order checks started in."""

    def __init__(self) -> None:
        self.started: list[uuid.UUID] = []
        self.release = asyncio.Event()

    async def __call__(self, account: uuid.UUID, key: str) -> AccountIdentity:
        self.started.append(account)
        await self.release.wait()
        return AccountIdentity("t", "u", account, "fp")


def test_key_checks_are_bounded_known_accounts_go_first_and_leavers_are_dropped() -> None:
    async def scenario() -> None:
        slow = _SlowChecks()
        checks = KeyChecks(slow, workers=1, limit=3, unknown_rate=0, unknown_burst=0)
        ids = [uuid.UUID(int=i) for i in range(10)]
        running = asyncio.ensure_future(checks.check(ids[0], "k", known=False))
        await asyncio.sleep(0)
        strangers = [asyncio.ensure_future(checks.check(ids[i], "k", known=False))
                     for i in (1, 2, 3)]
        await asyncio.sleep(0)
        # The queue is full: another stranger is refused, a known account pushes one out.
        with pytest.raises(KeyChecksBusy):
            await checks.check(ids[4], "k", known=False)
        known = asyncio.ensure_future(checks.check(ids[5], "k", known=True))
        await asyncio.sleep(0.01)
        assert strangers[2].done() and isinstance(strangers[2].exception(), KeyChecksBusy)
        strangers[0].cancel()  # its client left while it waited
        await asyncio.sleep(0)
        slow.release.set()
        await asyncio.gather(running, known, strangers[1])
        assert slow.started == [ids[0], ids[5], ids[2]]
        assert checks.running == 0 and checks.waiting == 0

    asyncio.run(scenario())


def test_a_check_whose_client_left_holds_its_slot_until_the_database_is_done() -> None:
    async def scenario() -> None:
        slow = _SlowChecks()
        checks = KeyChecks(slow, workers=1, limit=5, unknown_rate=0, unknown_burst=0)
        first = asyncio.ensure_future(checks.check(uuid.UUID(int=1), "k", known=True))
        await asyncio.sleep(0.01)
        first.cancel()
        second = asyncio.ensure_future(checks.check(uuid.UUID(int=2), "k", known=True))
        await asyncio.sleep(0.01)
        assert checks.running == 1 and slow.started == [uuid.UUID(int=1)]
        slow.release.set()
        await second
        assert slow.started == [uuid.UUID(int=1), uuid.UUID(int=2)]

    asyncio.run(scenario())


def test_checks_for_unknown_accounts_are_bounded_in_rate() -> None:
    async def scenario() -> None:
        slow = _SlowChecks()
        slow.release.set()
        checks = KeyChecks(slow, workers=4, limit=100, unknown_rate=0.001, unknown_burst=3)
        for i in range(3):
            await checks.check(uuid.UUID(int=i), "k", known=False)
        with pytest.raises(KeyChecksBusy):
            await checks.check(uuid.UUID(int=9), "k", known=False)
        await checks.check(uuid.UUID(int=9), "k", known=True)  # known accounts: no rate

    asyncio.run(scenario())


def test_the_expected_duration_is_that_of_checks_run_as_many_at_once_as_now() -> None:
    """After four contended checks (slow) and three alone (fast), an idle gateway expects a
    check alone: the pause for an id that does not exist matches a real refusal now, not
    the flood's (docs/security.md, refusal timing)."""
    async def scenario() -> None:
        delays = iter([0.2] * 4 + [0.02] * 3)

        async def check(account: uuid.UUID, key: str) -> AccountIdentity:
            await asyncio.sleep(next(delays))
            raise AuthenticationError("invalid account id or API key")

        checks = KeyChecks(check, workers=4, limit=10, unknown_rate=0, unknown_burst=0)
        flood = [asyncio.ensure_future(checks.check(uuid.UUID(int=i), "k", known=True))
                 for i in range(4)]
        await asyncio.gather(*flood, return_exceptions=True)
        for i in range(3):
            with pytest.raises(AuthenticationError):
                await checks.check(uuid.UUID(int=10 + i), "k", known=True)
        assert max(checks.expected_s() for _ in range(200)) < 0.1
        # with four running, a fifth waits for one of them, then runs contended
        checks.running = 4
        assert min(checks.expected_s() for _ in range(50)) > 0.2
        checks.running = 0

    asyncio.run(scenario())


def test_checks_the_database_could_not_answer_are_not_durations_to_imitate() -> None:
    """Key checks that failed fast (the database restarting) leave the expected duration
    as the real checks made it: after an outage, an id that does not exist is still refused
    after as long a pause as a real refusal (docs/security.md, "Faults")."""
    async def scenario() -> None:
        down = False

        async def check(account: uuid.UUID, key: str) -> AccountIdentity:
            if down:
                raise DatabaseError("the database could not check the API key")
            await asyncio.sleep(0.1)
            raise AuthenticationError("invalid account id or API key")

        checks = KeyChecks(check, workers=1, limit=10, unknown_rate=0, unknown_burst=0)
        for i in range(3):
            with pytest.raises(AuthenticationError):
                await checks.check(uuid.UUID(int=i), "k", known=True)
        down = True
        for i in range(20):
            with pytest.raises(DatabaseError):
                await checks.check(uuid.UUID(int=10 + i), "k", known=True)
        assert checks.started == 23
        assert min(checks.expected_s() for _ in range(200)) >= 0.1

    asyncio.run(scenario())


def test_the_limiter_counts_running_checks_and_waiters_learn_the_outcome() -> None:
    async def scenario() -> None:
        limiter = LoginLimiter(2, 60.0)
        acc = uuid.UUID(int=1)
        a = await limiter.admit("x", acc, known=False)
        b = await limiter.admit("x", acc, known=False)
        assert a and b
        third = asyncio.ensure_future(limiter.admit("x", acc, known=False))
        await asyncio.sleep(0)
        assert not third.done()  # waits: two checks are running
        limiter.finish(a, failed=False)  # a success frees the budget
        c = await third
        assert c is not None
        fourth = asyncio.ensure_future(limiter.admit("x", acc, known=False))
        limiter.finish(b, failed=True)
        limiter.finish(c, failed=True)
        assert await fourth is None  # two failures: the budget is gone
        assert limiter.blocked("x") and 0 < limiter.retry_after_s("x") <= 60
        # An account that authenticated before has a budget of its own at this address.
        assert await limiter.admit("x", uuid.UUID(int=2), known=True) is not None

    asyncio.run(scenario())


def test_proxy_headers_v1_and_v2() -> None:
    v1 = b"PROXY TCP6 2001:db8::1 2001:db8::2 40000 8001\r\n"
    assert parse_proxy_header(v1 + b"rest") is not None
    assert parse_proxy_header(v1).address == "2001:db8::1"  # type: ignore[union-attr]
    assert parse_proxy_header(b"PROXY UNKNOWN\r\n").address is None  # type: ignore[union-attr]
    body = socket.inet_aton("198.51.100.9") + socket.inet_aton("10.0.0.1") + struct.pack(
        "!HH", 5000, 8001)
    v2 = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body
    header = parse_proxy_header(v2 + b"SUHO")
    assert header is not None and (header.address, header.length) == ("198.51.100.9", 28)
    assert parse_proxy_header(v2[:20]) is None
    local = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x20, 0x00]) + b"\x00\x00"
    assert parse_proxy_header(local).address is None  # type: ignore[union-attr]
    for bad in (b"SUHO....", b"PROXY TCP4 nonsense\r\n", b"PROXY " + b"9" * 200,
                b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x11, 0x11]) + b"\x00\x0c" + body,
                b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + b"\xff\xff"):
        with pytest.raises(ProxyHeaderError):
            parse_proxy_header(bad)
    trusted = TrustedProxies(["10.0.0.0/8", "::1"])
    assert trusted.trusts("::ffff:10.1.1.1") and trusted.trusts("::1")
    assert not trusted.trusts("11.0.0.1") and not trusted.trusts("garbage")
