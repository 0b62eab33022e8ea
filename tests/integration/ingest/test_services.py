"""Reconciliation, offline marking and risk limits through the database, numbers by hand."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from suho_mt5._subjects import account_subject, market_subject, message_id
from suho_mt5.commands.signal import publish_signal
from suho_mt5.ingest import RiskLimits, mark_offline
from suho_mt5.ingest.reconcile import ReferenceQuote, encode_reference
from suho_mt5.ingest.status import OfflineMark
from suho_mt5.protocol import (
    AccountSnapshotPacket,
    BrokerQuotePacket,
    OrderEventPacket,
    Packet,
    WireDealType,
    WireMarginMode,
    WireOrderState,
    WireOrderType,
    encode_frame,
)
from tests.integration.ingest._support import (
    BASE_TIME,
    IngestDb,
    jetstream,
    libpq,
    quick_settings,
    running_bridge,
)
from tests.support.servers import NatsServer

D = Decimal


def _us(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000 + t.microsecond


async def _send(js: object, tenant: str, acc: uuid.UUID, kind: str, packets: list[Packet],
                tag: str = "") -> None:
    await js.publish(account_subject(tenant, acc, kind), encode_frame(packets),  # type: ignore[attr-defined]
                     headers={"Nats-Msg-Id": message_id(acc, packets[0].sequence) + tag})


async def _wait(db: IngestDb, table: str, n: int) -> None:
    for _ in range(300):
        if await asyncio.to_thread(db.count, table) >= n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{table}: fewer than {n} rows")


def test_quotes_reconciled_seed_query_and_signal_adjusted(ingest_db: IngestDb,
                                                          nats: NatsServer) -> None:
    (acc,) = ingest_db.add_accounts(1, tenants=("acme",))
    now = datetime.now(UTC).replace(microsecond=0)
    refs = [ReferenceQuote("EURUSD", now, D("1.09520"), D("1.09540")),
            ReferenceQuote("USDJPY", now, D("151.200"), D("151.220")),
            ReferenceQuote("XAUUSD", now, D("2650.10"), D("2650.50"))]
    t = _us(now + timedelta(seconds=1))
    quotes = [  # broker symbol, bid, ask (x 10^8) -> deviation in pips by hand
        ("EURUSD.m", 109_540_000, 109_560_000),  # mid 1.09550 - 1.09530 = 2 pips
        ("EURUSD.m", 109_545_000, 109_565_000),  # 1.09555 - 1.09530 = 2.5 pips
        ("USDJPYm", 15_123_000_000, 15_125_000_000),  # 151.240 - 151.210 = 3 pips (0.01)
        ("#XAUUSD", 265_060_000_000, 265_100_000_000),  # 2650.80 - 2650.30 = 5 pips (0.1)
        ("GBPUSD.raw", 127_000_000, 127_002_000),  # no reference quote: columns stay NULL
    ]
    packets: list[Packet] = [BrokerQuotePacket(i + 1, t + i, acc.bytes, s, b, a, 0, 0, 2)
                             for i, (s, b, a) in enumerate(quotes)]

    async def scenario() -> object:
        async with jetstream(nats.url) as (_nc, js):
            for r in refs:
                await js.publish(market_subject(r.symbol), encode_reference(r))
            async with running_bridge(quick_settings(ingest_db, nats.url)) as bridge:
                while bridge.metrics.reference_quotes._value.get() < len(refs):
                    await asyncio.sleep(0.05)
                await _send(js, "acme", acc, "quote", packets)
                await _wait(ingest_db, "mt5_broker_quotes", len(packets))
            async with await psycopg.AsyncConnection.connect(libpq(ingest_db.ingest_url)) as c:
                return await publish_signal(
                    c, js, tenant_id="acme", account_id=acc, symbol="EURUSD.m", action="BUY",
                    volume=D("0.1"), entry_price=D("1.09530"), stop_loss=D("1.09320"),
                    take_profit=D("1.09820"), adjust_to_broker=True,
                    time=now + timedelta(seconds=10))

    sent = asyncio.run(scenario())
    with ingest_db.connect() as conn:
        rows = dict(conn.execute(
            "SELECT sequence, price_deviation FROM mt5_broker_quotes").fetchall())
        polygon = conn.execute("SELECT polygon_bid, polygon_ask FROM mt5_broker_quotes"
                               " WHERE sequence = 1").fetchone()
        seed = dict((s, (avg, mx)) for s, avg, mx in conn.execute(
            "SELECT symbol, AVG(price_deviation) AS avg_deviation_pips,"
            " MAX(ABS(price_deviation)) AS max_deviation FROM mt5_broker_quotes"
            " WHERE time >= NOW() - INTERVAL '24 hours' GROUP BY symbol").fetchall())
        signal = conn.execute("SELECT entry_price, stop_loss, take_profit, broker_adjustment"
                              " FROM mt5_trading_signals").fetchone()
    assert rows == {1: D("2"), 2: D("2.5"), 3: D("3"), 4: D("5"), 5: None}
    assert polygon == (D("1.09520"), D("1.09540"))
    assert seed["EURUSD.m"] == (D("2.25"), D("2.5"))
    assert seed["#XAUUSD"] == (D("5"), D("5"))
    # mean deviation 2.25 pips = 0.000225: every price moves up by it
    assert signal == (D("1.095525"), D("1.093425"), D("1.098425"), D("0.000225"))
    assert sent.packet.entry_price == 109_552_500  # type: ignore[attr-defined]


def test_silent_eas_are_marked_offline_seed_connectivity_query(ingest_db: IngestDb) -> None:
    x, y, z, w = ingest_db.add_accounts(4, tenants=("acme",))
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    latest = {x: (now - timedelta(seconds=200), "online"),  # silent for 200 s > 90 s
              y: (now - timedelta(seconds=30), "online"),  # heard 30 s ago
              z: (now - timedelta(seconds=500), "offline"),  # already offline
              w: (now - timedelta(seconds=900), "degraded")}  # inactive account
    with ingest_db.connect() as conn:
        for acc, (t, status) in latest.items():
            conn.execute("INSERT INTO mt5_ea_heartbeat (time, tenant_id, account_id, status,"
                         " sequence) VALUES (%s, 'acme', %s, 'online', 1), (%s, 'acme', %s, %s,"
                         " 2)", (t - timedelta(seconds=30), acc, t, acc, status))
        conn.execute("UPDATE mt5_user_accounts SET is_active = false WHERE account_id = %s",
                     (w,))

    async def check() -> tuple[list[OfflineMark], list[OfflineMark]]:
        async with await psycopg.AsyncConnection.connect(libpq(ingest_db.ingest_url)) as c:
            first = await mark_offline(c, timedelta(seconds=90), now=now)
            again = await mark_offline(c, timedelta(seconds=90), now=now + timedelta(seconds=5))
            return first, again

    first, again = asyncio.run(check())
    assert first == [("acme", x, now)] and again == []
    with ingest_db.connect() as conn:
        seed = conn.execute(
            "SELECT COUNT(*) FILTER (WHERE status = 'online') AS online,"
            " COUNT(*) FILTER (WHERE status = 'offline') AS offline, COUNT(*) AS total"
            " FROM (SELECT DISTINCT ON (account_id) account_id, status FROM mt5_ea_heartbeat"
            " ORDER BY account_id, time DESC) latest").fetchone()
    assert seed == (1, 2, 4)


def _snap(acc: uuid.UUID, seq: int, minute: int, equity: str, margin: str = "0",
          level: str = "0",
          mode: WireMarginMode = WireMarginMode.UNKNOWN) -> AccountSnapshotPacket:
    return AccountSnapshotPacket(
        seq, _us(BASE_TIME + timedelta(minutes=minute)), acc.bytes, 1_000_000_000,
        int(D(equity) * 10_000), int(D(margin) * 10_000), 0, int(D(level) * 10_000), 100, "USD",
        mode)


def test_risk_limits_by_hand_netting_and_hedging(ingest_db: IngestDb, nats: NatsServer) -> None:
    (netting,) = ingest_db.add_accounts(1, tenants=("acme",), margin_mode="netting")
    # Its row says netting; its snapshots say hedging, and what the EA reports wins.
    (hedging,) = ingest_db.add_accounts(1, tenants=("acme",), margin_mode="netting")
    limits = RiskLimits(max_drawdown_pct=D(20), min_margin_level_pct=D(150),
                        stop_out_level_pct=D(50), max_daily_loss_pct=D(5),
                        max_symbol_exposure_lots=D("1.0"))
    snaps = [
        _snap(netting, 1, 0, "10000"),  # peak 10000, day starts at 10000
        _snap(netting, 2, 1, "12000"),  # peak 12000
        _snap(netting, 3, 2, "9500", "100", "9500"),  # dd 2500/12000 = 20.8333 %; loss 5 %
        _snap(netting, 4, 3, "9400", "7000", "134.2857"),  # dd 21.6667 %, loss 6 %, ML 134
        _snap(netting, 5, 4, "3000", "7000", "42.8571"),  # dd 75 %, loss 70 %, ML < stop out
    ]

    def orders(acc: uuid.UUID) -> list[Packet]:  # open buy 1.0 and open sell 0.4 of EURUSD
        t = _us(BASE_TIME - timedelta(minutes=5))
        return [OrderEventPacket(10 + i, t + i, acc.bytes, 100 + i, 100 + i, "EURUSD",
                                 lots, 109_530_000, 0, 0, 0, 0, 0, 0, side, deal,
                                 WireOrderState.OPEN)
                for i, (lots, side, deal) in enumerate((
                    (100_000_000, WireOrderType.BUY, WireDealType.BUY),
                    (40_000_000, WireOrderType.SELL, WireDealType.SELL)))]

    async def scenario() -> None:
        settings = quick_settings(ingest_db, nats.url, risk=limits)
        async with jetstream(nats.url) as (_nc, js), running_bridge(settings):
            await _send(js, "acme", netting, "order", orders(netting))
            await _send(js, "acme", hedging, "order", orders(hedging))
            await _wait(ingest_db, "mt5_trade_orders", 4)
            await _send(js, "acme", netting, "snapshot", snaps)
            await _send(js, "acme", hedging, "snapshot", [_snap(hedging, 1, 0, "10000",
                                                           mode=WireMarginMode.HEDGING)])
            await _wait(ingest_db, "mt5_account_balance_history", 6)
            # The same snapshots again (another message id): duplicates, no new events.
            await _send(js, "acme", netting, "snapshot", snaps, tag="-again")
            await asyncio.sleep(1.5)

    asyncio.run(scenario())
    with ingest_db.connect() as conn:
        events = conn.execute(
            "SELECT account_id, extract(minute FROM time)::int, event_type, severity, threshold,"
            " observed_value, details->>'measure' FROM mt5_risk_events"
            " ORDER BY account_id = %s DESC, time, event_type", (netting,)).fetchall()
    n, h = netting, hedging
    assert events == [
        (n, 2, "drawdown_limit", "high", D(20), D("20.8333"), None),
        (n, 3, "daily_loss_limit", "high", D(5), D("6.0000"), None),
        (n, 3, "drawdown_limit", "high", D(20), D("21.6667"), None),
        (n, 3, "margin_level", "warning", D(150), D("134.2857"), None),
        (n, 4, "daily_loss_limit", "high", D(5), D("70.0000"), None),
        (n, 4, "drawdown_limit", "high", D(20), D("75.0000"), None),
        (n, 4, "margin_level", "critical", D(50), D("42.8571"), None),
        # netting: net 1.0 - 0.4 = 0.6 lots, under the limit; hedging: gross 1.4 lots
        (h, 0, "exposure_limit", "warning", D("1.0"), D("1.4"), "gross"),
    ]
