"""Many simulated EAs, resumption and a client that stops reading (scaled down for the suite:
the 500-EA run is in benchmarks/gateway.py)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from pathlib import Path

import nats
import pytest

from suho_mt5.gateway import Resume, open_connection
from suho_mt5.gateway.simulator import Rates, SimulatedEA
from suho_mt5.protocol import AckPacket, CloseCode, GoodbyePacket, MessageType, SignalPacket

from ._support import (
    GatewayDb,
    consumers_settled,
    gateway_process,
    metric,
    publish_signals,
    running_gateway,
    stored_executions,
    stored_packets,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)
N_EAS = 50
SIGNALS_PER_EA = 3
#: the acceptance's disconnect: 10 s away, signals published all along
AWAY_S = 10.0
AWAY_SIGNALS = 20


def test_many_eas_every_packet_once_every_signal_acked_once(
    gw_db: GatewayDb, nats_url: str
) -> None:
    """50 EAs (half WebSocket, half TCP) stream at 10x the seed's rates while 3 signals each
    are published: every packet they numbered is on the bus exactly once, every signal is
    executed once and acked, nothing is left pending."""
    accounts = gw_db.accounts[:N_EAS]

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url) as gw:
            eas = [SimulatedEA(a, f"{'ws' if i % 2 else 'tcp'}://127.0.0.1:"
                               f"{gw.ws_port if i % 2 else gw.tcp_port}", Rates(speed=10))
                   for i, a in enumerate(accounts)]
            run = asyncio.gather(*(ea.run(8.0, drain_s=15.0) for ea in eas))
            published: set[uuid.UUID] = set()

            async def signals_for(ea: SimulatedEA) -> None:
                # Each EA streams for 8 s from its WELCOME (50 bcrypt checks take a while).
                await asyncio.wait_for(ea.connected.wait(), 120)
                for _ in range(SIGNALS_PER_EA):
                    published.update(await publish_signals(gw.js, ea.account.account_id, 1))
                    await asyncio.sleep(0.3)

            try:
                await asyncio.wait_for(asyncio.gather(*(signals_for(ea) for ea in eas)), 40)
            except TimeoutError:
                stuck = [(ea.url, ea.stats) for ea in eas if not ea.stats.sessions]
                pytest.fail(f"EAs that never got a session: {stuck}")
            assert await wait_for(lambda: consumers_settled(
                gw.js, [a.account_id for a in accounts]), 30)
            await run
            assert await wait_for(lambda: not gw.sessions, 10)
            assert metric(gw, "suho_gateway_connected_eas", transport="ws") == 0
            assert metric(gw, "suho_gateway_outbound_acked_total", channel="signal") == \
                len(published)
            assert metric(gw, "suho_gateway_signal_hop_seconds_count",
                          hop="created_to_acked") == len(published)
            counts, _ = await stored_packets(gw.js)
            expected = {(str(ea.account.account_id), seq) for ea in eas
                        for seq in ea.stats.data_sent}
            assert set(counts) == expected
            assert set(counts.values()) == {1}
            executions = await stored_executions(gw.js)
            assert set(executions) == published and set(executions.values()) == {1}
            for ea in eas:
                assert not ea.outbox and ea.stats.sessions == 1
                assert len(ea.stats.signals) == SIGNALS_PER_EA
                assert ea.stats.duplicate_signals == 0 and not ea.stats.errors

    asyncio.run(scenario())


def test_signals_published_while_away_arrive_in_order_and_lost_acks_are_not_resent(
    gw_db: GatewayDb, nats_url: str
) -> None:
    """An EA disconnects (no goodbye) for 10 s while 20 signals are published to it: after
    it reconnects (over the other transport) it receives all of them, in order, exactly
    once; the one it handled before but whose ACK was lost is not sent again."""
    account = gw_db.accounts[0]
    acc = account.account_id.bytes

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url) as gw:
            url = f"tcp://127.0.0.1:{gw.tcp_port}"
            conn = await open_connection(url)
            await conn.hello(account.account_id, account.api_key)
            first = await publish_signals(gw.js, account.account_id, 3)
            got: list[SignalPacket] = []
            while len(got) < 3:
                got += [p for p in await conn.recv(5) if isinstance(p, SignalPacket)]
            assert [uuid.UUID(bytes=s.signal_id) for s in got] == first
            # ACK the first two; the third is handled but its ACK is lost with the connection
            for seq, sig in enumerate(got[:2], start=1):
                await conn.send(AckPacket(seq, 0, acc, sig.sequence, MessageType.SIGNAL))
            await asyncio.sleep(0.2)
            conn.abort()
            # The EA stays away for 10 s while a signal is published every half second.
            gone = time.monotonic()
            assert await wait_for(lambda: account.account_id not in gw.sessions, 5)
            away: list[uuid.UUID] = []
            for _ in range(AWAY_SIGNALS):
                away += await publish_signals(gw.js, account.account_id, 1)
                await asyncio.sleep(AWAY_S / AWAY_SIGNALS)
            assert time.monotonic() - gone >= AWAY_S
            again = await open_connection(f"ws://127.0.0.1:{gw.ws_port}")
            await again.hello(account.account_id, account.api_key,
                              Resume(signal=got[2].sequence))
            later: list[SignalPacket] = [p for p in again.early_packets()
                                         if isinstance(p, SignalPacket)]
            while len(later) < AWAY_SIGNALS:
                later += [p for p in await again.recv(5) if isinstance(p, SignalPacket)]
            # all of them, in publication order, each once
            assert [uuid.UUID(bytes=s.signal_id) for s in later] == away
            sequences = [s.sequence for s in later]
            assert sequences == sorted(set(sequences)) and sequences[0] > got[2].sequence
            for seq, sig in enumerate(later, start=10):
                await again.send(AckPacket(seq, 0, acc, sig.sequence, MessageType.SIGNAL))
            assert await wait_for(lambda: consumers_settled(gw.js, [account.account_id]), 10)
            with pytest.raises(TimeoutError):  # nothing else comes: not the third again
                await again.recv(0.5)
            await again.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_a_client_that_stops_reading_is_closed_and_memory_stays_bounded(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path, transport: str
) -> None:
    """The gateway process: a client authenticates, then reads nothing while 2,000 signals
    are published to it. It is closed with SLOW_CONSUMER (4006), which it finds when it
    reads again; the gateway's RSS stays under 150 MB."""
    account = gw_db.accounts[10 if transport == "tcp" else 11]
    bound = 150 * 2**20

    async def scenario(proc_url: str, rss: list[int], metrics_port: int) -> None:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            conn = await open_connection(proc_url)
            await conn.hello(account.account_id, account.api_key)
            start = time.monotonic()
            await publish_signals(js, account.account_id, 2000)
            await asyncio.sleep(3.0)  # ack timeout (1 s) + one second for the GOODBYE
            rss.append(time.monotonic() - start)
            packets = []
            while (batch := await conn.recv(10)):
                packets += batch
            assert conn.close_code == CloseCode.SLOW_CONSUMER
            if transport == "tcp":
                assert isinstance(packets[-1], GoodbyePacket)
            # JetStream held the rest: at most max_in_flight signals reached the socket
            assert sum(isinstance(p, SignalPacket) for p in packets) <= 256
        finally:
            await nc.close()

    with gateway_process(gw_db, nats_url, tmp_path, extra=["--ack-timeout", "1"]) as proc:
        rss: list[int] = []
        asyncio.run(scenario(proc.url(transport), rss, proc.metrics_port))
        used = proc.rss_bytes()
        import urllib.request

        text = urllib.request.urlopen(
            f"http://127.0.0.1:{proc.metrics_port}/metrics", timeout=5).read().decode()
        assert "suho_gateway_slow_clients_dropped_total 1.0" in text
    assert used < bound, f"gateway RSS {used / 2**20:.0f} MB"
    print(f"gateway RSS after the flood: {used / 2**20:.1f} MB")


