"""Enumerations carried on the wire. Every value is part of the protocol: never renumber."""

from __future__ import annotations

from enum import IntEnum, IntFlag, unique

__all__ = [
    "CommandCode",
    "ErrorCode",
    "HeaderFlag",
    "MessageType",
    "WireAction",
    "WireDealType",
    "WireMarginMode",
    "WireOrderState",
    "WireOrderType",
]


@unique
class MessageType(IntEnum):
    """Byte 5 of the header.

    0x01-0x3F travel EA -> backend, 0x40-0x7D backend -> EA, 0x7E-0x7F either way;
    0x00 and 0x80-0xFF are never sent in version 1.

    >>> MessageType(2).name
    'BROKER_QUOTE'
    """

    ACCOUNT_SNAPSHOT = 0x01
    BROKER_QUOTE = 0x02
    HEARTBEAT = 0x03
    ORDER_EVENT = 0x04
    EXECUTION_REPORT = 0x05
    SIGNAL = 0x41
    COMMAND = 0x42
    CONFIG = 0x43
    ACK = 0x7E
    ERROR = 0x7F


class HeaderFlag(IntFlag):
    """Bits of the header's ``flags`` field (bytes 6..7).

    Flags announce features a receiver *must* understand, so a version 1 decoder rejects any
    set bit. ``MAC_TRAILER`` is reserved for a future per-packet truncated MAC.
    """

    MAC_TRAILER = 0x0001


@unique
class WireAction(IntEnum):
    """What a SIGNAL asks the EA to do."""

    BUY = 1
    SELL = 2
    CLOSE = 3
    MODIFY = 4


@unique
class WireOrderType(IntEnum):
    """MQL5 ``ENUM_ORDER_TYPE``, same numeric values."""

    BUY = 0
    SELL = 1
    BUY_LIMIT = 2
    SELL_LIMIT = 3
    BUY_STOP = 4
    SELL_STOP = 5
    BUY_STOP_LIMIT = 6
    SELL_STOP_LIMIT = 7
    CLOSE_BY = 8


@unique
class WireDealType(IntEnum):
    """MQL5 ``ENUM_DEAL_TYPE``, same numeric values; ``NONE`` (255): the event has no deal."""

    BUY = 0
    SELL = 1
    BALANCE = 2
    CREDIT = 3
    CHARGE = 4
    CORRECTION = 5
    BONUS = 6
    COMMISSION = 7
    COMMISSION_DAILY = 8
    COMMISSION_MONTHLY = 9
    COMMISSION_AGENT_DAILY = 10
    COMMISSION_AGENT_MONTHLY = 11
    INTEREST = 12
    BUY_CANCELED = 13
    SELL_CANCELED = 14
    DIVIDEND = 15
    DIVIDEND_FRANKED = 16
    TAX = 17
    NONE = 255


@unique
class WireMarginMode(IntEnum):
    """How the account holds positions: MQL5 ``ENUM_ACCOUNT_MARGIN_MODE`` value + 1.

    Shifted by one so that 0, what an EA written before the field existed leaves in that
    padding byte, means "not sent" (``UNKNOWN``) rather than netting. An EA sends
    ``(uchar)(AccountInfoInteger(ACCOUNT_MARGIN_MODE) + 1)``.
    """

    UNKNOWN = 0
    NETTING = 1  # ACCOUNT_MARGIN_MODE_RETAIL_NETTING (0): one position per symbol
    EXCHANGE = 2  # ACCOUNT_MARGIN_MODE_EXCHANGE (1): netting, exchange margin rules
    HEDGING = 3  # ACCOUNT_MARGIN_MODE_RETAIL_HEDGING (2): several positions per symbol


@unique
class WireOrderState(IntEnum):
    """State of the order or position after an ORDER_EVENT.

    Not MQL5's ``ENUM_ORDER_STATE`` numbers (there CANCELED is 2, here OPEN is 2): an EA maps
    them with the table of ``docs/protocol.md`` section 5. PLACED -> PENDING; PARTIAL and
    FILLED -> OPEN, or CLOSED when the deal closed the position; CANCELED and EXPIRED ->
    CANCELLED; REJECTED -> REJECTED; STARTED and the REQUEST_* states are not sent.
    """

    PENDING = 1
    OPEN = 2
    CLOSED = 3
    CANCELLED = 4
    REJECTED = 5


@unique
class CommandCode(IntEnum):
    """What a COMMAND asks the EA to do."""

    SEND_SNAPSHOT = 1
    RESYNC_ORDERS = 2
    CLOSE_POSITION = 3
    CLOSE_ALL = 4
    PAUSE_TRADING = 5
    RESUME_TRADING = 6
    DISCONNECT = 7


@unique
class ErrorCode(IntEnum):
    """Why an ERROR packet was sent."""

    MALFORMED_PACKET = 1
    UNSUPPORTED_VERSION = 2
    UNKNOWN_MESSAGE_TYPE = 3
    CHECKSUM_MISMATCH = 4
    FIELD_RANGE = 5
    INVALID_SYMBOL = 6
    NOT_AUTHENTICATED = 7
    RATE_LIMITED = 8
    SIGNAL_EXPIRED = 9
    TRADE_REJECTED = 10
    INTERNAL = 11
