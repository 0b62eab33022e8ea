"""Field kinds: how one field is laid out and validated.

A kind is declared once and used in ``Annotated`` hints on the record classes; the layout
compiler (``_layout``) reads them to build the structs, the generated fast paths, the
reference (slow) validator, the rules and the tables of ``docs/protocol.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from ._constants import CONFIDENCE_SCALE, MAX_TIMESTAMP_US, MONEY_SCALE, PRICE_SCALE

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_STRUCT_BOUNDS: dict[str, tuple[int, int]] = {
    "B": (0, 2**8 - 1),
    "H": (0, 2**16 - 1),
    "i": (-(2**31), 2**31 - 1),
    "I": (0, 2**32 - 1),
    "q": (-(2**63), 2**63 - 1),
    "Q": (0, 2**64 - 1),
}
_SIZES = {"B": 1, "H": 2, "i": 4, "I": 4, "q": 8, "Q": 8}
_WIRE_NAMES = {
    "B": "uint8",
    "H": "uint16",
    "i": "int32",
    "I": "uint32",
    "q": "int64",
    "Q": "uint64",
}


@dataclass(frozen=True, slots=True)
class TextRule:
    """NUL-padded ASCII: bytes 0x21..0x7E (0x20 too if ``allow_space``), then only NULs."""

    allow_space: bool
    min_len: int


@dataclass(frozen=True, slots=True)
class Kind:
    """One way of carrying a value: struct code, range and unit."""

    name: str
    code: str
    size: int
    lo: int = 0
    hi: int = 0
    unit: str = ""
    scale: int = 0
    enum: type[IntEnum] | None = None
    text: TextRule | None = None
    boolean: bool = False
    is_uuid: bool = False
    timestamp: bool = False

    def __call__(self, doc: str) -> Spec:
        """Attach a field's description."""
        return Spec(self, doc)

    # Derived once: the reference path asks for them on every field it checks.
    category: str = field(init=False, compare=False, repr=False)
    member_map: dict[int, IntEnum] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.text is not None:
            category = "text"
        elif self.enum is not None:
            category = "enum"
        elif self.boolean:
            category = "bool"
        elif self.is_uuid:
            category = "bytes"
        else:
            category = "int"
        object.__setattr__(self, "category", category)
        members = {int(m): m for m in self.enum} if self.enum is not None else {}
        object.__setattr__(self, "member_map", members)

    @property
    def wire(self) -> str:
        if self.text is not None:
            return f"char[{self.size}]"
        if self.is_uuid:
            return "byte[16]"
        return _WIRE_NAMES[self.code]

    @property
    def struct_bounds(self) -> tuple[int, int]:
        return _STRUCT_BOUNDS.get(self.code, (0, 0))

    @property
    def range_checked(self) -> bool:
        """True when the range is narrower than what the struct code can hold."""
        return self.category == "int" and (self.lo, self.hi) != self.struct_bounds

    def members(self) -> dict[int, IntEnum]:
        assert self.enum is not None
        return self.member_map


@dataclass(frozen=True, slots=True)
class Spec:
    """A kind as used by one field of one message type."""

    kind: Kind
    doc: str


def _int(
    code: str,
    name: str,
    unit: str = "",
    *,
    scale: int = 0,
    lo: int | None = None,
    hi: int | None = None,
    timestamp: bool = False,
) -> Kind:
    slo, shi = _STRUCT_BOUNDS[code]
    return Kind(
        name,
        code,
        _SIZES[code],
        slo if lo is None else lo,
        shi if hi is None else hi,
        unit,
        scale,
        timestamp=timestamp,
    )


def enum_kind(enum: type[IntEnum], code: str = "B") -> Kind:
    """A kind whose raw values must be members of ``enum``."""
    size = _SIZES[code]
    values = [int(m) for m in enum]
    return Kind(f"enum {enum.__name__}", code, size, min(values), max(values), enum=enum)


def text_kind(name: str, size: int, *, min_len: int = 1, allow_space: bool = False) -> Kind:
    return Kind(name, f"{size}s", size, text=TextRule(allow_space, min_len))


SEQUENCE = _int("Q", "sequence", "count")
# Unsigned on the wire: the valid range is the same as int64's 0..MAX, and a negative int64
# reads as a huge uint64, so the range check is one comparison.
TIMESTAMP = _int(
    "Q", "timestamp", "µs since 1970-01-01T00:00:00Z", hi=MAX_TIMESTAMP_US, lo=0, timestamp=True
)
UUID = Kind("uuid", "16s", 16, is_uuid=True, unit="RFC 4122 byte order")
PRICE = _int("q", "price", f"x 10^{PRICE_SCALE}", scale=PRICE_SCALE)
LOTS = _int("Q", "lots", f"lots x 10^{PRICE_SCALE}", scale=PRICE_SCALE)
MONEY = _int("q", "money", f"account currency x 10^{MONEY_SCALE}", scale=MONEY_SCALE)
PERCENT = _int("q", "percent", f"% x 10^{MONEY_SCALE}", scale=MONEY_SCALE, lo=0, hi=10**12 - 1)
BASIS_POINTS = _int(
    "H", "basis points", f"1/10^{CONFIDENCE_SCALE}", scale=CONFIDENCE_SCALE, hi=10**CONFIDENCE_SCALE
)
ID64 = _int("q", "id", "", lo=0)
INT31 = _int("I", "count", "", hi=2**31 - 1)
POSITIVE_INT31 = _int("I", "count", "", lo=1, hi=2**31 - 1)
UINT32 = _int("I", "uint32")
POINTS = _int("i", "points", "points (symbol digits)")
INT64 = _int("q", "int64", "x 10^-decimals")
DECIMALS = _int("B", "decimals", "power of ten", hi=18)
MILLISECONDS = _int("I", "ms", "milliseconds", hi=2**31 - 1)
BOOL = Kind("bool", "B", 1, 0, 1, boolean=True)
SYMBOL = text_kind("symbol", 16)
OPTIONAL_SYMBOL = text_kind("symbol", 16, min_len=0)
CURRENCY = text_kind("code", 8)
VERSION_TEXT = text_kind("text", 16)
CONFIG_KEY = text_kind("key", 16)
DETAIL = text_kind("text", 64, min_len=0, allow_space=True)


def with_range(kind: Kind, lo: int, hi: int) -> Kind:
    return replace(kind, lo=lo, hi=hi)


def micros_to_datetime(micros: int) -> datetime:
    """An aware UTC ``datetime`` from µs since the epoch, exactly (no float rounding)."""
    return _EPOCH + timedelta(microseconds=micros)
