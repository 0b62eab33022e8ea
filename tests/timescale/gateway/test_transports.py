"""TLS on both endpoints, liveness deadlines, clock skew, and the simulate command."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from suho_mt5.cli import main
from suho_mt5.gateway import open_connection
from suho_mt5.protocol import (
    AckPacket,
    CloseCode,
    HeartbeatPacket,
    HelloPacket,
    SessionResult,
    WelcomePacket,
)

from ._support import GatewayDb, gateway_process, metric, running_gateway, stored_packets

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def test_tls_on_both_endpoints(gw_db: GatewayDb, nats_url: str,
                               certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    me = gw_db.accounts[30]
    trust = ssl.create_default_context(cafile=str(cert))

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url, tls_cert=str(cert),
                                   tls_key=str(key)) as gw:
            for n, url in enumerate((f"wss://127.0.0.1:{gw.ws_port}",
                                     f"tls://127.0.0.1:{gw.tcp_port}")):
                conn = await open_connection(url, ssl_context=trust)
                await conn.hello(me.account_id, me.api_key)
                await conn.send(HeartbeatPacket(n + 1, time.time_ns() // 1000,
                                                me.account_id.bytes, "1.0", 4410, 5, True,
                                                True))
                acks = [p for p in await conn.recv(5) if isinstance(p, AckPacket)]
                assert acks and acks[-1].acked_sequence == n + 1
                await conn.close()
            plain = await open_connection(f"tcp://127.0.0.1:{gw.tcp_port}")
            await plain.send_raw(b"SUHO" * 36)  # not a TLS ClientHello: the handshake fails
            assert await plain.recv(5) == []
            counts, _ = await stored_packets(gw.js)
            assert len(counts) == 2

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", ["ws", "tcp"])
def test_a_silent_ea_is_closed_with_idle_timeout_and_skew_is_measured(
    gw_db: GatewayDb, nats_url: str, transport: str
) -> None:
    """An EA whose broker clock (UTC+2) is sent as UTC shows up as -2 h of skew; an EA that
    sends nothing past the idle deadline is closed with IDLE_TIMEOUT, after keepalive ACKs
    (on WebSocket it still answers pings: the HEARTBEAT deadline is what closes it). The
    deadline counts from the connection's opening, so it is several heartbeats here: with
    three (0.9 s), a key check slowed by a loaded machine left no time for a keepalive."""
    me = gw_db.accounts[31 if transport == "ws" else 53]

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url, heartbeat_interval_s=0.3,
                                   idle_timeout_s=2.0, ws_ping_interval_s=0.1,
                                   metrics_account_labels=True) as gw:
            port = gw.ws_port if transport == "ws" else gw.tcp_port
            conn = await open_connection(f"{transport}://127.0.0.1:{port}")
            two_hours_ahead = time.time_ns() // 1000 + 7_200_000_000
            await conn.send(HelloPacket(0, two_hours_ahead, me.account_id.bytes, 0, 0, 0,
                                        me.api_key))
            welcome = (await conn.recv(5))[0]
            assert isinstance(welcome, WelcomePacket)
            assert welcome.result is SessionResult.ACCEPTED
            assert welcome.heartbeat_interval_ms == 300
            skew = metric(gw, "suho_gateway_account_clock_skew_seconds", tenant="tenant_gw",
                          account=str(me.account_id))
            assert -7300 < skew < -7100
            packets = []
            while (batch := await conn.recv(10)):
                packets += batch
            assert any(isinstance(p, AckPacket) for p in packets)  # keepalives
            assert conn.close_code == CloseCode.IDLE_TIMEOUT
            assert metric(gw, "suho_gateway_closes_total", code="4007") == 1

    asyncio.run(scenario())


def test_simulate_command_against_a_gateway_process(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path
) -> None:
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps([{"account_id": str(a.account_id), "api_key": a.api_key}
                                    for a in gw_db.accounts[40:44]]))
    # The liveness options parse and the gateway runs with them (test_liveness.py checks
    # what they do).
    with gateway_process(gw_db, nats_url, tmp_path,
                         extra=["--ws-ping", "5", "--tcp-keepalive", "7", "3", "4"]) as proc:
        result = CliRunner().invoke(main, [
            "simulate", "--gateway", f"127.0.0.1:{proc.tcp_port}", "--transport", "tcp",
            "--accounts", str(accounts), "--duration", "2", "--speed", "20"])
    assert result.exit_code == 0, result.output
    assert "accounts 4, sessions 4, refused 0" in result.output
    assert "not acknowledged 0" in result.output


def test_simulate_refuses_a_missing_accounts_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["simulate", "--gateway", "ws://127.0.0.1:1",
                                       "--accounts", str(tmp_path / "none.json")])
    assert result.exit_code == 1 and "cannot read simulator accounts" in result.output
