"""The message records: one immutable, typed tuple per message type.

Each record is a ``typing.NamedTuple`` (tuple-fast to build straight from
``Struct.unpack_from``) whose ``Annotated`` hints *are* the wire layout: fields follow each
other in declaration order from byte 8 of the packet, after magic, version, type and flags.
Prices and money are raw fixed-point integers (exact); the layer that stores them scales them.
"""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar, NamedTuple, Protocol

from ._enums import (
    CommandCode,
    ErrorCode,
    MessageType,
    WireAction,
    WireDealType,
    WireMarginMode,
    WireOrderState,
    WireOrderType,
)
from ._kinds import (
    BASIS_POINTS,
    BOOL,
    CONFIG_KEY,
    CURRENCY,
    DECIMALS,
    DETAIL,
    ID64,
    INT31,
    INT64,
    LOTS,
    MILLISECONDS,
    MONEY,
    OPTIONAL_SYMBOL,
    PERCENT,
    POINTS,
    POSITIVE_INT31,
    PRICE,
    SEQUENCE,
    SYMBOL,
    TIMESTAMP,
    UINT32,
    UUID,
    VERSION_TEXT,
    enum_kind,
    micros_to_datetime,
)

__all__ = [
    "AccountSnapshotPacket",
    "AckPacket",
    "BrokerQuotePacket",
    "CommandPacket",
    "ConfigPacket",
    "ErrorPacket",
    "ExecutionReportPacket",
    "HeartbeatPacket",
    "OrderEventPacket",
    "Packet",
    "SignalPacket",
]

# The header fields every record starts with (packet bytes 8..39).
_SEQ = SEQUENCE("sender's sequence number: +1 per packet sent; kept across reconnects")
_TS = TIMESTAMP("UTC time of the event the packet describes")
_ACC = UUID("the account's id, as the backend issued it")


class _Header(Protocol):
    @property
    def sequence(self) -> int: ...
    @property
    def timestamp_us(self) -> int: ...
    @property
    def account_id(self) -> bytes: ...


class _MessageBase:
    """Behaviour shared by every record (mixed into the NamedTuple classes)."""

    __slots__ = ()
    MESSAGE_TYPE: ClassVar[MessageType]

    @property
    def time(self: _Header) -> datetime:
        """``timestamp_us`` as an aware UTC ``datetime`` (exact to the microsecond)."""
        return micros_to_datetime(self.timestamp_us)

    @property
    def account_uuid(self: _Header) -> uuid.UUID:
        """``account_id`` as a ``uuid.UUID``."""
        return uuid.UUID(bytes=self.account_id)



class _AccountSnapshot(NamedTuple):
    sequence: Annotated[int, _SEQ]
    timestamp_us: Annotated[int, _TS]
    account_id: Annotated[bytes, _ACC]
    balance: Annotated[int, MONEY("balance")]
    equity: Annotated[int, MONEY("equity")]
    margin: Annotated[int, MONEY("margin in use")]
    free_margin: Annotated[int, MONEY("free margin")]
    margin_level: Annotated[
        int, PERCENT("equity / margin x 100; 0 when no margin is used or equity < 0")
    ]
    leverage: Annotated[int, POSITIVE_INT31("account leverage, 1:N")]
    currency: Annotated[str, CURRENCY("account currency, e.g. USD")]
    margin_mode: Annotated[
        WireMarginMode,
        enum_kind(WireMarginMode)("ACCOUNT_MARGIN_MODE + 1; 0: not sent (an older EA)"),
    ] = WireMarginMode.UNKNOWN