def test_commands_and_config_arrive_on_their_channels_and_bad_messages_are_never_sent(
    gw_db: GatewayDb, nats_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """COMMAND and CONFIG have their own channels (and sequences); a message that is not a
    packet of the channel's type for this account is logged and terminated, never sent."""
    from suho_mt5._subjects import outbound_subject
    from suho_mt5.protocol import CommandCode, CommandPacket, ConfigPacket, encode

    from ._support import TENANT, signal_packet

    account = gw_db.accounts[12]
    acc = account.account_id.bytes
    stranger = gw_db.accounts[13].account_id

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url) as gw:
            js = gw.js
            conn = await open_connection(f"tcp://127.0.0.1:{gw.tcp_port}")
            await conn.hello(account.account_id, account.api_key)
            subject = {k: outbound_subject(k, TENANT, account.account_id)
                       for k in ("signal", "command", "config")}
            await js.publish(subject["signal"], signal_packet(stranger))  # wrong account
            await js.publish(subject["command"], b"not a packet")
            await js.publish(subject["config"], encode(CommandPacket(
                0, 0, acc, 0, 0, "", CommandCode.SEND_SNAPSHOT)))  # wrong type
            await js.publish(subject["command"], encode(CommandPacket(
                0, 0, acc, 0, 0, "", CommandCode.PAUSE_TRADING)))
            await js.publish(subject["config"], encode(ConfigPacket(
                0, 0, acc, "max_spread_pts", 30, 0)))
            got: list[object] = []
            while len(got) < 2:
                got += [p for p in await conn.recv(5)
                        if isinstance(p, CommandPacket | ConfigPacket)]
            command, config = sorted(got, key=lambda p: p.MESSAGE_TYPE)  # type: ignore[attr-defined]
            assert isinstance(command, CommandPacket) and isinstance(config, ConfigPacket)
            assert command.command is CommandCode.PAUSE_TRADING
            assert config.key == "max_spread_pts" and config.value == 30
            await conn.send(
                AckPacket(1, 0, acc, command.sequence, MessageType.COMMAND),
                AckPacket(2, 0, acc, config.sequence, MessageType.CONFIG))
            for kind, stream in (("command", "MT5_COMMANDS"), ("config", "MT5_COMMANDS"),
                                 ("signal", "MT5_SIGNALS")):
                name = f"gw_{kind}_{account.account_id.hex}"

                async def settled(stream: str = stream, name: str = name) -> bool:
                    info = await js.consumer_info(stream, name)
                    return not (info.num_pending or info.num_ack_pending)

                assert await wait_for(settled, 10), kind
            with pytest.raises(TimeoutError):
                await conn.recv(0.3)
            assert metric(gw, "suho_gateway_outbound_acked_total", channel="command") == 1
            assert metric(gw, "suho_gateway_outbound_acked_total", channel="config") == 1
            await conn.close()

    with caplog.at_level(logging.ERROR, "suho_mt5.gateway"):
        asyncio.run(scenario())
    refused = [r for r in caplog.records if "refused (wrong type or account)" in r.getMessage()
               or "is not a packet" in r.getMessage()]
    assert len(refused) >= 3
