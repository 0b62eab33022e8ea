"""Broker-quote reconciliation: canonical symbols, pip sizes, reference quotes, deviation.

A broker names ``EURUSD`` as ``EURUSD.m``, ``EURUSDm``, ``EURUSD.raw`` or ``#EURUSD``;
:class:`SymbolMapper` maps such names to the canonical symbol of the reference feed (the
seed's Polygon data, published on ``mt5.market.<SYMBOL>``), with per-broker overrides.
:class:`ReferenceBook` keeps the recent reference quotes per canonical symbol, and
:class:`Reconciler` gives each broker quote the reference bid/ask of the same moment and
``price_deviation`` = (broker mid - reference mid) / pip size, in pips.
:func:`adjust_signal` moves a signal's entry, stop loss and take profit from reference
prices to an account's broker by the recent deviation.
"""

from __future__ import annotations

import bisect
import json
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Final

from suho_mt5.errors import ReconcileError

__all__ = [
    "DEFAULT_PIP_SIZES",
    "Reconciler",
    "ReferenceBook",
    "ReferenceQuote",
    "SignalPrices",
    "SymbolMapper",
    "adjust_signal",
    "decode_reference",
    "encode_reference",
    "pip_size",
    "price_deviation",
]

#: Pip sizes of symbols that are not six-letter currency pairs (metals, indices, energy).
#: Currency pairs need no entry: 0.01 when the quote currency is JPY, 0.0001 otherwise.
DEFAULT_PIP_SIZES: Final[Mapping[str, Decimal]] = {
    "XAUUSD": Decimal("0.1"),
    "XAGUSD": Decimal("0.01"),
    "XPTUSD": Decimal("0.1"),
    "US30": Decimal("1"),
    "US500": Decimal("0.1"),
    "NAS100": Decimal("1"),
    "GER40": Decimal("1"),
    "UK100": Decimal("1"),
    "JP225": Decimal("1"),
    "USOIL": Decimal("0.01"),
    "UKOIL": Decimal("0.01"),
}

_PAIR: Final = re.compile(r"[A-Z]{6}")
_PREFIX: Final = re.compile(r"^[^A-Za-z0-9]+")
_SEPARATOR: Final = re.compile(r"[._\-]")
_LOWER_SUFFIX: Final = re.compile(r"[a-z]+$")
_PRICE_Q: Final = Decimal("0.00000001")


def pip_size(symbol: str, configured: Mapping[str, Decimal] = DEFAULT_PIP_SIZES) -> Decimal:
    """The pip size of a canonical symbol.

    >>> pip_size("EURUSD"), pip_size("USDJPY"), pip_size("XAUUSD")
    (Decimal('0.0001'), Decimal('0.01'), Decimal('0.1'))
    """
    if symbol in configured:
        return configured[symbol]
    if _PAIR.fullmatch(symbol):
        return Decimal("0.01") if symbol.endswith("JPY") else Decimal("0.0001")
    raise ReconcileError(f"no pip size for {symbol!r}: configure one (metals, indices)")


def price_deviation(broker_bid: Decimal, broker_ask: Decimal, ref_bid: Decimal,
                    ref_ask: Decimal, pip: Decimal) -> Decimal:
    """(broker mid - reference mid) / pip, in pips, to 8 decimal places.

    >>> price_deviation(Decimal("1.09540"), Decimal("1.09560"), Decimal("1.09520"),
    ...                 Decimal("1.09540"), Decimal("0.0001"))
    Decimal('2.00000000')
    """
    broker_mid = (broker_bid + broker_ask) / 2
    ref_mid = (ref_bid + ref_ask) / 2
    return ((broker_mid - ref_mid) / pip).quantize(_PRICE_Q)


@dataclass
class SymbolMapper:
    """Broker symbol -> canonical symbol.

    ``overrides`` maps a broker name (``mt5_user_accounts.broker_name``, or ``"*"`` for every
    broker) to ``{broker_symbol: canonical}``. Without an override the name is cleaned:
    leading marks (``#``, ``.``) go, everything from the first ``.``, ``_`` or ``-`` goes,
    a lower-case suffix goes (``EURUSDm``), and the rest is upper-cased.

    >>> m = SymbolMapper({"Exness": {"GOLDm": "XAUUSD"}})
    >>> [m.canonical(s) for s in ("EURUSD.m", "EURUSDm", "EURUSD.raw", "#EURUSD", "US30-ECN")]
    ['EURUSD', 'EURUSD', 'EURUSD', 'EURUSD', 'US30']
    >>> m.canonical("GOLDm", broker="Exness"), m.canonical("GOLDm")
    ('XAUUSD', 'GOLD')
    """

    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    _cache: dict[tuple[str, str | None], str] = field(default_factory=dict, repr=False,
                                                      compare=False)

    def canonical(self, symbol: str, broker: str | None = None) -> str:
        key = (symbol, broker)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) > 65536:  # brokers invent symbols; keep the cache bounded
                self._cache.clear()
            found = self._cache[key] = self._canonical(symbol, broker)
        return found

    def _canonical(self, symbol: str, broker: str | None) -> str:
        for key in (broker, "*"):
            if key is not None and symbol in self.overrides.get(key, {}):
                return self.overrides[key][symbol]
        name = _PREFIX.sub("", symbol)
        name = _SEPARATOR.split(name, maxsplit=1)[0]
        stripped = _LOWER_SUFFIX.sub("", name)
        return (stripped or name).upper()