class AccountSnapshotPacket(_AccountSnapshot, _MessageBase):
    """ACCOUNT_SNAPSHOT (EA -> backend): balance, equity and margin of the account.

    ``margin_mode`` (netting, exchange or hedging) tells how to read the account's positions;
    it sits in a byte that version 1.0 packets left as padding, so it defaults to ``UNKNOWN``.

    >>> from suho_mt5.protocol import decode, encode
    >>> snap = AccountSnapshotPacket(1, 1_732_492_800_000_000, bytes(16), balance=100_000_0000,
    ...     equity=100_250_5000, margin=2_000_0000, free_margin=98_250_5000,
    ...     margin_level=5_012_5250, leverage=100, currency="USD")
    >>> decode(encode(snap)) == snap
    True
    >>> snap.margin_mode  # not given: what an EA older than the field sends
    <WireMarginMode.UNKNOWN: 0>
    """

    __slots__ = ()
    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.ACCOUNT_SNAPSHOT


class _BrokerQuote(NamedTuple):
    sequence: Annotated[int, _SEQ]
    timestamp_us: Annotated[int, _TS]
    account_id: Annotated[bytes, _ACC]
    symbol: Annotated[str, SYMBOL("broker symbol, e.g. EURUSD")]
    bid: Annotated[int, PRICE("bid")]
    ask: Annotated[int, PRICE("ask")]
    last: Annotated[int, PRICE("last deal price; 0 when the broker sends none")]
    volume: Annotated[int, LOTS("tick volume (MqlTick.volume_real)")]
    spread_points: Annotated[int, POINTS("spread in points")]


class BrokerQuotePacket(_BrokerQuote, _MessageBase):
    """BROKER_QUOTE (EA -> backend): one tick of the broker's prices.

    >>> q = BrokerQuotePacket(7, 1_732_492_800_123_456, bytes(16), "EURUSD",
    ...     bid=109_531_000, ask=109_533_000, last=0, volume=150_000_000, spread_points=2)
    >>> q.bid, q.time.isoformat()
    (109531000, '2024-11-25T00:00:00.123456+00:00')
    """

    __slots__ = ()
    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.BROKER_QUOTE


class _Heartbeat(NamedTuple):
    sequence: Annotated[int, _SEQ]
    timestamp_us: Annotated[int, _TS]
    account_id: Annotated[bytes, _ACC]
    ea_version: Annotated[str, VERSION_TEXT("EA version, e.g. 1.0.0")]
    terminal_build: Annotated[int, POSITIVE_INT31("MT5 terminal build (TERMINAL_BUILD)")]
    ping_ms: Annotated[int, MILLISECONDS("last ping to the trade server")]
    terminal_connected: Annotated[bool, BOOL("terminal connected to the trade server")]
    trade_allowed: Annotated[bool, BOOL("trading allowed in terminal and for the EA")]


class HeartbeatPacket(_Heartbeat, _MessageBase):
    """HEARTBEAT (EA -> backend), sent every 30 s: the EA is alive, and can it trade?

    >>> hb = HeartbeatPacket(3, 0, bytes(16), "1.0.0", 4410, 12, True, False)
    >>> hb.terminal_connected, hb.trade_allowed
    (True, False)
    """

    __slots__ = ()
    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.HEARTBEAT


class _OrderEvent(NamedTuple):
    sequence: Annotated[int, _SEQ]
    timestamp_us: Annotated[int, _TS]
    account_id: Annotated[bytes, _ACC]
    ticket: Annotated[int, ID64("order ticket; a deal without order: the deal ticket")]
    position_id: Annotated[int, ID64("POSITION_IDENTIFIER; 0: no position")]
    symbol: Annotated[str, SYMBOL("symbol")]
    volume: Annotated[int, LOTS("volume")]
    price: Annotated[int, PRICE("order or deal price")]
    stop_loss: Annotated[int, PRICE("stop loss; 0: none")]
    take_profit: Annotated[int, PRICE("take profit; 0: none")]
    profit: Annotated[int, MONEY("profit")]
    commission: Annotated[int, MONEY("commission")]
    swap: Annotated[int, MONEY("swap")]
    magic_number: Annotated[int, UINT32("EA magic number (low 32 bits)")]
    order_type: Annotated[WireOrderType, enum_kind(WireOrderType)("order type")]
    deal_type: Annotated[
        WireDealType, enum_kind(WireDealType)("deal type; NONE: no deal")
    ]
    status: Annotated[
        WireOrderState, enum_kind(WireOrderState)("state after the event (not ENUM_ORDER_STATE)")
    ]


