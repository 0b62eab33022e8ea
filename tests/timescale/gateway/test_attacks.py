"""The gateway under attack (docs/security.md): each test here is named there beside the
protection it proves, and fails when that protection is removed.

The gateway runs in this process on real sockets, against nats-server and a migrated
TimescaleDB database (keys checked by bcrypt in ``mt5_authenticate``); clients connect from
addresses of their own on the loopback network (127.0.0.x) so that per-address limits see
different clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from suho_mt5.cli.gateway import gateway_run
from suho_mt5.commands.account import deactivate, rotate_key
from suho_mt5.errors import SessionClosedError, SessionRefusedError
from suho_mt5.gateway import Gateway, open_connection
from suho_mt5.gateway.client import EAConnection
from suho_mt5.protocol import (
    AckPacket,
    CloseCode,
    HeartbeatPacket,
    HelloPacket,
    SessionResult,
    encode,
)
from tests.support.servers import HAProxy, ProxiedService, ProxyServer

from ._support import GatewayDb, gateway_process, metric, running_gateway

pytestmark = pytest.mark.timeout(180)


def _url(gw: Gateway, transport: str) -> str:
    return f"{transport}://127.0.0.1:{gw.ws_port if transport == 'ws' else gw.tcp_port}"


async def _hello(url: str, account: uuid.UUID, key: str, source: str | None = None
                 ) -> tuple[SessionResult, EAConnection]:
    """HELLO from ``source``: the WELCOME's result and the connection (open if accepted)."""
    conn = await open_connection(url, source_address=source)
    try:
        await conn.hello(account, key)
    except SessionRefusedError:
        await conn.wait_closed(5)
    except SessionClosedError:
        return SessionResult.UNAVAILABLE, conn
    assert conn.welcome is not None
    return conn.welcome.result, conn


# -- PROXY protocol through a real HAProxy --


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_behind_haproxy_the_limits_count_the_client_address_from_the_proxy_header(
    gw_db: GatewayDb, nats_url: str, version: str, start_haproxy: Callable[..., HAProxy],
) -> None:
    """HAProxy (``send-proxy`` / ``send-proxy-v2``) in front of both endpoints: an attacker
    at 127.0.0.5 that keeps failing is limited, an EA at 127.0.0.6 behind the same proxy
    gets in over both transports, and the limiter never counts the proxy's own address."""
    victim, attacker_account = gw_db.accounts[14], gw_db.accounts[15]

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url, max_failed_logins=3,
                                   max_failed_logins_per_account=0,
                                   proxy_protocol_from=("127.0.0.1",)) as gw:
            proxy = await asyncio.to_thread(start_haproxy, [
                ProxiedService(t, (ProxyServer("gw", gw.ws_port if t == "ws" else gw.tcp_port,
                                               check_port=gw.metrics_port),),
                               http_check="/metrics", send_proxy=version)
                for t in ("ws", "tcp")])
            for t in ("ws", "tcp"):
                await asyncio.to_thread(proxy.wait_state, t, "gw", "UP")
            via = {t: f"{t}://127.0.0.1:{proxy.port(t)}" for t in ("ws", "tcp")}
            for _ in range(3):
                result, _ = await _hello(via["tcp"], attacker_account.account_id, "wrong",
                                         "127.0.0.5")
                assert result is SessionResult.REFUSED
            result, _ = await _hello(via["ws"], attacker_account.account_id,
                                     attacker_account.api_key, "127.0.0.5")
            assert result is SessionResult.RATE_LIMITED
            for t in ("ws", "tcp"):
                result, conn = await _hello(via[t], victim.account_id, victim.api_key,
                                            "127.0.0.6")
                assert result is SessionResult.ACCEPTED, t
                await conn.close()
            assert gw.limiter.blocked("127.0.0.5")
            assert not gw.limiter.blocked("127.0.0.1")
            assert "127.0.0.1" not in gw.limiter._addresses

    asyncio.run(scenario())