@dataclass(frozen=True, slots=True)
class ReferenceQuote:
    """A reference (market) quote of a canonical symbol."""

    symbol: str
    time: datetime
    bid: Decimal
    ask: Decimal


def encode_reference(quote: ReferenceQuote) -> bytes:
    """The payload of a reference quote on ``mt5.market.<symbol>`` (UTF-8 JSON).

    >>> encode_reference(ReferenceQuote("EURUSD", datetime(2026, 11, 30, tzinfo=UTC),
    ...     Decimal("1.0953"), Decimal("1.0954")))
    b'{"bid": "1.0953", "ask": "1.0954", "time": "2026-11-30T00:00:00+00:00"}'
    """
    return json.dumps(
        {"bid": str(quote.bid), "ask": str(quote.ask), "time": quote.time.isoformat()}
    ).encode()


def decode_reference(symbol: str, payload: bytes) -> ReferenceQuote:
    """The reference quote of ``payload``; :class:`ReconcileError` if it is malformed.

    Prices are decimal strings (JSON numbers are accepted too); ``time`` is ISO 8601 with an
    offset (``Z`` allowed).
    """
    try:
        data = json.loads(payload)
        bid = Decimal(str(data["bid"]))
        ask = Decimal(str(data["ask"]))
        time = datetime.fromisoformat(str(data["time"]).replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
        raise ReconcileError(f"malformed reference quote for {symbol}: {exc}") from exc
    if time.tzinfo is None or not (bid > 0 and ask > 0):
        raise ReconcileError(f"reference quote for {symbol} needs prices > 0 and a UTC offset")
    return ReferenceQuote(symbol, time.astimezone(UTC), bid, ask)


class ReferenceBook:
    """The last ``depth`` reference quotes of each canonical symbol, by time."""

    def __init__(self, depth: int = 256) -> None:
        self.depth = depth
        self._times: dict[str, deque[datetime]] = {}
        self._quotes: dict[str, deque[ReferenceQuote]] = {}

    def add(self, quote: ReferenceQuote) -> None:
        times = self._times.setdefault(quote.symbol, deque(maxlen=self.depth))
        quotes = self._quotes.setdefault(quote.symbol, deque(maxlen=self.depth))
        if times and quote.time < times[-1]:  # rare: out of order; keep the deque sorted
            items = sorted([*quotes, quote], key=lambda q: q.time)[-self.depth :]
            quotes.clear()
            quotes.extend(items)
            times.clear()
            times.extend(q.time for q in items)
            return
        times.append(quote.time)
        quotes.append(quote)

    def __len__(self) -> int:
        return sum(len(q) for q in self._quotes.values())

    def __bool__(self) -> bool:
        return bool(self._quotes)

    def at(self, symbol: str, time: datetime, max_age: timedelta) -> ReferenceQuote | None:
        """The latest quote of ``symbol`` at or before ``time`` and not older than
        ``max_age``, else the earliest one after ``time`` within ``max_age``."""
        times = self._times.get(symbol)
        if not times:
            return None
        quotes = self._quotes[symbol]
        i = bisect.bisect_right(times, time)
        if i and time - times[i - 1] <= max_age:
            return quotes[i - 1]
        if i < len(times) and times[i] - time <= max_age:
            return quotes[i]
        return None


@dataclass
class Reconciler:
    """Fills a broker quote's reference columns (:data:`suho_mt5.ingest.rows.QuoteReference`)."""

    book: ReferenceBook = field(default_factory=ReferenceBook)
    mapper: SymbolMapper = field(default_factory=SymbolMapper)
    pip_sizes: Mapping[str, Decimal] = field(default_factory=lambda: dict(DEFAULT_PIP_SIZES))
    max_age: timedelta = timedelta(seconds=5)

    def reference(self, symbol: str, time: datetime, bid: Decimal, ask: Decimal,
                  broker: str | None = None) -> tuple[Decimal, Decimal, Decimal] | None:
        """``(reference bid, reference ask, deviation in pips)`` or None when no reference
        quote of the same moment (within :attr:`max_age`) or no pip size is known."""
        canonical = self.mapper.canonical(symbol, broker)
        ref = self.book.at(canonical, time, self.max_age)
        if ref is None:
            return None
        try:
            pip = pip_size(canonical, self.pip_sizes)
        except ReconcileError:
            return None
        return ref.bid, ref.ask, price_deviation(bid, ask, ref.bid, ref.ask, pip)


@dataclass(frozen=True, slots=True)
class SignalPrices:
    """Entry, stop loss and take profit of a signal (None: at market / none)."""

    entry: Decimal | None
    stop_loss: Decimal | None
    take_profit: Decimal | None


def adjust_signal(prices: SignalPrices, deviation_pips: Decimal,
                  pip: Decimal) -> tuple[SignalPrices, Decimal]:
    """Prices generated on reference data, moved to a broker whose mid is
    ``deviation_pips`` above the reference's; returns them and the offset applied
    (``broker_adjustment``, in price units).

    >>> adjust_signal(SignalPrices(Decimal("1.09530"), Decimal("1.09320"), None),
    ...               Decimal("2.5"), Decimal("0.0001"))
    (SignalPrices(entry=Decimal('1.09555000'), stop_loss=Decimal('1.09345000'), \
take_profit=None), Decimal('0.00025000'))
    """
    offset = (deviation_pips * pip).quantize(_PRICE_Q)

    def move(p: Decimal | None) -> Decimal | None:
        return None if p is None else (p + offset).quantize(_PRICE_Q)

    moved = SignalPrices(move(prices.entry), move(prices.stop_loss), move(prices.take_profit))
    return moved, offset
