"""The MQL5 session (Session.mqh, compiled with g++) against a scripted gateway: a TCP server
in this test that says exactly what the spec allows a gateway to say, to see the EA's side of
what the live gateway rarely does (docs/protocol.md section 9): refusals and close codes,
backoff, channel packets delivered twice, a packet of the wrong direction, the resend after a
reconnect from WELCOME's last_accepted_sequence, and the state kept across a restart.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from suho_mt5.protocol import (
    AckPacket,
    BrokerQuotePacket,
    CloseCode,
    CommandCode,
    CommandPacket,
    ErrorCode,
    ErrorPacket,
    ExecutionReportPacket,
    GoodbyePacket,
    HelloPacket,
    MessageType,
    Packet,
    SessionResult,
    SignalPacket,
    StreamDecoder,
    WelcomePacket,
    WireAction,
    encode,
)
from tests.support.mql5 import build

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]

ACCOUNT = uuid.UUID("6f1c2a7e-9b1d-4c2e-8a53-2f7b9d0e4c11")
ACC = ACCOUNT.bytes
KEY = "scripted-gateway-key"


@pytest.fixture(scope="module")
def driver_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build("session_driver", tmp_path_factory.mktemp("mql5-session"))


class Gateway:
    """A listening socket; each accepted connection is handed to the test in order."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted: queue.Queue[tuple[Connection, float]] = queue.Queue()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                sock, _ = self.server.accept()
                self.accepted.put((Connection(sock), time.monotonic()))

    def next(self, timeout: float = 15.0) -> tuple[Connection, float]:
        return self.accepted.get(timeout=timeout)

    def close(self) -> None:
        self.server.close()


class Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = StreamDecoder()
        self.packets: list[Packet] = []
        self.raw = b""

    def send(self, *packets: Packet) -> None:
        self.sock.sendall(b"".join(encode(p) for p in packets))

    def expect(self, kind: type[Packet], timeout: float = 10.0) -> Packet:
        deadline = time.monotonic() + timeout
        while True:
            for i, packet in enumerate(self.packets):
                if isinstance(packet, kind):
                    del self.packets[i]
                    return packet
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind.__name__}; got {self.packets}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise AssertionError(f"closed before a {kind.__name__}")
            self.raw += data
            self.packets += self.decoder.feed(data)

    def welcome(self, last_accepted: int = 0) -> HelloPacket:
        hello = self.expect(HelloPacket)
        assert isinstance(hello, HelloPacket)
        self.send(WelcomePacket(0, _now(), ACC, last_accepted, 30_000, 0,
                                SessionResult.ACCEPTED))
        return hello

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class Driver:
    def __init__(self, binary: Path, port: int, files: Path) -> None:
        files.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(binary), f"tcp://127.0.0.1:{port}", str(ACCOUNT), KEY, "scripted.state"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env={"MQL5_FILES": str(files), "SUHO_DRIVER_VERBOSE": "1"}, bufsize=1)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def wait_for(self, prefix: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line {prefix!r}; seen {self.seen[-15:]}") from None
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def status(self) -> list[int]:
        self.send("status")
        return [int(x) for x in self.wait_for("status ").split()[1:]]

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.send("stop")
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _now() -> int:
    return time.time_ns() // 1000


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway()
    try:
        yield gw
    finally:
        gw.close()


@contextlib.contextmanager
def running(binary: Path, gateway: Gateway, files: Path) -> Iterator[Driver]:
    driver = Driver(binary, gateway.port, files)
    try:
        yield driver
    finally:
        driver.stop()


def _signal(seq: int, signal_id: bytes) -> SignalPacket:
    return SignalPacket(seq, _now(), ACC, signal_id, "EURUSD", 0, 0, 0, 10_000_000, 0, 5_000,
                        WireAction.BUY)


def test_channels_are_handled_once_and_the_state_survives_a_restart(
    driver_binary: Path, gateway: Gateway, tmp_path: Path
) -> None:
    files = tmp_path / "Files"
    sid = uuid.uuid4().bytes
    with running(driver_binary, gateway, files) as driver:
        conn, _ = gateway.next()
        hello = conn.welcome()
        assert (hello.sequence, hello.api_key, hello.last_signal_sequence) == (0, KEY, 0)
        conn.send(_signal(7, sid))
        report = conn.expect(ExecutionReportPacket)
        ack = conn.expect(AckPacket)
        assert isinstance(report, ExecutionReportPacket) and isinstance(ack, AckPacket)
        assert (ack.acked_sequence, ack.acked_type) == (7, MessageType.SIGNAL)
        assert report.signal_id == sid and report.sequence < ack.sequence  # one counter
        conn.send(_signal(7, sid))  # delivered again (its ACK lost): ACK, nothing else
        again = conn.expect(AckPacket)
        assert isinstance(again, AckPacket) and again.acked_sequence == 7
        conn.send(_signal(9, sid))  # another sequence, the same signal id: not executed twice
        third = conn.expect(AckPacket)
        assert isinstance(third, AckPacket) and third.acked_sequence == 9
        driver.wait_for("duplicate ")
        conn.send(CommandPacket(3, _now(), ACC, 0, 0, "", CommandCode.SEND_SNAPSHOT))
        command_ack = conn.expect(AckPacket)
        assert isinstance(command_ack, AckPacket)
        assert (command_ack.acked_sequence, command_ack.acked_type) == (3, MessageType.COMMAND)
        # an EA -> backend type from the gateway: ERROR WRONG_DIRECTION, naming it
        conn.send(BrokerQuotePacket(55, _now(), ACC, "EURUSD", 1, 2, 0, 0, 1))
        wrong = conn.expect(ErrorPacket)
        assert isinstance(wrong, ErrorPacket)
        assert (wrong.code, wrong.ref_sequence) == (ErrorCode.WRONG_DIRECTION, 55)
        last_sent = wrong.sequence  # the last packet the EA numbered
        conn.close()
    # OnSignal saw sequence 7 once and 9 once (then the id was known): one execution
    assert [x.split()[1] for x in driver.seen if x.startswith("signal ")] == ["7", "9"]
    assert len([x for x in driver.seen if x.startswith("executed")]) == 1
    # A restart: HELLO says what was handled, numbers go on rising.
    with running(driver_binary, gateway, files):
        conn, _ = gateway.next()
        hello = conn.welcome()
        assert (hello.last_signal_sequence, hello.last_command_sequence) == (9, 3)
        conn.send(_signal(10, uuid.uuid4().bytes))
        ack = conn.expect(AckPacket)
        assert isinstance(ack, AckPacket) and ack.sequence > last_sent + 1000
        conn.close()


@pytest.mark.parametrize(("code", "stops"), [
    (CloseCode.AUTH_FAILED, True),
    (CloseCode.SUPERSEDED, True),
    (CloseCode.GOING_AWAY, False),
    (CloseCode.IDLE_TIMEOUT, False),
])
def test_close_codes_stop_or_reconnect_as_the_spec_says(
    driver_binary: Path, gateway: Gateway, tmp_path: Path, code: CloseCode, stops: bool
) -> None:
    with running(driver_binary, gateway, tmp_path / "Files") as driver:
        conn, _ = gateway.next()
        conn.expect(HelloPacket)
        if code is CloseCode.AUTH_FAILED:
            conn.send(WelcomePacket(0, _now(), ACC, 0, 0, 1000, SessionResult.REFUSED))
        else:
            conn.send(WelcomePacket(0, _now(), ACC, 0, 30_000, 0, SessionResult.ACCEPTED))
        conn.send(GoodbyePacket(0, _now(), ACC, 0, code, "scripted"))
        closed_at = time.monotonic()
        driver.wait_for(f"closed {int(code)} scripted")
        conn.close()
        if stops:
            with pytest.raises(queue.Empty):
                gateway.next(timeout=4)
            assert driver.status()[0] == 3  # SUHO_SESSION_STOPPED
        else:
            again, at = gateway.next(timeout=10)
            waited = at - closed_at
            if code is CloseCode.GOING_AWAY:
                assert 0.5 <= waited <= 6, waited  # 1-5 s, the spec's advice
            again.expect(HelloPacket)
            again.close()


def test_a_rate_limited_hello_waits_retry_after(
    driver_binary: Path, gateway: Gateway, tmp_path: Path
) -> None:
    with running(driver_binary, gateway, tmp_path / "Files"):
        conn, _ = gateway.next()
        conn.expect(HelloPacket)
        conn.send(WelcomePacket(0, _now(), ACC, 0, 0, 2500, SessionResult.RATE_LIMITED),
                  GoodbyePacket(0, _now(), ACC, 0, CloseCode.RATE_LIMITED, "slow down"))
        refused_at = time.monotonic()
        conn.close()
        _, at = gateway.next(timeout=10)
        assert 2500 * 0.75 / 1000 - 0.1 <= at - refused_at <= 2500 * 1.25 / 1000 + 1.0


def test_after_a_reconnect_the_outbox_is_resent_from_the_welcome_on(
    driver_binary: Path, gateway: Gateway, tmp_path: Path
) -> None:
    with running(driver_binary, gateway, tmp_path / "Files") as driver:
        conn, _ = gateway.next()
        conn.welcome()
        driver.send("quotes 5 100")
        driver.wait_for("quotes-done")
        quotes = [conn.expect(BrokerQuotePacket) for _ in range(5)]
        sent = [encode(q) for q in quotes]
        conn.close()  # no ACK: the gateway "crashed" after storing two of them
        again, _ = gateway.next(timeout=10)
        again.welcome(last_accepted=quotes[1].sequence)
        resent = [again.expect(BrokerQuotePacket) for _ in range(3)]
        assert [encode(q) for q in resent] == sent[2:]  # same sequences, same timestamps
        again.send(AckPacket(0, _now(), ACC, quotes[-1].sequence, MessageType.BROKER_QUOTE))
        deadline = time.monotonic() + 10
        while driver.status()[2] != 0:
            assert time.monotonic() < deadline, "the outbox is not emptied by the ACK"
            time.sleep(0.05)
        again.close()
