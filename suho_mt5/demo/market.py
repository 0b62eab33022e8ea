"""The demo's market: one reference price path per symbol, and brokers quoting around it.

The reference feed (the seed's Polygon data) and every simulated broker quote come from the
same deterministic path, so the numbers the demo prints can be checked by hand: a broker
that quotes ``offset_pips`` above the reference shows a mean ``price_deviation`` of about
that many pips in the seed's deviation query, whatever its symbol suffix.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from suho_mt5.ingest.reconcile import ReferenceQuote, pip_size

__all__ = [
    "BROKERS",
    "INSTRUMENTS",
    "Broker",
    "Instrument",
    "Market",
    "SignalIdea",
]


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    base: Decimal
    digits: int
    amplitude_pips: float
    period_s: float

    @property
    def pip(self) -> Decimal:
        return pip_size(self.symbol)


INSTRUMENTS: Final = (
    Instrument("EURUSD", Decimal("1.09530"), 5, 12.0, 40.0),
    Instrument("GBPUSD", Decimal("1.26120"), 5, 15.0, 55.0),
    Instrument("USDJPY", Decimal("151.420"), 3, 10.0, 47.0),
    Instrument("XAUUSD", Decimal("2650.10"), 2, 25.0, 35.0),
)


@dataclass(frozen=True, slots=True)
class Broker:
    """A broker as the demo simulates it: its name, how it spells symbols, where it quotes."""

    name: str
    symbol_format: str
    offset_pips: float
    spread_pips: float

    def symbol(self, canonical: str) -> str:
        return self.symbol_format.format(canonical)


#: One broker per demo tenant: one quotes above the reference with plain symbols, the
#: other below it with suffixed ones (``EURUSD.m``), which reconciliation maps back.
BROKERS: Final = (
    Broker("Alpha Markets", "{}", 0.8, 1.0),
    Broker("Beta Brokers", "{}.m", -1.5, 1.4),
)


@dataclass(frozen=True, slots=True)
class SignalIdea:
    """What the demo's "model" proposes: a trade on a canonical symbol, reference prices."""

    instrument: Instrument
    action: str
    entry: Decimal
    stop_loss: Decimal
    take_profit: Decimal
    confidence: Decimal
    reference_bid: Decimal
    reference_ask: Decimal


class Market:
    """The price paths, from one start time (wall-clock seconds)."""

    def __init__(self, start: float, seed: int = 7) -> None:
        self.start = start
        self.rng = random.Random(seed)

    def mid(self, instrument: Instrument, now: float) -> float:
        t = now - self.start
        wave = math.sin(2 * math.pi * t / instrument.period_s)
        ripple = 0.3 * math.sin(2 * math.pi * t / (instrument.period_s / 7.3))
        return float(instrument.base) + (wave + ripple) * instrument.amplitude_pips * float(
            instrument.pip)

    def trend(self, instrument: Instrument, now: float) -> float:
        """The path's slope in pips per second (the "model's" only feature)."""
        return (self.mid(instrument, now) - self.mid(instrument, now - 1.0)) / float(
            instrument.pip)

    def _q(self, instrument: Instrument, value: float) -> Decimal:
        return Decimal(value).quantize(Decimal(1).scaleb(-instrument.digits))

    def reference(self, instrument: Instrument, now: float) -> tuple[Decimal, Decimal]:
        """Reference bid and ask: half a pip either side of the mid."""
        mid, half = self.mid(instrument, now), 0.5 * float(instrument.pip)
        return self._q(instrument, mid - half), self._q(instrument, mid + half)

    def reference_quote(self, instrument: Instrument, now: float) -> ReferenceQuote:
        from datetime import UTC, datetime

        bid, ask = self.reference(instrument, now)
        return ReferenceQuote(instrument.symbol, datetime.fromtimestamp(now, UTC), bid, ask)

    def broker_quote(self, instrument: Instrument, broker: Broker, now: float,
                     rng: random.Random) -> tuple[Decimal, Decimal]:
        """A broker's bid and ask: the reference mid moved by its offset, a little noise
        (a tenth of a pip), and its spread."""
        pip = float(instrument.pip)
        mid = self.mid(instrument, now) + (broker.offset_pips + rng.gauss(0, 0.1)) * pip
        half = broker.spread_pips / 2 * pip
        return self._q(instrument, mid - half), self._q(instrument, mid + half)

    def idea(self, now: float) -> SignalIdea:
        """A trend-following proposal on a random instrument, priced on the reference."""
        instrument = self.rng.choice(INSTRUMENTS)
        slope = self.trend(instrument, now)
        action = "BUY" if slope >= 0 else "SELL"
        bid, ask = self.reference(instrument, now)
        entry = ask if action == "BUY" else bid
        pip = instrument.pip
        sign = 1 if action == "BUY" else -1
        stop = entry - sign * 20 * pip
        target = entry + sign * 30 * pip
        strength = min(1.0, abs(slope) / 3.0)
        confidence = Decimal(str(round(0.55 + 0.4 * strength, 4)))
        return SignalIdea(instrument, action, entry, stop, target, confidence, bid, ask)
