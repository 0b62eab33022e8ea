"""The values the cache holds, as the read API returns them, and their JSON form.

A value is stored as compact JSON in one hash field (``v``), beside the packet time (``t``,
microseconds since the epoch) and sequence (``s``) that the newer-wins scripts compare.
Decimals travel as strings (exact), times as ISO 8601 with microseconds, UUIDs as text.

Each value says where it came from (``source``: ``"cache"`` or ``"database"``); equality
ignores that, so a cached value equals the database row it was made from.

>>> q = Quote(uuid.UUID(int=1), "EURUSD", datetime(2026, 12, 7, tzinfo=UTC), 7,
...           Decimal("1.09531000"), Decimal("1.09545000"))
>>> Quote.from_json(q.to_json()) == q
True
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Final, TypeVar

__all__ = [
    "EAStatus",
    "MarketReference",
    "Quote",
    "SignalState",
    "Snapshot",
    "from_us",
    "to_us",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(t: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (exact, no float).

    >>> to_us(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC))
    1000005
    """
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _encode(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _decoder(type_name: str) -> Any:
    base = type_name.replace(" | None", "").strip()
    return {
        "Decimal": Decimal,
        "datetime": datetime.fromisoformat,
        "uuid.UUID": uuid.UUID,
    }.get(base)


_V = TypeVar("_V", bound="_Value")


class _Value:
    """JSON round trip of a frozen dataclass (every field but ``source``)."""

    __slots__ = ()
    source: str
    _decoders: ClassVar[dict[str, Any]]

    def to_json(self) -> str:
        return json.dumps({f.name: _encode(getattr(self, f.name)) for f in fields(self)  # type: ignore[arg-type]
                           if f.name != "source"}, separators=(",", ":"))

    @classmethod
    def _decoding(cls) -> dict[str, Any]:
        found: dict[str, Any] | None = cls.__dict__.get("_decoders_cache")
        if found is None:
            found = {f.name: _decoder(str(f.type)) for f in fields(cls)  # type: ignore[arg-type]
                     if f.name != "source"}  # (a dataclass subclass)
            cls._decoders_cache = found  # type: ignore[attr-defined]
        return found

    @classmethod
    def from_json(cls: type[_V], text: str | bytes, source: str = "cache") -> _V:
        data = json.loads(text)
        kwargs: dict[str, Any] = {}
        for name, decode in cls._decoding().items():
            raw = data.get(name)
            kwargs[name] = decode(raw) if decode is not None and raw is not None else raw
        return cls.of(kwargs, source)

    @classmethod
    def of(cls: type[_V], values: dict[str, Any] | tuple[Any, ...], source: str) -> _V:
        """An instance from field values (by name, or in field order), marked ``source``."""
        maker: Any = cls
        if isinstance(values, dict):
            return maker(**values, source=source)  # type: ignore[no-any-return]
        return maker(*values, source=source)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Quote(_Value):
    """The latest broker quote of an account and broker symbol (``mt5_broker_quotes``)."""

    account_id: uuid.UUID
    symbol: str
    time: datetime
    sequence: int | None
    bid: Decimal
    ask: Decimal
    last: Decimal | None = None
    volume: Decimal | None = None
    spread_points: int | None = None
    #: The reference (market) prices of the same moment and the deviation in pips, when the
    #: bridge could reconcile the quote (``docs/ingest.md``, "Reconciliation").
    polygon_bid: Decimal | None = None
    polygon_ask: Decimal | None = None
    price_deviation: Decimal | None = None
    source: str = field(default="cache", compare=False)

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class Snapshot(_Value):
    """The latest account snapshot (``mt5_account_balance_history``)."""

    account_id: uuid.UUID
    time: datetime
    sequence: int | None
    balance: Decimal
    equity: Decimal
    margin: Decimal
    free_margin: Decimal | None
    margin_level: Decimal | None
    leverage: int | None
    currency: str | None
    source: str = field(default="cache", compare=False)


@dataclass(frozen=True, slots=True)
class EAStatus(_Value):
    """An EA's status: its latest heartbeat (``mt5_ea_heartbeat``, including the ``offline``
    rows the bridge writes for silent EAs) and the gateway serving it.

    ``status`` and the heartbeat fields are None while no heartbeat is known; ``gateway``
    names the gateway process holding the EA's session (None: not connected, or unknown).
    The gateway fields live only in the cache (the database does not record sessions), so
    equality compares the heartbeat only.
    """

    account_id: uuid.UUID
    status: str | None
    time: datetime | None
    sequence: int | None
    ea_version: str | None = None
    terminal_build: int | None = None
    terminal_connected: bool | None = None
    trade_allowed: bool | None = None
    ping_ms: int | None = None
    gateway: str | None = field(default=None, compare=False)
    gateway_since: datetime | None = field(default=None, compare=False)
    source: str = field(default="cache", compare=False)


@dataclass(frozen=True, slots=True)
class MarketReference(_Value):
    """The latest market reference price of a canonical symbol for a tenant: the
    ``polygon_bid``/``polygon_ask`` of the tenant's latest reconciled broker quote of that
    symbol, as of that quote's ``time``."""

    symbol: str
    time: datetime
    bid: Decimal
    ask: Decimal
    source: str = field(default="cache", compare=False)

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


@dataclass(frozen=True, slots=True)
class SignalState(_Value):
    """One of an account's recent signals (``mt5_trading_signals``) and where it stands:
    ``status`` (``pending``, ``sent``, ``executed``, ``rejected``, ``expired``,
    ``cancelled``), ``closed`` once the trade it opened closed (its execution's
    ``trade_closed``)."""

    signal_id: uuid.UUID
    account_id: uuid.UUID
    time: datetime | None
    status: str
    symbol: str | None = None
    action: str | None = None
    volume: Decimal | None = None
    entry_price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    executed_at: datetime | None = None
    ticket: int | None = None
    closed: bool = False
    closed_at: datetime | None = None
    source: str = field(default="cache", compare=False)

    @property
    def state(self) -> str:
        """``closed`` once the trade closed, else ``status``."""
        return "closed" if self.closed else self.status