def test_a_proxy_header_from_an_untrusted_address_is_not_believed(
    gw_db: GatewayDb, nats_url: str,
) -> None:
    """A client that sends a PROXY header itself (from an address not trusted) does not get
    the address it claims: its bytes are taken as packets, and refused as such."""
    me = gw_db.accounts[16]

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url,
                                   proxy_protocol_from=("127.0.0.200",)) as gw:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", gw.tcp_port, local_addr=("127.0.0.7", 0))
            hello = encode(HelloPacket(0, 0, me.account_id.bytes, 0, 0, 0, me.api_key))
            writer.write(b"PROXY TCP4 10.9.9.9 127.0.0.1 5555 8001\r\n" + hello)
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 10)  # refused and closed
            writer.close()
            assert data, "the gateway said nothing"
            assert not gw.sessions
            assert metric(gw, "suho_gateway_closes_total",
                          code=str(int(CloseCode.PROTOCOL_VIOLATION))) == 1

    asyncio.run(scenario())


# -- authentication cost --


def test_hellos_in_flight_count_against_the_address_limit(
    gw_db: GatewayDb, nats_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """40 wrong-key HELLOs for one existing account sent at once from one address: exactly
    ``max_failed_logins`` (5) key checks on the address's budget and
    ``max_failed_logins_per_account`` (3) on the (address, account) pair's run (not one per
    HELLO that arrived before the first failure was counted); the rest are refused
    RATE_LIMITED without a check, and the log holds one sampled line per kind, not one per
    refusal."""
    account = gw_db.accounts[17]

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url, max_failed_logins=5) as gw:
            results = await asyncio.gather(*(
                _hello(_url(gw, "tcp" if i % 2 else "ws"), account.account_id, f"wrong{i}",
                       "127.0.0.11") for i in range(40)))
            kinds = [r for r, _ in results]
            assert kinds.count(SessionResult.REFUSED) == 5 + 3, kinds
            assert kinds.count(SessionResult.RATE_LIMITED) == 32, kinds
            assert gw.checks.started == 5 + 3

    with caplog.at_level(logging.DEBUG, "suho_mt5.gateway"):
        asyncio.run(scenario())
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 3, [r.getMessage() for r in warnings]


def test_a_neighbours_failures_do_not_lock_out_an_ea_with_the_right_key(
    gw_db: GatewayDb, nats_url: str,
) -> None:
    """An EA that authenticated before shares an address with a client that keeps failing:
    it still gets in, from its verified key (no check at all) and, with that forgotten, on
    its own (address, account) budget."""
    me, other = gw_db.accounts[18], gw_db.accounts[19]

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url, max_failed_logins=3) as gw:
            url = _url(gw, "tcp")
            result, conn = await _hello(url, me.account_id, me.api_key, "127.0.0.12")
            assert result is SessionResult.ACCEPTED
            await conn.close()
            for _ in range(3):
                result, _ = await _hello(url, other.account_id, "wrong", "127.0.0.12")
                assert result is SessionResult.REFUSED
            for _ in range(3):  # the account exists: its own (address, account) budget
                result, _ = await _hello(url, other.account_id, "wrong", "127.0.0.12")
                assert result is SessionResult.REFUSED
            result, _ = await _hello(url, other.account_id, other.api_key, "127.0.0.12")
            assert result is SessionResult.RATE_LIMITED  # the attacker's account: used up
            checks = metric(gw, "suho_gateway_auth_failures_total", reason="refused")
            started = gw.checks.started
            result, conn = await _hello(url, me.account_id, me.api_key, "127.0.0.12")
            assert result is SessionResult.ACCEPTED
            assert gw.checks.started == started  # its verified key: no check at all
            await conn.close()
            gw.keys.forget(me.account_id)  # no verified key held: a key check, on the pair
            result, conn = await _hello(url, me.account_id, me.api_key, "127.0.0.12")
            assert result is SessionResult.ACCEPTED
            await conn.close()
            assert metric(gw, "suho_gateway_auth_failures_total", reason="refused") == checks

    asyncio.run(scenario())


# -- connection limits --


