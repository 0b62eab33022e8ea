"""The demo's EA: the gateway's simulated EA, quoting a broker of the demo's market and
closing the trades it opens.

Everything it sends still goes over the real socket as 144-byte packets; only what it
quotes and how it trades differ from :class:`~suho_mt5.gateway.simulator.SimulatedEA`:

* quotes are its broker's prices of the market's path (``EURUSD.m`` at a Beta Brokers
  account), so reconciliation has something real to measure;
* each executed signal is followed by an OPEN order event, and ``hold_s`` later by a CLOSED
  one whose profit follows the price path; the schema's triggers then close the feedback
  loop (``mt5_signal_executions.trade_closed``);
* account snapshots carry the balance those closed trades made.
"""

from __future__ import annotations

import asyncio
import random
import time
from decimal import Decimal

from suho_mt5.demo.market import INSTRUMENTS, Broker, Instrument, Market
from suho_mt5.gateway.simulator import Rates, SimAccount, SimulatedEA
from suho_mt5.protocol import (
    MONEY_SCALE,
    PRICE_SCALE,
    AccountSnapshotPacket,
    BrokerQuotePacket,
    OrderEventPacket,
    Packet,
    SignalPacket,
    WireAction,
    WireDealType,
    WireOrderState,
    WireOrderType,
    now_us,
)

__all__ = ["DemoEA"]

_PRICE = Decimal(10) ** PRICE_SCALE
_MONEY = Decimal(10) ** MONEY_SCALE
_LOTS = Decimal(10) ** PRICE_SCALE  # volumes share the price scale (LOTS fields)
#: Account currency per pip and lot (a standard lot of a USD-quoted pair).
_PIP_VALUE = Decimal(10)


class DemoEA(SimulatedEA):
    """A simulated EA at ``broker``, quoting ``market``'s prices, closing what it opens."""

    def __init__(self, account: SimAccount, url: str, rates: Rates, *, market: Market,
                 broker: Broker, hold_s: float = 3.0, balance: Decimal = Decimal(10_000)
                 ) -> None:
        super().__init__(account, url, rates)
        self.market = market
        self.broker = broker
        self.hold_s = hold_s
        self.balance = balance
        self.open_trades = 0
        self.closed_trades = 0
        self._instruments = {broker.symbol(i.symbol): i for i in INSTRUMENTS}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what it streams -----------------------------------------------------------------

    def packet(self, kind: str, seq: int) -> Packet:
        if kind == "quote":
            return self._quote(seq)
        if kind == "snapshot":
            return self._snapshot(seq)
        if kind == "order":
            return self._order(seq)
        return super().packet(kind, seq)  # heartbeats as the simulator sends them

    def _quote(self, seq: int) -> Packet:
        instrument = self.rng.choice(INSTRUMENTS)
        bid, ask = self.market.broker_quote(instrument, self.broker, time.time(), self.rng)
        spread = int((ask - bid).scaleb(instrument.digits))
        return BrokerQuotePacket(seq, now_us(), self.acc, self.broker.symbol(instrument.symbol),
                                 int(bid * _PRICE), int(ask * _PRICE), 0,
                                 int(self.rng.randint(1, 20) * 10**8), spread)

    def _snapshot(self, seq: int) -> Packet:
        balance = int(self.balance * _MONEY)
        margin = 1_000 * 10**4 * self.open_trades
        equity = balance + self.rng.randint(-50, 50) * 10**4 * self.open_trades
        level = equity * 100 // margin * 10**4 if margin else 0
        return AccountSnapshotPacket(seq, now_us(), self.acc, balance, equity, margin,
                                     equity - margin, level, 100, "USD")

    def _order(self, seq: int) -> Packet:
        # Orders come from signals in the demo; the simulator's random orders would be
        # trades that never close. A pending limit order instead, cancelled at once.
        instrument = self.rng.choice(INSTRUMENTS)
        bid, _ = self.market.broker_quote(instrument, self.broker, time.time(), self.rng)
        ticket = self.rng.randrange(1, 2**40)
        return OrderEventPacket(seq, now_us(), self.acc, ticket, 0,
                                self.broker.symbol(instrument.symbol), 10_000_000,
                                int((bid - 30 * instrument.pip) * _PRICE), 0, 0, 0, 0, 0, 7,
                                WireOrderType.BUY_LIMIT, WireDealType.NONE,
                                WireOrderState.CANCELLED)

    # -- how it trades -------------------------------------------------------------------

    def after_execution(self, sig: SignalPacket, ticket: int, price: int) -> None:
        instrument = self._instruments.get(sig.symbol)
        if instrument is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._trade(sig, instrument, ticket, Decimal(price) / _PRICE))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _trade(self, sig: SignalPacket, instrument: Instrument, ticket: int,
                     entry: Decimal) -> None:
        buy = sig.action == WireAction.BUY
        order_type = WireOrderType.BUY if buy else WireOrderType.SELL
        volume = Decimal(sig.volume) / _LOTS
        symbol = sig.symbol
        self.open_trades += 1
        await self._send_data(lambda seq: OrderEventPacket(
            seq, now_us(), self.acc, ticket, ticket, symbol, sig.volume, int(entry * _PRICE),
            sig.stop_loss, sig.take_profit, 0, 0, 0, 7, order_type,
            WireDealType.BUY if buy else WireDealType.SELL, WireOrderState.OPEN))
        await asyncio.sleep(self.hold_s * random.uniform(0.5, 1.5))
        bid, ask = self.market.broker_quote(instrument, self.broker, time.time(), self.rng)
        close = bid if buy else ask
        pips = (close - entry) / instrument.pip * (1 if buy else -1)
        profit = (pips * _PIP_VALUE * volume).quantize(Decimal("0.01"))
        self.balance += profit
        self.open_trades -= 1
        self.closed_trades += 1
        await self._send_data(lambda seq: OrderEventPacket(
            seq, now_us(), self.acc, ticket, ticket, symbol, sig.volume, int(close * _PRICE),
            sig.stop_loss, sig.take_profit, int(profit * _MONEY), 0, 0, 7,
            order_type, WireDealType.SELL if buy else WireDealType.BUY,
            WireOrderState.CLOSED))

    async def close_all(self) -> None:
        """Wait for the trades still open to close (the demo's end)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
