"""What a simulated EA sends and when: the seed's per-account rates, and the data packets
themselves (quotes, account snapshots, heartbeats, order events)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from suho_mt5.protocol import (
    AccountSnapshotPacket,
    BrokerQuotePacket,
    HeartbeatPacket,
    OrderEventPacket,
    WireDealType,
    WireOrderState,
    WireOrderType,
    now_us,
)

__all__ = ["DEFAULT_RATES", "KINDS", "Rates", "Schedule", "data_packet"]

#: The kinds of data packet an EA produces on its own (execution reports answer signals).
KINDS = ("quote", "snapshot", "heartbeat", "order")
_SYMBOLS = (("EURUSD", 109_530_000), ("GBPUSD", 126_120_000), ("XAUUSD", 265_010_000_000))


@dataclass(frozen=True, slots=True)
class Rates:
    """Per-account rates; the defaults are the seed's records per day per account."""

    quotes_per_s: float = 1.0  # 86,400 a day
    snapshot_every_s: float = 30.0  # 2,880 a day
    heartbeat_every_s: float = 30.0  # 2,880 a day
    orders_per_day: float = 50.0
    speed: float = 1.0
    """Multiplies every rate (``--speed``)."""

    def interval(self, per_s: float) -> float:
        return 1.0 / (per_s * self.speed) if per_s > 0 else float("inf")


#: The seed's rates, unhurried.
DEFAULT_RATES = Rates()


class Schedule:
    """When each kind of data packet is due next (event-loop time): quotes, snapshots and
    heartbeats at their rates from a random phase, orders at random (Poisson) times.

    >>> s = Schedule(Rates(), random.Random(1), start=0.0)
    >>> s.next()
    ('heartbeat', 0.0)
    >>> s.advance("heartbeat"); s.due["heartbeat"]
    30.0
    """

    def __init__(self, rates: Rates, rng: random.Random, start: float) -> None:
        self.rates = rates
        self.rng = rng
        self.due = {
            "quote": start + rng.uniform(0, rates.interval(rates.quotes_per_s)),
            "snapshot": start + rng.uniform(0, rates.interval(1 / rates.snapshot_every_s)),
            "heartbeat": start,
            "order": start + self._order_gap(),
        }

    def _order_gap(self) -> float:
        return self.rng.expovariate(1 / self.rates.interval(self.rates.orders_per_day / 86_400))

    def next(self) -> tuple[str, float]:
        """The kind due first, and when."""
        kind = min(self.due, key=self.due.__getitem__)
        return kind, self.due[kind]

    def advance(self, kind: str) -> None:
        """``kind`` was sent: when the next one is due."""
        rates = self.rates
        if kind == "quote":
            self.due[kind] += rates.interval(rates.quotes_per_s)
        elif kind == "snapshot":
            self.due[kind] += rates.interval(1 / rates.snapshot_every_s)
        elif kind == "heartbeat":
            self.due[kind] += rates.interval(1 / rates.heartbeat_every_s)
        else:
            self.due[kind] += self._order_gap()


DataPacket = AccountSnapshotPacket | BrokerQuotePacket | HeartbeatPacket | OrderEventPacket


def data_packet(kind: str, rng: random.Random, account: bytes, seq: int) -> DataPacket:
    """A data packet of ``kind`` (one of :data:`KINDS`) numbered ``seq``.

    >>> data_packet("heartbeat", random.Random(1), bytes(16), 7).sequence
    7
    """
    if kind == "quote":
        symbol, price = rng.choice(_SYMBOLS)
        bid = price + rng.randrange(-50_000, 50_000) * 10
        return BrokerQuotePacket(seq, now_us(), account, symbol, bid, bid + 20_000, 0,
                                 100_000_000, 2)
    if kind == "snapshot":
        return AccountSnapshotPacket(seq, now_us(), account, 10_000_0000, 10_012_3400,
                                     217_5000, 9_794_8400, 4_603_3747, 100, "USD")
    if kind == "heartbeat":
        return HeartbeatPacket(seq, now_us(), account, "sim-1.0", 4410, 12, True, True)
    symbol, price = rng.choice(_SYMBOLS)
    ticket = rng.randrange(1, 2**40)
    return OrderEventPacket(seq, now_us(), account, ticket, ticket, symbol, 10_000_000, price,
                            0, 0, 0, 0, 0, 42, WireOrderType.BUY, WireDealType.BUY,
                            WireOrderState.OPEN)