def test_unauthenticated_sockets_are_capped_per_address_and_the_backlog_is_configured(
    gw_db: GatewayDb, nats_url: str,
) -> None:
    """30 silent sockets from one address with a cap of 10: 20 are closed at once, 10 wait
    for their HELLO timeout; an EA at another address still gets in. The listen backlog is
    the configured one (``ss`` shows it as the listening socket's Send-Q)."""
    me = gw_db.accounts[7]

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url, max_unauthenticated_per_address=10,
                                   hello_timeout_s=30, listen_backlog=777) as gw:
            silent = [await asyncio.open_connection("127.0.0.1", gw.tcp_port,
                                                    local_addr=("127.0.0.13", 0))
                      for _ in range(30)]

            async def closed(reader: asyncio.StreamReader) -> bool:
                try:
                    return await asyncio.wait_for(reader.read(), 3) is not None
                except TimeoutError:
                    return False

            ended = await asyncio.gather(*(closed(r) for r, _ in silent))
            assert sum(ended) == 20, ended
            assert gw.handshake.unauthenticated == 10
            assert metric(gw, "suho_gateway_auth_failures_total",
                          reason="too_many_connections") == 20
            result, conn = await _hello(_url(gw, "ws"), me.account_id, me.api_key,
                                        "127.0.0.14")
            assert result is SessionResult.ACCEPTED
            await conn.close()
            for _, writer in silent:
                writer.close()
            for port in (gw.tcp_port, gw.ws_port):
                out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True,
                                     text=True, check=True).stdout.split()
                assert out[2] == "777", out

    asyncio.run(scenario())


# -- deactivation and key rotation --


def test_deactivation_and_key_rotation_end_running_sessions_and_refuse_new_ones(
    gw_db: GatewayDb, nats_url: str,
) -> None:
    """With keys re-read every 0.3 s: a deactivated account's session is closed with
    AUTH_FAILED and its (verified, held) key refused on the next HELLO; after a rotation the
    old key's session ends and only the new key gets in."""
    # Accounts of its own (the shared ones are every other test's): two new ones.
    from suho_mt5.commands.account import create
    from suho_mt5.gateway.simulator import SimAccount
    from tests.support.secrets import register

    made = [create(gw_db.owner_url, tenant_id="tenant_gw", user_id=f"revoked_{i}",
                   broker_name="ICMarkets", broker_server="ICMarkets-Demo",
                   mt5_login=900_000 + i + int(time.time()) % 90_000,
                   mt5_account_number=str(i)) for i in range(2)]
    register(*(m.api_key for m in made))
    gone, rotated = (SimAccount(m.account.account_id, m.api_key) for m in made)

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url, auth_recheck_s=0.3) as gw:
            url = _url(gw, "tcp")
            conns = {}
            for acc in (gone, rotated):
                result, conns[acc.account_id] = await _hello(url, acc.account_id, acc.api_key)
                assert result is SessionResult.ACCEPTED
            await asyncio.to_thread(deactivate, gw_db.owner_url, gone.account_id)
            new_key = (await asyncio.to_thread(rotate_key, gw_db.owner_url,
                                               rotated.account_id)).api_key
            for acc in (gone, rotated):
                conn = conns[acc.account_id]
                code = await conn.wait_closed(10)
                assert code == CloseCode.AUTH_FAILED, (acc, code)
            for acc in (gone, rotated):
                result, _ = await _hello(url, acc.account_id, acc.api_key)
                assert result is SessionResult.REFUSED
            result, conn = await _hello(url, rotated.account_id, new_key)
            assert result is SessionResult.ACCEPTED
            await conn.close()

    asyncio.run(scenario())


# -- /metrics --


def test_metrics_listen_on_loopback_and_name_no_account_or_tenant(
    gw_db: GatewayDb, nats_url: str,
) -> None:
    me = gw_db.accounts[10]

    # Loopback is the default twice over: the gateway's configuration and the CLI's option
    # (which does not import the gateway's libraries to read it).
    option = next(p for p in gateway_run.params if p.name == "metrics_host")
    assert option.default == "127.0.0.1"

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url, host="0.0.0.0") as gw:  # metrics: default
            assert gw._metrics_server.server_address[0] == "127.0.0.1"
            result, conn = await _hello(_url(gw, "tcp"), me.account_id, me.api_key)
            assert result is SessionResult.ACCEPTED
            await conn.send(HeartbeatPacket(1, time.time_ns() // 1000, me.account_id.bytes,
                                            "1.0", 4410, 1, True, True))
            await asyncio.sleep(0.3)
            text = await asyncio.to_thread(_metrics_text, gw.metrics_port)
            assert "suho_gateway_clock_skew_seconds_count 2.0" in text
            for secret in (str(me.account_id), me.account_id.hex, "tenant_gw", me.api_key):
                assert secret not in text
            await conn.close()

    asyncio.run(scenario())


