"""Signal delivery closes the loop: stored, published on the account's subject, decoded by
the EA with the same values, executed, reported back through the bridge, closed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from suho_mt5._subjects import account_subject, message_id
from suho_mt5.commands.signal import publish_signal
from suho_mt5.protocol import (
    ExecutionReportPacket,
    OrderEventPacket,
    SignalPacket,
    WireAction,
    WireDealType,
    WireOrderState,
    WireOrderType,
    decode,
    encode,
)
from tests.integration.ingest._support import (
    IngestDb,
    jetstream,
    libpq,
    quick_settings,
    running_bridge,
)
from tests.support.servers import NatsServer


def test_signal_published_received_executed_and_closed(ingest_db: IngestDb,
                                                       nats: NatsServer) -> None:
    (acc,) = ingest_db.add_accounts(1, tenants=("globex.eu",))  # '.' travels as %2E
    now = datetime.now(UTC).replace(microsecond=123456)

    async def scenario() -> tuple[object, ...]:
        async with jetstream(nats.url) as (_nc, js):
            inbox = await js.pull_subscribe(f"mt5.signal.globex%2Eeu.{acc}", stream="MT5_SIGNALS")
            async with await psycopg.AsyncConnection.connect(libpq(ingest_db.ingest_url)) as c:
                sent = await publish_signal(
                    c, js, tenant_id="globex.eu", account_id=acc, symbol="EURUSD",
                    action="BUY", volume=Decimal("0.10"), entry_price=Decimal("1.09530"),
                    stop_loss=Decimal("1.09320"), take_profit=Decimal("1.09820"),
                    expires_at=now + timedelta(hours=1), confidence=Decimal("0.85"),
                    model_version="v1", strategy_name="trend", time=now)
                again = await js.publish(sent.subject, encode(sent.packet),
                                         headers={"Nats-Msg-Id": str(sent.signal_id)})
            (msg,) = await inbox.fetch(1, timeout=5)
            await msg.ack()
            received = decode(msg.data)
            assert isinstance(received, SignalPacket)
            # The EA executes it and reports back; later the position closes.
            t_exec = int(now.timestamp() * 1e6) + 2_000_000
            report = ExecutionReportPacket(1, t_exec, acc.bytes, received.signal_id, 777,
                                           109_535_000, 5_000, 10009)
            close = OrderEventPacket(2, t_exec + 60_000_000, acc.bytes, 778, 777, "EURUSD",
                                     10_000_000, 109_600_000, 0, 0, 7_0000, -7_000, 0, 42,
                                     WireOrderType.SELL, WireDealType.SELL,
                                     WireOrderState.CLOSED)
            async with running_bridge(quick_settings(ingest_db, nats.url)):
                for kind, packet in (("execution", report), ("order", close)):
                    await js.publish(account_subject("globex.eu", acc, kind), encode(packet),
                                     headers={"Nats-Msg-Id": message_id(acc, packet.sequence)})
                for _ in range(200):
                    if ingest_db.count("mt5_trade_orders") == 1:
                        break
                    await asyncio.sleep(0.05)
            return sent, received, msg.headers, again.duplicate

    sent, received, headers, duplicate = asyncio.run(scenario())
    assert received == sent.packet  # type: ignore[attr-defined]
    assert received.action is WireAction.BUY  # type: ignore[attr-defined]
    assert received.entry_price == 109_530_000 and received.stop_loss == 109_320_000  # type: ignore[attr-defined]
    assert received.confidence_bp == 8500  # type: ignore[attr-defined]
    assert headers["Nats-Msg-Id"] == str(sent.signal_id)  # type: ignore[index, attr-defined]
    assert duplicate, "a republish with the same signal id is dropped by the stream"
    with ingest_db.connect() as conn:
        signal = conn.execute(
            "SELECT status, sent_at IS NOT NULL, executed_at, entry_price, tenant_id"
            " FROM mt5_trading_signals").fetchone()
        execution = conn.execute(
            "SELECT ticket, actual_entry_price, result_code, trade_closed, close_price, profit,"
            " feedback_status FROM mt5_signal_executions").fetchone()
    assert signal is not None and execution is not None
    assert signal[0] == "executed" and signal[1] and signal[4] == "globex.eu"
    assert signal[2] == now + timedelta(seconds=2)
    assert signal[3] == Decimal("1.09530000")
    assert execution == (777, Decimal("1.09535000"), 10009, True, Decimal("1.09600000"),
                         Decimal("7.0000"), "pending")