class OrderEventPacket(_OrderEvent, _MessageBase):
    """ORDER_EVENT (EA -> backend): an order, deal or position changed.

    >>> ev = OrderEventPacket(9, 0, bytes(16), 5001, 5001, "XAUUSD", 10_000_000,
    ...     265_012_000_000, 0, 0, 0, -7_0000, 0, 42,
    ...     WireOrderType.BUY, WireDealType.BUY, WireOrderState.OPEN)
    >>> ev.order_type.name, ev.status.name, ev.stop_loss, ev.commission
    ('BUY', 'OPEN', 0, -70000)
    """

    __slots__ = ()
    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.ORDER_EVENT


class _Signal(NamedTuple):
    sequence: Annotated[int, _SEQ]
    timestamp_us: Annotated[int, _TS]
    account_id: Annotated[bytes, _ACC]
    signal_id: Annotated[bytes, UUID("signal identifier")]
    symbol: Annotated[str, SYMBOL("broker symbol to trade")]
    entry_price: Annotated[int, PRICE("entry price; 0: at market")]
    stop_loss: Annotated[int, PRICE("stop loss; 0: none")]
    take_profit: Annotated[int, PRICE("take profit; 0: none")]
    volume: Annotated[int, LOTS("volume")]
    expires_at_us: Annotated[
        int, TIMESTAMP("signal expiry; 0: never")
    ]
    confidence_bp: Annotated[
        int, BASIS_POINTS("model confidence, 0..10000")
    ]
    action: Annotated[WireAction, enum_kind(WireAction)("what to do")]


class SignalPacket(_Signal, _MessageBase):
    """SIGNAL (backend -> EA): a trading signal, adjusted to the broker's prices.

    >>> import uuid
    >>> sig = SignalPacket(1, 0, bytes(16), uuid.UUID(int=1).bytes, "EURUSD", 109_530_000,
    ...     109_320_000, 109_820_000, 10_000_000, 0, 8_500, WireAction.BUY)
    >>> sig.action.name, sig.confidence_bp, str(sig.signal_uuid)
    ('BUY', 8500, '00000000-0000-0000-0000-000000000001')
    """

    __slots__ = ()
    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.SIGNAL

    @property
    def signal_uuid(self) -> uuid.UUID:
        """``signal_id`` as a ``uuid.UUID``."""
        return uuid.UUID(bytes=self.signal_id)


class _ExecutionReport(NamedTuple):
    sequence: Annotated[int, _SEQ]
    timestamp_us: Annotated[int, _TS]
    account_id: Annotated[bytes, _ACC]
    signal_id: Annotated[bytes, UUID("the signal executed")]
    ticket: Annotated[int, ID64("resulting order ticket; 0: no order was placed")]
    actual_entry_price: Annotated[int, PRICE("price actually obtained")]
    slippage: Annotated[int, PRICE("actual - requested price (signed)")]
    result_code: Annotated[int, INT31("MQL5 trade server return code (TRADE_RETCODE_*)")]


class ExecutionReportPacket(_ExecutionReport, _MessageBase):
    """EXECUTION_REPORT (EA -> backend): what became of a SIGNAL.

    >>> import uuid
    >>> rep = ExecutionReportPacket(2, 0, bytes(16), uuid.UUID(int=1).bytes, 777, 109_531_000,
    ...     1_000, 10009)
    >>> rep.slippage, rep.result_code
    (1000, 10009)
    """

    __slots__ = ()
    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.EXECUTION_REPORT

    @property
    def signal_uuid(self) -> uuid.UUID:
        """``signal_id`` as a ``uuid.UUID``."""
        return uuid.UUID(bytes=self.signal_id)


