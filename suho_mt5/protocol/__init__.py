"""The Suho Binary Protocol: fixed 144-byte packets between MT5 Expert Advisors and backend.

The specification is ``docs/protocol.md``; golden vectors are in ``tests/vectors/``.

>>> from suho_mt5.protocol import BrokerQuotePacket, decode, encode
>>> quote = BrokerQuotePacket(sequence=1, timestamp_us=1_732_492_800_000_000, account_id=bytes(16),
...     symbol="EURUSD", bid=109_531_000, ask=109_533_000, last=0, volume=0, spread_points=2)
>>> packet = encode(quote)
>>> len(packet)
144
>>> decode(packet) == quote, decode(packet).bid
(True, 109531000)
"""

from ._codec import Buffer, decode, encode, encode_frame, now_us
from ._constants import (
    CONFIDENCE_SCALE,
    CRC_RESIDUE,
    HEADER_SIZE,
    MAGIC,
    MAX_TIMESTAMP_US,
    MONEY_SCALE,
    PACKET_SIZE,
    PAYLOAD_SIZE,
    PRICE_SCALE,
    PROTOCOL_VERSION,
)
from ._crc import CRC_BACKEND
from ._enums import (
    CloseCode,
    CommandCode,
    ErrorCode,
    HeaderFlag,
    MessageType,
    SessionResult,
    WireAction,
    WireDealType,
    WireMarginMode,
    WireOrderState,
    WireOrderType,
)
from ._framer import Skip, StreamDecoder, decode_frame, iter_frame
from ._layout import LAYOUT_BY_TYPE
from ._messages import (
    AccountSnapshotPacket,
    AckPacket,
    BrokerQuotePacket,
    CommandPacket,
    ConfigPacket,
    ErrorPacket,
    ExecutionReportPacket,
    GoodbyePacket,
    HeartbeatPacket,
    HelloPacket,
    OrderEventPacket,
    Packet,
    SignalPacket,
    WelcomePacket,
)

RECORD_TYPES: dict[MessageType, type[Packet]] = {
    t: lay.record for t, lay in LAYOUT_BY_TYPE.items()
}
"""The record class of each message type."""

__all__ = [
    "CONFIDENCE_SCALE",
    "CRC_BACKEND",
    "CRC_RESIDUE",
    "HEADER_SIZE",
    "MAGIC",
    "MAX_TIMESTAMP_US",
    "MONEY_SCALE",
    "PACKET_SIZE",
    "PAYLOAD_SIZE",
    "PRICE_SCALE",
    "PROTOCOL_VERSION",
    "RECORD_TYPES",
    "AccountSnapshotPacket",
    "AckPacket",
    "BrokerQuotePacket",
    "Buffer",
    "CloseCode",
    "CommandCode",
    "CommandPacket",
    "ConfigPacket",
    "ErrorCode",
    "ErrorPacket",
    "ExecutionReportPacket",
    "GoodbyePacket",
    "HeaderFlag",
    "HeartbeatPacket",
    "HelloPacket",
    "MessageType",
    "OrderEventPacket",
    "Packet",
    "SessionResult",
    "SignalPacket",
    "Skip",
    "StreamDecoder",
    "WelcomePacket",
    "WireAction",
    "WireDealType",
    "WireMarginMode",
    "WireOrderState",
    "WireOrderType",
    "decode",
    "decode_frame",
    "encode",
    "encode_frame",
    "iter_frame",
    "now_us",
]
