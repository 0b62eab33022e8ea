"""What docs/protocol.md section 9 says about the gaps two independent implementations found,
pinned on the gateway: what comes before HELLO, which packet an ERROR refers to, the limit of
bad packets, WebSocket details, one counter and its floor, ACKs of session packets, SIGTERM.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import zlib
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from suho_mt5.gateway import Gateway, open_connection
from suho_mt5.gateway.client import EAConnection
from suho_mt5.protocol import (
    AccountSnapshotPacket,
    AckPacket,
    BrokerQuotePacket,
    CloseCode,
    ErrorCode,
    ErrorPacket,
    GoodbyePacket,
    HelloPacket,
    MessageType,
    Packet,
    StreamDecoder,
    WelcomePacket,
    decode,
    encode,
)

from ._support import GatewayDb, gateway_process, running_gateway, stored_packets

pytestmark = pytest.mark.timeout(120)

# Accounts of gw_db that no other gateway test uses.
FIRST_PACKETS, REFS, LIMIT, WEBSOCKET, COUNTER, SIGTERM = 54, 55, 56, 57, 58, 59


def _url(gw: Gateway, transport: str) -> str:
    return f"{transport}://127.0.0.1:{gw.ws_port if transport == 'ws' else gw.tcp_port}"


def _now() -> int:
    return time.time_ns() // 1000


def _quote(acc: bytes, seq: int) -> bytes:
    return encode(BrokerQuotePacket(seq, _now(), acc, "EURUSD", 109_531_000, 109_533_000, 0,
                                    0, 2))


def _with_crc(body: bytes | bytearray) -> bytes:
    return bytes(body[:140]) + zlib.crc32(bytes(body[:140])).to_bytes(4, "little")


def _patched(packet: bytes, offset: int, data: bytes, *, fix_crc: bool = True) -> bytes:
    out = packet[:offset] + data + packet[offset + len(data):]
    return _with_crc(out) if fix_crc else out


def _flipped(packet: bytes) -> bytes:
    """``packet`` with one bit of its payload flipped and the CRC left as it was."""
    return _patched(packet, 60, bytes([packet[60] ^ 1]), fix_crc=False)


async def _everything(conn: EAConnection, timeout: float = 10.0) -> list[Packet]:
    """Every packet until the gateway closes the connection."""
    out: list[Packet] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            batch = await conn.recv(max(0.05, deadline - time.monotonic()))
        except TimeoutError:
            break
        if not batch:
            break
        out += batch
    return out


async def _until_acked(conn: EAConnection, sequence: int, errors: list[ErrorPacket]) -> None:
    while True:
        for packet in await conn.recv(5):
            if isinstance(packet, ErrorPacket):
                errors.append(packet)
            elif isinstance(packet, AckPacket) and packet.acked_sequence >= sequence:
                return
            elif isinstance(packet, GoodbyePacket):
                raise AssertionError(f"closed: {packet.code!r} {packet.detail}")


def test_before_hello_garbage_gets_an_error_then_4003_and_silence_only_4004(
    gw_db: GatewayDb, nats_url: str
) -> None:
    me = gw_db.accounts[FIRST_PACKETS]
    hello = encode(HelloPacket(0, _now(), me.account_id.bytes, 0, 0, 0, me.api_key))

    async def first(gw: Gateway, data: bytes) -> list[Packet]:
        conn = await open_connection(_url(gw, "tcp"))
        await conn.send_raw(data)
        return await _everything(conn)

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url, hello_timeout_s=0.5) as gw:
            for data, code in (
                (bytes(range(144)), ErrorCode.MALFORMED_PACKET),  # no magic at all
                (b"suho" + hello[4:], ErrorCode.MALFORMED_PACKET),  # a bad magic
                (_patched(hello, 4, b"\x02"), ErrorCode.UNSUPPORTED_VERSION),
                (_patched(hello, 70, b"\x01", fix_crc=False), ErrorCode.CHECKSUM_MISMATCH),
            ):
                packets = await first(gw, data)
                assert [type(p) for p in packets] == [ErrorPacket, GoodbyePacket], packets
                error, goodbye = packets
                assert isinstance(error, ErrorPacket) and isinstance(goodbye, GoodbyePacket)
                assert (error.code, error.ref_sequence, error.sequence) == (code, 0, 0)
                assert goodbye.code is CloseCode.PROTOCOL_VIOLATION
            # Nothing, or less than a packet: no ERROR, only the GOODBYE of the timeout.
            for data in (b"", b"SUHO\x01"):
                packets = await first(gw, data)
                assert [type(p) for p in packets] == [GoodbyePacket]
                assert isinstance(packets[0], GoodbyePacket)
                assert packets[0].code is CloseCode.AUTH_TIMEOUT

    asyncio.run(scenario())


def test_an_error_names_the_packet_only_when_its_crc_vouched_for_the_header(
    gw_db: GatewayDb, nats_url: str
) -> None:
    """ref_sequence is the refused packet's sequence after a field error (the CRC was right,
    so the header is the EA's); 0 after a bad magic, version, type, flags or CRC: then the
    bytes may not be a packet at all, and the gateway looks for the next magic. A packet cut
    short inside such bytes is found, not skipped with them."""
    me = gw_db.accounts[REFS]
    acc = me.account_id.bytes
    snapshot = encode(AccountSnapshotPacket(0, _now(), acc, 1, 1, 0, 1, 0, 100, "USD"))

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url) as gw:
            conn = await open_connection(_url(gw, "tcp"))
            await conn.hello(me.account_id, me.api_key)
            seq = lambda n: n.to_bytes(8, "little")  # noqa: E731
            sent = [
                _flipped(_quote(acc, 1)),  # CRC: ref 0
                _patched(_quote(acc, 2), 5, b"\x06"),  # unknown type: ref 0
                _patched(_quote(acc, 3), 4, b"\x02"),  # version 2: ref 0
                _patched(_patched(snapshot, 8, seq(4)), 80, bytes(4)),  # leverage 0: ref 4
                _patched(_quote(acc, 5), 40, b"EUR USD"),  # a space in the symbol: ref 5
            ]
            # flags set (checked before the CRC) in bytes cut short, a quote right after
            flagged = _patched(_quote(acc, 6), 6, b"\x01\x00")[:60]
            await conn.send_raw(b"".join(sent) + flagged + _quote(acc, 7))
            errors: list[ErrorPacket] = []
            await _until_acked(conn, 7, errors)
            assert [(e.code, e.ref_sequence) for e in errors] == [
                (ErrorCode.CHECKSUM_MISMATCH, 0),
                (ErrorCode.UNKNOWN_MESSAGE_TYPE, 0),
                (ErrorCode.UNSUPPORTED_VERSION, 0),
                (ErrorCode.FIELD_RANGE, 4),
                (ErrorCode.INVALID_SYMBOL, 5),
                (ErrorCode.FIELD_RANGE, 0),
            ]
            await conn.close()
            counts, _ = await stored_packets(gw.js)
            assert counts == {(str(me.account_id), 7): 1}

    asyncio.run(scenario())


def test_the_connection_stays_open_through_100_bad_packets_and_the_101st_closes_it(
    gw_db: GatewayDb, nats_url: str
) -> None:
    me = gw_db.accounts[LIMIT]
    acc = me.account_id.bytes

    def bad(n: int) -> bytes:  # a field error: the ERROR names it
        return _patched(_quote(acc, n), 40, b"EUR USD")

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url) as gw:
            conn = await open_connection(_url(gw, "tcp"))
            await conn.hello(me.account_id, me.api_key)
            await conn.send_raw(b"".join(bad(n) for n in range(1, 101)) + _quote(acc, 500))
            errors: list[ErrorPacket] = []
            await _until_acked(conn, 500, errors)  # still open after 100, and it stores
            assert len(errors) == 100
            await conn.send_raw(bad(501))
            rest = await _everything(conn)
            assert [type(p) for p in rest] == [ErrorPacket, GoodbyePacket]
            goodbye = rest[-1]
            assert isinstance(goodbye, GoodbyePacket)
            assert (goodbye.code, goodbye.ref_sequence) == (CloseCode.PROTOCOL_VIOLATION, 501)

    asyncio.run(scenario())


def test_websocket_any_path_no_subprotocol_messages_read_as_one_byte_stream(
    gw_db: GatewayDb, nats_url: str
) -> None:
    me = gw_db.accounts[WEBSOCKET]
    acc = me.account_id.bytes
    hello = encode(HelloPacket(0, _now(), acc, 0, 0, 0, me.api_key))

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url) as gw:
            url = f"ws://127.0.0.1:{gw.ws_port}/any/path?x=1"
            async with connect(url, subprotocols=["suho.v1"]) as ws:  # type: ignore[list-item]
                assert ws.subprotocol is None  # none is negotiated
                await ws.send(hello)
                decoder = StreamDecoder()
                welcome = decoder.feed(await ws.recv())  # type: ignore[arg-type]
                assert isinstance(welcome[0], WelcomePacket)
                quote = _quote(acc, 1)
                await ws.send("hello")  # a text message: its bytes, read as garbage
                await ws.send(quote[:100])  # one packet in two binary messages
                await ws.send(quote[100:])
                got: list[Packet] = []
                while not any(isinstance(p, AckPacket) for p in got):
                    message = await asyncio.wait_for(ws.recv(), 5)
                    assert isinstance(message, bytes)  # the gateway sends binary only
                    assert len(message) % 144 == 0  # ... whole packets
                    got += decoder.feed(message)
                errors = [p for p in got if isinstance(p, ErrorPacket)]
                assert [(e.code, e.ref_sequence) for e in errors] == [
                    (ErrorCode.MALFORMED_PACKET, 0)]
                assert "5 bytes without a packet" in errors[0].detail
            counts, _ = await stored_packets(gw.js)
            assert counts == {(str(me.account_id), 1): 1}

    asyncio.run(scenario())


def test_one_counter_for_data_acks_and_errors_with_the_welcome_as_its_floor(
    gw_db: GatewayDb, nats_url: str
) -> None:
    """An EA's ACK and ERROR packets take numbers from the same counter as its data, so it
    sends in the order it numbers; ACKs of session packets are accepted (and ignored); every
    packet the gateway makes itself carries sequence 0; a new session's floor is WELCOME's
    last_accepted_sequence."""
    me = gw_db.accounts[COUNTER]
    acc = me.account_id.bytes

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url) as gw:
            conn = await open_connection(_url(gw, "tcp"))
            welcome = await conn.hello(me.account_id, me.api_key)
            assert (welcome.sequence, welcome.last_accepted_sequence) == (0, 0)
            await conn.send(
                AckPacket(5, _now(), acc, 1, MessageType.HELLO),  # ACKs of session packets:
                AckPacket(6, _now(), acc, 1, MessageType.WELCOME),  # accepted, ignored
                AckPacket(7, _now(), acc, 1, MessageType.GOODBYE),
                _quote(acc, 7),  # 7 was the ACK's: replayed
                ErrorPacket(8, _now(), acc, 3, ErrorCode.TRADE_REJECTED, "no money"),
                _quote(acc, 8),  # 8 was the ERROR's: replayed
                _quote(acc, 10),
                _quote(acc, 9),  # below 10: replayed, though never sent before
            )
            errors: list[ErrorPacket] = []
            seen: list[Packet] = []
            while len(errors) < 3 or not any(isinstance(p, AckPacket) for p in seen):
                for packet in await conn.recv(5):
                    seen.append(packet)
                    if isinstance(packet, ErrorPacket):
                        errors.append(packet)
            assert [(e.code, e.ref_sequence) for e in errors] == [
                (ErrorCode.SEQUENCE_REPLAYED, 7), (ErrorCode.SEQUENCE_REPLAYED, 8),
                (ErrorCode.SEQUENCE_REPLAYED, 9)]
            assert {p.sequence for p in seen} == {0}
            await conn.close()
            again = await open_connection(_url(gw, "tcp"))
            welcome = await again.hello(me.account_id, me.api_key)
            assert welcome.last_accepted_sequence == 10  # stored data only: the floor
            await again.send(_quote(acc, 10), _quote(acc, 11))
            errors = []
            await _until_acked(again, 11, errors)
            assert [(e.code, e.ref_sequence) for e in errors] == [
                (ErrorCode.SEQUENCE_REPLAYED, 10)]
            await again.close()

    asyncio.run(scenario())


def test_sigterm_closes_every_session_with_going_away_and_exits_0(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path
) -> None:
    me = gw_db.accounts[SIGTERM]

    async def scenario() -> None:
        with gateway_process(gw_db, nats_url, tmp_path) as proc:
            conns = [await open_connection(proc.url(t)) for t in ("tcp", "ws")]
            await conns[0].hello(me.account_id, me.api_key)
            await asyncio.to_thread(proc.stop)
            assert proc.proc is not None and proc.proc.returncode == 0
            assert await conns[0].wait_closed(5) == CloseCode.GOING_AWAY
            # a connection still without HELLO has no session to resume: closed with NORMAL
            assert await conns[1].wait_closed(5) == CloseCode.NORMAL

    asyncio.run(scenario())


def test_the_vectors_of_the_refused_first_packets_are_what_the_gateway_sends() -> None:
    # The ERROR and GOODBYE packets above decode with the spec's codec (a sanity check of
    # the helpers, which build packets by hand).
    acc = uuid.uuid4().bytes
    assert decode(_quote(acc, 1)).sequence == 1
    with pytest.raises(Exception, match="CRC"):
        decode(_flipped(_quote(acc, 1)))
