"""Every refusal is a clear ERROR packet or close code, is logged, and forwards nothing.

The gateway runs in this process on real sockets, against nats-server and a migrated
PostgreSQL database (the key is checked by bcrypt in ``mt5_authenticate``).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import nats
import pytest

from suho_mt5.errors import SessionRefusedError
from suho_mt5.gateway import Gateway, open_connection
from suho_mt5.protocol import (
    AckPacket,
    BrokerQuotePacket,
    CloseCode,
    ErrorCode,
    ErrorPacket,
    GoodbyePacket,
    HeartbeatPacket,
    MessageType,
    SessionResult,
    SignalPacket,
    WelcomePacket,
    WireAction,
    encode,
)

from ._support import GatewayDb, metric, running_gateway, stored_packets

pytestmark = pytest.mark.timeout(120)
TRANSPORTS = ("ws", "tcp")


def _url(gw: Gateway, transport: str) -> str:
    return f"{transport}://127.0.0.1:{gw.ws_port if transport == 'ws' else gw.tcp_port}"


def _quote(acc: bytes, seq: int) -> BrokerQuotePacket:
    return BrokerQuotePacket(seq, time.time_ns() // 1000, acc, "EURUSD", 109_531_000,
                             109_533_000, 0, 0, 2)


async def _refused(gw: Gateway, transport: str, account: uuid.UUID, key: str
                   ) -> tuple[WelcomePacket, int | None]:
    conn = await open_connection(_url(gw, transport))
    with pytest.raises(SessionRefusedError):
        await conn.hello(account, key)
    await conn.wait_closed(5)
    assert conn.welcome is not None
    return conn.welcome, conn.close_code


async def _messages_on_bus(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return (await nc.jetstream().stream_info("MT5_ACCOUNTS")).state.messages
    finally:
        await nc.close()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_wrong_key_and_unknown_account_get_the_same_refusal(
    gw_db: GatewayDb, nats_url: str, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url) as gw:
            wrong_key = await _refused(gw, transport, gw_db.accounts[0].account_id, "nope")
            unknown = await _refused(gw, transport, uuid.uuid4(), gw_db.accounts[0].api_key)
            for welcome, code in (wrong_key, unknown):
                assert welcome.result is SessionResult.REFUSED
                assert (welcome.last_accepted_sequence, welcome.heartbeat_interval_ms,
                        welcome.retry_after_ms) == (0, 0, 1000)
                assert code == CloseCode.AUTH_FAILED
            assert metric(gw, "suho_gateway_auth_failures_total", reason="refused") == 2
            assert not gw.sessions
        assert await _messages_on_bus(nats_url) == 0

    with caplog.at_level(logging.WARNING, "suho_mt5.gateway"):
        asyncio.run(scenario())
    refusals = [r for r in caplog.records if "invalid account id or API key" in r.getMessage()]
    assert len(refusals) == 1  # sampled: at most one line per kind every 10 s


def test_a_flood_of_bad_logins_is_rate_limited_without_asking_the_database(
    gw_db: GatewayDb, nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    account = gw_db.accounts[1]

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url, max_failed_logins=3,
                                   max_failed_logins_per_account=0) as gw:
            for _ in range(3):
                welcome, code = await _refused(gw, "tcp", account.account_id, "guess")
                assert welcome.result is SessionResult.REFUSED
            for transport in TRANSPORTS:  # the address is blocked, whatever it sends
                welcome, code = await _refused(gw, transport, account.account_id,
                                               account.api_key)
                assert welcome.result is SessionResult.RATE_LIMITED
                assert code == CloseCode.RATE_LIMITED
                assert 0 < welcome.retry_after_ms <= 60_000
            assert metric(gw, "suho_gateway_auth_failures_total", reason="refused") == 3
            assert metric(gw, "suho_gateway_auth_failures_total", reason="rate_limited") == 2
        assert await _messages_on_bus(nats_url) == 0

    with caplog.at_level(logging.WARNING, "suho_mt5.gateway"):
        asyncio.run(scenario())
    assert any("too many failed logins" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_bad_packets_get_errors_and_only_good_ones_reach_the_bus(
    gw_db: GatewayDb, nats_url: str, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another account's packet, a replayed sequence, a backend -> EA type, a broken CRC:
    each gets its ERROR, the session goes on, and the bus holds exactly the good packets."""
    me = gw_db.accounts[2]
    acc = me.account_id.bytes
    other = gw_db.other_tenant_account.bytes

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url) as gw:
            conn = await open_connection(_url(gw, transport))
            await conn.hello(me.account_id, me.api_key)
            broken = bytearray(encode(_quote(acc, 5)))
            broken[60] ^= 1
            signal = SignalPacket(6, 0, acc, uuid.uuid4().bytes, "EURUSD", 0, 0, 0, 1, 0, 1,
                                  WireAction.BUY)
            await conn.send(_quote(acc, 1), _quote(acc, 2), _quote(other, 3), _quote(acc, 2),
                            bytes(broken), signal, _quote(acc, 7))
            errors: list[ErrorPacket] = []
            acked = 0
            while len(errors) < 4 or acked < 7:
                for packet in await conn.recv(5):
                    if isinstance(packet, ErrorPacket):
                        errors.append(packet)
                    elif isinstance(packet, AckPacket):
                        acked = max(acked, packet.acked_sequence)
            assert [(e.code, e.ref_sequence) for e in errors] == [
                (ErrorCode.NOT_AUTHENTICATED, 3),
                (ErrorCode.SEQUENCE_REPLAYED, 2),
                (ErrorCode.CHECKSUM_MISMATCH, 0),
                (ErrorCode.WRONG_DIRECTION, 6),
            ]
            assert all(e.sequence == 0 and e.account_id == acc for e in errors)
            assert metric(gw, "suho_gateway_packets_rejected_total", code="WRONG_DIRECTION") == 1
            assert metric(gw, "suho_gateway_sequence_gaps_total") == 4  # 3..6 never accepted
            await conn.close()
            js = gw.js
            counts, _ = await stored_packets(js)
            assert counts == {(str(me.account_id), 1): 1, (str(me.account_id), 2): 1,
                              (str(me.account_id), 7): 1}

    with caplog.at_level(logging.WARNING, "suho_mt5.gateway"):
        asyncio.run(scenario())
    logged = " ".join(r.getMessage() for r in caplog.records)
    for code in ("NOT_AUTHENTICATED", "SEQUENCE_REPLAYED", "CHECKSUM_MISMATCH",
                 "WRONG_DIRECTION"):
        assert code in logged


