"""The EA itself: ``clients/mql5/Experts/SuhoBridge.mq5``, compiled with g++ and run in the
stand-in terminal (``clients/mql5/test/terminal.h``, ``ea_host.cpp``), against a gateway
process and the Data Bridge on native TimescaleDB.

It streams quotes (timestamped in UTC although the trade server's clock runs two hours
ahead), account snapshots and heartbeats; executes a signal with CTrade and reports it (the
signal is marked executed, the fill is an order event), refuses one it cannot trade (marked
rejected), closes its position on COMMAND CLOSE_ALL, applies a CONFIG, and on SIGTERM
(the terminal removing the EA) saves its state and exits. What the stand-in terminal proves
and what not: ``clients/mql5/README.md``, "How it is tested".
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from suho_mt5._subjects import outbound_subject
from suho_mt5.commands.signal import publish_signal
from suho_mt5.protocol import CommandCode, CommandPacket, ConfigPacket, encode
from tests.integration.ingest._support import libpq, make_ingest_login
from tests.support.mql5 import build, start_ea, stop_ea

from ._support import TENANT, GatewayDb, bus_and_bridge, gateway_process

ACCOUNT_INDEX = 33  # of gw_db.accounts: no other gateway test uses it


@pytest.fixture(scope="module")
def ea_host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build("ea_host", tmp_path_factory.mktemp("mql5-ea"))


async def until(what: Callable[[], Awaitable[bool]], timeout: float, why: str,
                log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not await what():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {why}; the EA's log:\n"
                                 f"{log.read_text()[-3000:]}")
        await asyncio.sleep(0.2)


@pytest.mark.timeout(240)
def test_the_ea_streams_executes_signals_and_obeys_commands(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path, ea_host: Path
) -> None:
    account = gw_db.accounts[ACCOUNT_INDEX]
    acc = account.account_id
    ingest_url = make_ingest_login(gw_db.owner_url)
    log = tmp_path / "ea.log"

    with gateway_process(gw_db, nats_url, tmp_path) as proc:
        async def scenario() -> None:
            async with bus_and_bridge(nats_url, ingest_url) as (js, db):
                await with_the_ea(js, db)

        async def with_the_ea(js: Any, db: Any) -> None:
            # what the rows say is read as the owner (the bridge's login reads few tables)
            owner = await psycopg.AsyncConnection.connect(libpq(gw_db.owner_url),
                                                          autocommit=True)
            ea = start_ea(ea_host, tmp_path / "Files", log, {
                "API_GATEWAY_URL": proc.url("tcp"), "ACCOUNT_ID": acc,
                "API_KEY": account.api_key, "SYMBOLS": "EURUSD, GBPUSD",
                "QUOTES_PER_SECOND": 20, "SNAPSHOT_SECONDS": 2, "HEARTBEAT_SECONDS": 2})

            async def one(sql: str, *args: object) -> object:
                async with owner.cursor() as cur:
                    await cur.execute(sql, args)
                    row = await cur.fetchone()
                    return row[0] if row else None

            async def rows(table: str, where: str = "") -> int:
                value = await one(f"SELECT count(*) FROM {table} WHERE account_id = %s {where}",
                                  acc)
                assert isinstance(value, int)
                return value

            async def signal_status(signal_id: uuid.UUID) -> object:
                return await one("SELECT status FROM mt5_trading_signals WHERE signal_id = %s",
                                 signal_id)

            try:
                async def streaming() -> bool:
                    quotes = await one("SELECT count(DISTINCT symbol) FROM mt5_broker_quotes"
                                       " WHERE account_id = %s", acc)
                    return (quotes == 2 and await rows("mt5_account_balance_history") > 0
                            and await rows("mt5_ea_heartbeat", "AND status = 'online'") > 0)

                await until(streaming, 60, "quotes of both symbols, a snapshot, a heartbeat",
                            log)
                # UTC, although the trade server's clock (tick times) is UTC+2
                skew = await one("SELECT max(abs(extract(epoch FROM now() - time)))"
                                 " FROM mt5_broker_quotes WHERE account_id = %s", acc)
                assert isinstance(skew, Decimal) and skew < 60, skew
                currency = await one("SELECT currency FROM mt5_account_balance_history"
                                     " WHERE account_id = %s LIMIT 1", acc)
                assert currency == "USD"

                buy = (await publish_signal(db, js, tenant_id=TENANT, account_id=acc,
                                            symbol="EURUSD", action="BUY",
                                            volume=Decimal("0.10"))).signal_id
                too_small = (await publish_signal(db, js, tenant_id=TENANT, account_id=acc,
                                                  symbol="EURUSD", action="BUY",
                                                  volume=Decimal("0.001"))).signal_id

                async def judged() -> bool:
                    return (await signal_status(buy) == "executed"
                            and await signal_status(too_small) == "rejected")

                await until(judged, 60, "the two signals executed and rejected", log)
                ticket = await one("SELECT ticket FROM mt5_signal_executions"
                                   " WHERE signal_id = %s", buy)
                assert isinstance(ticket, int) and ticket > 0

                async def opened() -> bool:
                    return await rows("mt5_trade_orders",
                                      f"AND ticket = {ticket} AND status = 'open'") == 1

                await until(opened, 30, "the fill as an order event", log)

                await js.publish(outbound_subject("command", TENANT, acc), encode(CommandPacket(
                    0, time.time_ns() // 1000, acc.bytes, 0, 0, "", CommandCode.CLOSE_ALL)))
                await js.publish(outbound_subject("config", TENANT, acc), encode(ConfigPacket(
                    0, time.time_ns() // 1000, acc.bytes, "quotes_per_s", 5, 0)))

                async def closed() -> bool:
                    return await rows("mt5_trade_orders", "AND status = 'closed'") == 1

                await until(closed, 30, "the position closed by CLOSE_ALL", log)

                async def configured() -> bool:
                    return "setting quotes_per_s = 5.0000" in log.read_text()

                await until(configured, 30, "the CONFIG applied", log)
                dead = await one("SELECT count(*) FROM mt5_ingest_dead_letters")
                assert dead == 0
            finally:
                stop_ea(ea)
                await owner.close()
            assert ea.returncode == 0, log.read_text()[-3000:]
            text = log.read_text()
            assert "not executed: volume outside the symbol's limits" in text
            assert "stopped (reason 1)" in text
            assert (tmp_path / "Files" / f"suho_{acc}.state").is_file()

        asyncio.run(scenario())