class _Command(NamedTuple):
    sequence: Annotated[int, _SEQ]
    timestamp_us: Annotated[int, _TS]
    account_id: Annotated[bytes, _ACC]
    ticket: Annotated[int, ID64("position ticket (CLOSE_POSITION); 0 otherwise")]
    volume: Annotated[int, LOTS("volume to close; 0: all")]
    symbol: Annotated[str, OPTIONAL_SYMBOL("restrict to this symbol; empty: all")]
    command: Annotated[CommandCode, enum_kind(CommandCode)("what to do")]


class CommandPacket(_Command, _MessageBase):
    """COMMAND (backend -> EA): an instruction that is not a signal.

    >>> CommandPacket(5, 0, bytes(16), 0, 0, "", CommandCode.SEND_SNAPSHOT).command.name
    'SEND_SNAPSHOT'
    """

    __slots__ = ()
    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.COMMAND


class _Config(NamedTuple):
    sequence: Annotated[int, _SEQ]
    timestamp_us: Annotated[int, _TS]
    account_id: Annotated[bytes, _ACC]
    key: Annotated[str, CONFIG_KEY("setting name, e.g. max_spread_pts")]
    value: Annotated[int, INT64("the value, scaled by decimals")]
    decimals: Annotated[int, DECIMALS("decimal places of value, 0..18")]


class ConfigPacket(_Config, _MessageBase):
    """CONFIG (backend -> EA): set one EA setting to ``value x 10^-decimals``.

    >>> ConfigPacket(6, 0, bytes(16), "risk_pct", 150, 2).decimal_value
    Decimal('1.50')
    """

    __slots__ = ()
    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.CONFIG

    @property
    def decimal_value(self) -> Decimal:
        """``value`` scaled by ``decimals``, exactly."""
        return Decimal(self.value).scaleb(-self.decimals)


class _Ack(NamedTuple):
    sequence: Annotated[int, _SEQ]
    timestamp_us: Annotated[int, _TS]
    account_id: Annotated[bytes, _ACC]
    acked_sequence: Annotated[int, SEQUENCE("sequence of the packet acknowledged")]
    acked_type: Annotated[MessageType, enum_kind(MessageType)("its message type")]


class AckPacket(_Ack, _MessageBase):
    """ACK (either way): the packet with ``acked_sequence`` was received and handled.

    >>> AckPacket(8, 0, bytes(16), 1, MessageType.SIGNAL).acked_type.name
    'SIGNAL'
    """

    __slots__ = ()
    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.ACK


class _ErrorMessage(NamedTuple):
    sequence: Annotated[int, _SEQ]
    timestamp_us: Annotated[int, _TS]
    account_id: Annotated[bytes, _ACC]
    ref_sequence: Annotated[int, SEQUENCE("sequence of the offending packet; 0: none")]
    code: Annotated[ErrorCode, enum_kind(ErrorCode, "H")("what went wrong")]
    detail: Annotated[str, DETAIL("human-readable detail, printable ASCII; may be empty")]


class ErrorPacket(_ErrorMessage, _MessageBase):
    """ERROR (either way): a packet could not be handled.

    >>> ErrorPacket(9, 0, bytes(16), 4, ErrorCode.SIGNAL_EXPIRED, "expired 3 s ago").code
    <ErrorCode.SIGNAL_EXPIRED: 9>
    """

    __slots__ = ()
    MESSAGE_TYPE: ClassVar[MessageType] = MessageType.ERROR


Packet = (
    AccountSnapshotPacket
    | BrokerQuotePacket
    | HeartbeatPacket
    | OrderEventPacket
    | SignalPacket
    | ExecutionReportPacket
    | CommandPacket
    | ConfigPacket
    | AckPacket
    | ErrorPacket
)
"""Any decoded packet."""

RECORD_CLASSES: tuple[type[Packet], ...] = (
    AccountSnapshotPacket,
    BrokerQuotePacket,
    HeartbeatPacket,
    OrderEventPacket,
    ExecutionReportPacket,
    SignalPacket,
    CommandPacket,
    ConfigPacket,
    AckPacket,
    ErrorPacket,
)