def _metrics_text(port: int | None) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_the_gateway_refuses_to_start_with_proxy_protocol_and_tls(
    gw_db: GatewayDb, nats_url: str, tmp_path: object
) -> None:
    from suho_mt5.errors import GatewayError

    async def scenario() -> None:
        with pytest.raises(GatewayError, match="PROXY protocol with TLS"):
            async with running_gateway(gw_db, nats_url, tls_cert="x", tls_key="y",
                                       proxy_protocol_from=("127.0.0.1",)):
                pass

    asyncio.run(scenario())


# -- TLS -------------------------------------------------------------------------------------------


def _make_certificates(directory: Path) -> dict[str, Path]:
    """A CA of the test's own and two server certificates it signed (CN gw-one, gw-two)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-days", "1", "-subj", "/CN=suho-test-ca",
            "-keyout", "ca.key", "-out", "ca.pem")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name in ("gw-one", "gw-two"):
        openssl("req", *ec, "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                "-out", f"{name}.csr")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", f"{name}.pem")
    return {p.stem + p.suffix: p for p in directory.iterdir()}


def _common_name(conn: EAConnection) -> str:
    assert conn._writer is not None
    cert = conn._writer.get_extra_info("peercert")
    return str(dict(x[0] for x in cert["subject"])["commonName"])


def test_tls_is_1_2_or_newer_and_the_certificate_is_reloaded_on_sighup_without_dropping(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path,
) -> None:
    """``gateway run`` with a certificate of a CA made here: a TLS 1.1 client is refused;
    after the files are replaced and SIGHUP sent, new connections get the new certificate
    while the session opened before goes on (a HEARTBEAT is still ACKed on it)."""
    files = _make_certificates(tmp_path)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    shutil.copy(files["gw-one.pem"], cert)
    shutil.copy(files["gw-one.key"], key)
    trust = ssl.create_default_context(cafile=str(files["ca.pem"]))
    me, other = gw_db.accounts[11], gw_db.accounts[34]
    with gateway_process(gw_db, nats_url, tmp_path,
                         extra=["--tls-cert", str(cert), "--tls-key", str(key)]) as gw:
        url = f"tls://127.0.0.1:{gw.tcp_port}"

        async def scenario() -> None:
            with warnings.catch_warnings():  # an old client is what this test needs
                warnings.simplefilter("ignore", DeprecationWarning)
                old = ssl.create_default_context(cafile=str(files["ca.pem"]))
                old.minimum_version = ssl.TLSVersion.TLSv1
                old.maximum_version = ssl.TLSVersion.TLSv1_1
                old.set_ciphers("DEFAULT:@SECLEVEL=0")
            with pytest.raises(SessionClosedError) as refused:
                await open_connection(url, ssl_context=old)
            assert isinstance(refused.value.__cause__, ssl.SSLError | ConnectionResetError), repr(
                refused.value.__cause__)
            first = await open_connection(url, ssl_context=trust)
            await first.hello(me.account_id, me.api_key)
            assert _common_name(first) == "gw-one"
            shutil.copy(files["gw-two.pem"], cert)
            shutil.copy(files["gw-two.key"], key)
            assert gw.proc is not None
            gw.proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(1.0)
            second = await open_connection(url, ssl_context=trust)
            await second.hello(other.account_id, other.api_key)
            assert _common_name(second) == "gw-two"
            await first.send(HeartbeatPacket(1, time.time_ns() // 1000, me.account_id.bytes,
                                             "1.0", 4410, 1, True, True))
            packets = await first.recv(5)
            assert any(isinstance(p, AckPacket) and p.acked_sequence == 1 for p in packets)
            for conn in (first, second):
                await conn.close()

        asyncio.run(scenario())
    assert "TLS certificate reloaded" in (tmp_path / "gateway.log").read_text()


def test_a_hello_for_an_account_that_does_not_exist_costs_no_key_check(
    gw_db: GatewayDb, nats_url: str,
) -> None:
    """30 HELLOs for random account ids, each from its own address: all REFUSED, and the
    database hashed at most the directory's burst of them (2 here); an existing account's
    wrong key is still checked for real."""
    me = gw_db.accounts[35]

    async def scenario() -> None:
        async with running_gateway(gw_db, nats_url, auth_unlisted_rate=0.001,
                                   auth_unlisted_burst=2) as gw:
            url = _url(gw, "tcp")
            results = await asyncio.gather(*(
                _hello(url, uuid.uuid4(), me.api_key, f"127.0.0.{100 + i}") for i in range(30)))
            assert {r for r, _ in results} == {SessionResult.REFUSED}
            assert gw.checks.started <= 2
            result, _ = await _hello(url, me.account_id, "wrong", "127.0.0.99")
            assert result is SessionResult.REFUSED
            assert gw.checks.started <= 3 and gw.checks.started >= 1

    asyncio.run(scenario())


# -- secrets -------------------------------------------------------------------------------------


def test_an_api_key_never_reaches_pg_stat_activity_or_the_logs(
    gw_db: GatewayDb, nats_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """While EAs log in (a right key and wrong keys), the database's view of the gateway's
    sessions (``pg_stat_activity``, and ``pg_stat_statements`` where it is loaded) holds the
    statement with ``$n`` placeholders, never a key; nor does the gateway's log (and the
    suite-wide check in tests/conftest.py fails any test whose output holds one)."""
    import sqlalchemy as sa

    from suho_mt5.db import make_engine
    from tests.support.secrets import find_secrets, register

    me = gw_db.accounts[36]
    wrong = "wrong-key-" + uuid.uuid4().hex
    register(wrong)

    def watch(until: float) -> list[str]:
        """What pg_stat_activity shows, sampled while the keys are checked."""
        engine = make_engine(gw_db.owner_url)
        seen: list[str] = []
        try:
            with engine.connect() as db:
                while time.monotonic() < until:
                    seen += db.execute(sa.text(
                        "SELECT coalesce(query, '') FROM pg_stat_activity"
                        " WHERE pid <> pg_backend_pid()")).scalars()
                    db.rollback()
                if db.execute(sa.text("SELECT count(*) FROM pg_extension"
                                      " WHERE extname = 'pg_stat_statements'")).scalar():
                    seen += db.execute(sa.text("SELECT query FROM pg_stat_statements")).scalars()
        finally:
            engine.dispose()
        return seen

    async def scenario() -> list[str]:
        async with running_gateway(gw_db, nats_url) as gw:
            url = _url(gw, "tcp")
            watching = asyncio.ensure_future(asyncio.to_thread(watch, time.monotonic() + 3))
            result, conn = await _hello(url, me.account_id, me.api_key)
            assert result is SessionResult.ACCEPTED
            results = await asyncio.gather(*(
                _hello(url, me.account_id, wrong, f"127.0.0.{31 + i}") for i in range(6)))
            assert {r for r, _ in results} == {SessionResult.REFUSED}
            texts = await watching
            await conn.close()
            return texts

    with caplog.at_level(logging.DEBUG):
        texts = asyncio.run(scenario())
    assert any("mt5_authenticate" in t for t in texts), texts
    assert not find_secrets("\n".join(texts))
    assert not find_secrets(caplog.text)


# -- slowloris and oversized input ---------------------------------------------------------------


def test_slowloris_sockets_are_closed_at_the_hello_timeout_and_everything_is_released(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path,
) -> None:
    """600 silent TCP sockets, 100 that send one byte a second, 200 silent WebSocket
    sockets (from 9 addresses, under the per-address cap), against a gateway process (HELLO
    timeout 10 s): every one is closed by then, the process's descriptors return to
    what they were, and an EA connecting in the middle of it gets in."""
    import psutil
    from websockets.asyncio.client import connect

    me = gw_db.accounts[37]
    with gateway_process(gw_db, nats_url, tmp_path) as gw:
        assert gw.proc is not None
        proc = psutil.Process(gw.proc.pid)

        async def scenario() -> tuple[int, int, int, float, float]:
            fds_before = proc.num_fds()
            sources = [f"127.0.0.{50 + i}" for i in range(9)]
            socks = [await asyncio.open_connection("127.0.0.1", gw.tcp_port,
                                                  local_addr=(sources[i % 6], 0))
                     for i in range(700)]
            websockets = [await connect(gw.url("ws"), ping_interval=None,
                                        local_addr=(sources[6 + i % 3], 0))
                          for i in range(200)]
            opened = time.monotonic()
            fds_peak = proc.num_fds()

            async def drip(writer: asyncio.StreamWriter) -> None:
                with contextlib.suppress(OSError):
                    for _ in range(30):
                        writer.write(b"S")
                        await writer.drain()
                        await asyncio.sleep(1.0)

            drips = [asyncio.ensure_future(drip(w)) for _, w in socks[600:]]
            started = time.monotonic()
            result, conn = await _hello(gw.url("tcp"), me.account_id, me.api_key, "127.0.0.60")
            welcome_s = time.monotonic() - started
            assert result is SessionResult.ACCEPTED
            await conn.close()
            ends = await asyncio.gather(*(asyncio.wait_for(r.read(), 30) for r, _ in socks),
                                        return_exceptions=True)
            closed_after = time.monotonic() - opened
            assert all(isinstance(e, bytes) for e in ends), [e for e in ends
                                                             if not isinstance(e, bytes)][:3]
            for ws in websockets:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.wait_closed(), 30)
                assert ws.close_code == CloseCode.AUTH_TIMEOUT
            for task in drips:
                task.cancel()
            for _, writer in socks:
                writer.close()
            await asyncio.sleep(1.0)
            return fds_before, fds_peak, proc.num_fds(), closed_after, welcome_s

        fds_before, fds_peak, fds_after, closed_after, welcome_s = asyncio.run(scenario())
    print(f"\nslowloris: 900 sockets held, closed {closed_after:.1f} s after opening "
          f"(HELLO timeout 10 s); gateway fds {fds_before} -> {fds_peak} -> {fds_after}; "
          f"a new EA got WELCOME in {welcome_s:.2f} s")
    assert fds_peak > fds_before + 800
    assert fds_after <= fds_before + 5


def test_oversized_input_is_closed_and_memory_stays_flat(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path,
) -> None:
    """1 and 16 MiB WebSocket messages get close 1009; 50 MB of garbage after a HELLO on
    the stream is closed with PROTOCOL_VIOLATION after at most 101 ERRORs; the gateway's RSS
    stays within 30 MB of where it was."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    me = gw_db.accounts[38]
    with gateway_process(gw_db, nats_url, tmp_path) as gw:
        rss_before = gw.rss_bytes()

        async def scenario() -> tuple[list[int | None], int, int | None]:
            codes = []
            for size in (1 << 20, 16 << 20):
                ws = await connect(gw.url("ws"), ping_interval=None, max_size=None,
                                   write_limit=2**25)
                with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
                    await ws.send(b"\0" * size)
                    await asyncio.wait_for(ws.recv(), 10)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.wait_closed(), 10)
                codes.append(ws.close_code)
            conn = await open_connection(gw.url("tcp"))
            await conn.hello(me.account_id, me.api_key)
            errors = 0
            chunk = random.Random(7).randbytes(1 << 20)

            async def flood() -> None:
                with contextlib.suppress(Exception):
                    for _ in range(50):
                        await conn.send_raw(chunk)

            sender = asyncio.ensure_future(flood())
            while packets := await conn.recv(10):
                errors += sum(1 for p in packets if type(p).__name__ == "ErrorPacket")
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            return codes, errors, conn.close_code

        codes, errors, code = asyncio.run(scenario())
        rss_after = gw.rss_bytes()
    print(f"\noversized: WebSocket closes {codes}; garbage: {errors} ERRORs then {code}; "
          f"RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MB")
    assert codes == [1009, 1009]
    assert code == CloseCode.PROTOCOL_VIOLATION and errors <= 101
    assert rss_after - rss_before < 30 * 2**20
