"""The MQL5 session (``clients/mql5/Include/Suho/Session.mqh``), compiled with g++ through the
compatibility layer, against a live gateway process over TCP, with the Data Bridge writing to
native TimescaleDB.

It sends 1,000 quotes; each lands in ``mt5_broker_quotes`` exactly once. It receives a signal
and reports it executed (``mt5_trading_signals.status`` = executed). The gateway is SIGKILLed
in the middle of the quotes and restarted; the session reconnects, resumes from WELCOME's
``last_accepted_sequence``, resends its outbox, receives the signal published while the
gateway was down, and nothing is lost or doubled, on the bus or in the database.

What this proves, and what not, is in ``clients/mql5/README.md`` ("How it is tested").
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import re
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from suho_mt5.commands.signal import publish_signal
from suho_mt5.db import make_engine
from suho_mt5.ingest.streams import DEFAULT_CONTRACT
from tests.integration.ingest._support import make_ingest_login
from tests.support.mql5 import build

from ._support import (
    TENANT,
    GatewayDb,
    bus_and_bridge,
    gateway_process,
    stored_executions,
    stored_packets,
)

ACCOUNT_INDEX = 31  # of gw_db.accounts: no other gateway test uses it


@pytest.fixture(scope="module")
def session_driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build("session_driver", tmp_path_factory.mktemp("mql5"))


class Driver:
    """``session_driver`` as a child process: commands in, event lines out."""

    def __init__(self, binary: Path, url: str, account: uuid.UUID, key: str, files: Path,
                 log: Path) -> None:
        files.mkdir(parents=True, exist_ok=True)
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            [str(binary), url, str(account), key, "suho.state"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True,
            env={"MQL5_FILES": str(files), "SUHO_DRIVER_VERBOSE": "1"}, bufsize=1,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))

    def _drain(self) -> None:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            self.lines.append(line)
            self.log.write(line + "\n")

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def events(self, kind: str) -> list[list[str]]:
        self._drain()
        return [line.split()[1:] for line in self.lines if line.split()[:1] == [kind]]

    async def wait(self, what: Callable[[], bool], timeout: float, why: str) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            if self.proc.poll() is not None:
                self._drain()
                raise AssertionError(f"the driver exited ({self.proc.returncode}) "
                                     f"waiting for {why}; last lines: {self.lines[-20:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {why}; last lines: "
                                     f"{self.lines[-20:]}")
            await asyncio.sleep(0.05)

    def status(self) -> dict[str, int]:
        before = len(self.events("status"))
        self.send("status")
        deadline = time.monotonic() + 10
        while len(self.events("status")) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        state, next_seq, outbox, acked, sessions = map(int, self.events("status")[-1])
        return {"state": state, "next": next_seq, "outbox": outbox, "acked": acked,
                "sessions": sessions}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.send("stop")
            self.proc.wait(10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._drain()
        self.log.close()


def _quotes_in_database(url: str, account: uuid.UUID) -> Counter[int]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return Counter({int(seq): int(n) for seq, n in conn.execute(sa.text(
                "SELECT sequence, count(*) FROM mt5_broker_quotes WHERE account_id = :a"
                " GROUP BY 1"), {"a": account})})
    finally:
        engine.dispose()


@pytest.mark.timeout(240)
def test_the_mql5_session_sends_quotes_executes_signals_and_survives_a_gateway_crash(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path, session_driver: Path
) -> None:
    account = gw_db.accounts[ACCOUNT_INDEX]
    ingest_url = make_ingest_login(gw_db.owner_url)

    with gateway_process(gw_db, nats_url, tmp_path) as proc:
        async def scenario() -> None:
            async with bus_and_bridge(nats_url, ingest_url) as (js, db):
                await with_the_session(js, db)

        async def with_the_session(js: Any, db: Any) -> None:
            driver = Driver(session_driver, proc.url("tcp"), account.account_id,
                            account.api_key, tmp_path / "Files", tmp_path / "driver.log")

            async def signal() -> str:
                sent = await publish_signal(
                    db, js, tenant_id=TENANT, account_id=account.account_id, symbol="EURUSD",
                    action="BUY", volume=Decimal("0.10"), entry_price=Decimal("1.09530"))
                return str(sent.signal_id)

            def executed(signal_id: str) -> Callable[[], bool]:
                return lambda: any(e[0] == signal_id for e in driver.events("executed"))

            try:
                await driver.wait(lambda: len(driver.events("welcome")) == 1, 30, "WELCOME")
                assert driver.events("welcome")[0] == ["0", "0"]
                driver.send("quotes 1000 200")
                await driver.wait(lambda: len(driver.events("quote")) >= 200, 30, "200 quotes")
                before_crash = await signal()
                await driver.wait(executed(before_crash), 30, "the first signal executed")
                await driver.wait(lambda: len(driver.events("quote")) >= 500, 30, "500 quotes")
                proc.kill()  # a crash: no GOODBYE, nothing flushed
                await driver.wait(lambda: bool(driver.events("closed")), 30, "the close noticed")
                while_down = await signal()
                await asyncio.sleep(1.0)  # quotes keep coming: the outbox holds them
                proc.start()
                await driver.wait(lambda: len(driver.events("welcome")) == 2, 60,
                                  "the second WELCOME")
                resumed_after = int(driver.events("welcome")[1][0])
                await driver.wait(lambda: bool(driver.events("quotes-done")), 60, "1,000 quotes")
                await driver.wait(executed(while_down), 60, "the signal sent while down")
                await driver.wait(lambda: driver.status()["outbox"] == 0, 60,
                                  "an empty outbox (every packet acknowledged)")

                quotes = [int(q[0]) for q in driver.events("quote")]
                executions = {e[0]: int(e[1]) for e in driver.events("executed")}
                heartbeats = [int(h[0]) for h in driver.events("heartbeat")]
                assert len(quotes) == len(set(quotes)) == 1000
                assert set(executions) == {before_crash, while_down}
                assert not driver.events("duplicate")
                assert not driver.events("error"), "the gateway refused a packet"
                assert 0 < resumed_after < max(quotes)  # it resumed in the middle

                # On the bus: every data packet the session numbered, exactly once.
                counts, _ = await stored_packets(js)
                mine = {seq: n for (acc, seq), n in counts.items()
                        if acc == str(account.account_id)}
                sent = {*quotes, *executions.values(), *heartbeats}
                assert set(mine) == sent
                assert set(mine.values()) == {1}, "a packet is on the bus twice"
                stored = await stored_executions(js)
                assert {str(k): v for k, v in stored.items()} == {before_crash: 1,
                                                                 while_down: 1}

                # In TimescaleDB, through the Data Bridge: each quote once.
                async def bridged() -> bool:
                    info = await js.consumer_info("MT5_ACCOUNTS",
                                                  DEFAULT_CONTRACT.bridge.durable)
                    return not (info.num_pending or info.num_ack_pending)

                deadline = time.monotonic() + 60
                while not await bridged() and time.monotonic() < deadline:
                    await asyncio.sleep(0.2)
                in_db = await asyncio.to_thread(_quotes_in_database, gw_db.owner_url,
                                                account.account_id)
                assert set(in_db) == set(quotes), "mt5_broker_quotes misses or has extra quotes"
                assert set(in_db.values()) == {1}, "a quote is in mt5_broker_quotes twice"
                async with db.cursor() as cur:
                    await cur.execute("SELECT signal_id::text, status FROM mt5_trading_signals"
                                      " WHERE signal_id = ANY(%s)",
                                      ([uuid.UUID(before_crash), uuid.UUID(while_down)],))
                    assert dict(await cur.fetchall()) == {before_crash: "executed",
                                                          while_down: "executed"}
                log = (tmp_path / "gateway.log").read_text()
                assert re.search(r"session tenant_gw/\S+ opened", log)
            finally:
                driver.close()

        asyncio.run(scenario())