def test_a_replay_after_reconnect_is_refused_and_the_welcome_says_where_to_resume(
    gw_db: GatewayDb, nats_url: str
) -> None:
    me = gw_db.accounts[3]
    acc = me.account_id.bytes

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url) as gw:
            conn = await open_connection(_url(gw, "tcp"))
            assert (await conn.hello(me.account_id, me.api_key)).last_accepted_sequence == 0
            await conn.send(*(_quote(acc, s) for s in range(1, 11)))
            while True:
                acks = [p for p in await conn.recv(5) if isinstance(p, AckPacket)]
                if acks and acks[-1].acked_sequence == 10:
                    break
            await conn.close()
            again = await open_connection(_url(gw, "ws"))
            welcome = await again.hello(me.account_id, me.api_key)
            assert welcome.last_accepted_sequence == 10
            await again.send(_quote(acc, 10))
            packets = await again.recv(5)
            assert isinstance(packets[0], ErrorPacket)
            assert packets[0].code is ErrorCode.SEQUENCE_REPLAYED
            await again.close()
            counts, _ = await stored_packets(gw.js)
            assert sorted(counts.values()) == [1] * 10

    asyncio.run(scenario())


def test_the_first_packet_must_be_hello(gw_db: GatewayDb, nats_url: str) -> None:
    me = gw_db.accounts[4]

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url) as gw:
            for transport in TRANSPORTS:
                conn = await open_connection(_url(gw, transport))
                await conn.send(HeartbeatPacket(1, 0, me.account_id.bytes, "1.0", 1, 1, True,
                                                True))
                packets = []
                while (batch := await conn.recv(5)):
                    packets += batch
                assert isinstance(packets[0], ErrorPacket)
                assert packets[0].code is ErrorCode.NOT_AUTHENTICATED
                assert isinstance(packets[-1], GoodbyePacket)
                assert conn.close_code == CloseCode.PROTOCOL_VIOLATION
        assert await _messages_on_bus(nats_url) == 0

    asyncio.run(scenario())


def test_silence_after_connecting_is_an_auth_timeout(gw_db: GatewayDb, nats_url: str) -> None:
    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url, hello_timeout_s=0.3) as gw:
            conn = await open_connection(_url(gw, "ws"))
            assert await conn.wait_closed(10) == CloseCode.AUTH_TIMEOUT

    asyncio.run(scenario())


def test_a_second_connection_supersedes_the_first(gw_db: GatewayDb, nats_url: str) -> None:
    me = gw_db.accounts[5]

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url) as gw:
            first = await open_connection(_url(gw, "tcp"))
            await first.hello(me.account_id, me.api_key)
            second = await open_connection(_url(gw, "ws"))
            await second.hello(me.account_id, me.api_key)
            assert await first.wait_closed(5) == CloseCode.SUPERSEDED
            assert gw.sessions[me.account_id].transport.name == "ws"
            await second.send(AckPacket(1, 0, me.account_id.bytes, 1, MessageType.SIGNAL))
            await second.close()

    asyncio.run(scenario())


def test_an_ea_that_lost_its_counter_continues_after_the_welcome(
    gw_db: GatewayDb, nats_url: str
) -> None:
    """A reinstalled EA restarts at sequence 1: refused as replayed until it numbers after
    WELCOME's last_accepted_sequence, which the simulator does."""
    from suho_mt5.gateway.simulator import Rates, SimulatedEA

    me = gw_db.accounts[6]

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url) as gw:
            url = f"tcp://127.0.0.1:{gw.tcp_port}"
            first = SimulatedEA(me, url, Rates(speed=50))
            await first.run(0.5, drain_s=5)
            assert first.stats.data_sent and not first.outbox
            reinstalled = SimulatedEA(me, url, Rates(speed=50))  # counter back at 1
            await reinstalled.run(0.5, drain_s=5)
            assert reinstalled.stats.data_sent[0] > first.stats.data_sent[-1]
            assert not reinstalled.stats.errors and not reinstalled.outbox
            counts, _ = await stored_packets(gw.js)
            assert set(counts.values()) == {1}
            assert len(counts) == len(first.stats.data_sent) + len(reinstalled.stats.data_sent)

    asyncio.run(scenario())
