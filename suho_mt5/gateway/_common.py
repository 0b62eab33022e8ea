"""What the parts of a session share: the message types each way, how a session ends, and
the packets any part may send (ERROR, and anything sent at once, bypassing the queue)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from suho_mt5.protocol import CloseCode, ErrorCode, ErrorPacket, MessageType, encode, now_us

from ._metrics import GatewayMetrics
from ._transport import Transport

__all__ = [
    "CHANNELS",
    "CHANNEL_OF_TYPE",
    "EA_CLOSED",
    "EA_TYPES",
    "ERROR_CODES",
    "INBOUND_KINDS",
    "SEQ",
    "Closing",
    "Ending",
    "Peer",
    "cancel_and_wait",
    "detail",
    "error_packet",
    "send_now",
]

#: EA -> backend message types that go to the bus, and their subject kind.
INBOUND_KINDS: dict[MessageType, str] = {
    MessageType.ACCOUNT_SNAPSHOT: "snapshot",
    MessageType.BROKER_QUOTE: "quote",
    MessageType.HEARTBEAT: "heartbeat",
    MessageType.ORDER_EVENT: "order",
    MessageType.EXECUTION_REPORT: "execution",
}
#: backend -> EA channels: message type carried, and which stream setting holds it.
CHANNELS: dict[str, MessageType] = {
    "signal": MessageType.SIGNAL,
    "command": MessageType.COMMAND,
    "config": MessageType.CONFIG,
}
CHANNEL_OF_TYPE = {mtype: name for name, mtype in CHANNELS.items()}
#: What an EA may send once the session is open (HELLO is refused there, by name).
EA_TYPES = frozenset(INBOUND_KINDS) | {MessageType.ACK, MessageType.ERROR, MessageType.HELLO}

#: The ERROR code of each decoding failure.
ERROR_CODES: dict[str, ErrorCode] = {
    "TruncatedPacketError": ErrorCode.MALFORMED_PACKET,
    "BadMagicError": ErrorCode.MALFORMED_PACKET,
    "UnsupportedVersionError": ErrorCode.UNSUPPORTED_VERSION,
    "UnknownMessageTypeError": ErrorCode.UNKNOWN_MESSAGE_TYPE,
    "ChecksumMismatchError": ErrorCode.CHECKSUM_MISMATCH,
    "FieldRangeError": ErrorCode.FIELD_RANGE,
    "InvalidSymbolError": ErrorCode.INVALID_SYMBOL,
}
SEQ = struct.Struct("<Q")
#: The close detail when the EA itself closed: no GOODBYE is sent then.
EA_CLOSED = "the EA closed the connection"


class Closing(Exception):
    """Raised inside a session's tasks to end it with a close code."""

    def __init__(self, code: CloseCode, detail: str, ref_sequence: int = 0) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.ref_sequence = ref_sequence

    def fresh(self) -> Closing:
        """The same reason, without the traceback, cause and context this one was raised
        with: those hold the frames that hold the session, a reference cycle only the
        garbage collector frees."""
        return Closing(self.code, self.detail, self.ref_sequence)


@dataclass(frozen=True, slots=True)
class Peer:
    """The authenticated account at the other end, and the gauge of its clock."""

    account_id: uuid.UUID
    tenant_id: str
    metrics: GatewayMetrics
    #: ``account_id.bytes``, computed once: every packet's ``account_id`` is compared to it
    account_bytes: bytes = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "account_bytes", self.account_id.bytes)

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.account_id}"

    def observe_skew(self, timestamp_us: int) -> None:
        """Arrival time minus the EA's clock (HELLO and HEARTBEAT carry it)."""
        skew = time.time() - timestamp_us / 1e6
        metrics = self.metrics
        metrics.clock_skew_seen.observe(abs(skew))
        if metrics.account_labels:
            metrics.clock_skew.labels(self.tenant_id, str(self.account_id)).set(skew)

    def forget_skew(self) -> None:
        if self.metrics.account_labels:
            with contextlib.suppress(Exception):
                self.metrics.clock_skew.remove(self.tenant_id, str(self.account_id))


def detail(text: str) -> str:
    """ERROR and GOODBYE detail: printable ASCII, at most 64 bytes."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:64]


def error_packet(account_bytes: bytes, ref_sequence: int, code: ErrorCode, text: str) -> bytes:
    return encode(ErrorPacket(0, now_us(), account_bytes, ref_sequence, code, detail(text)))


async def send_now(transport: Transport, data: bytes, timeout: float = 2.0) -> None:
    """Write ``data`` ahead of any queue, giving up quietly after ``timeout`` (a refusal, a
    GOODBYE: the connection is closed next whatever happens)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(transport.send(data), timeout)


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]], again_s: float = 1.0) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again every
    ``again_s`` any that has not.

    Once is not always enough: nats-py swallows a cancellation that lands in a publish's
    flush (``Client._flush_pending`` catches ``CancelledError``), so a task cancelled there
    carries on, and may then wait forever (the 100,000-stream fuzz hung on four session
    publishers so, and the gateway could not stop). Their exceptions are retrieved here."""
    every = list(tasks)
    pending = {task for task in every if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=again_s)
    for task in every:
        if not task.cancelled():
            task.exception()


class Ending:
    """Why a session ends: the first reason given wins, from any task or callback."""

    def __init__(self) -> None:
        self.reason: Closing | None = None
        self.event = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self.reason is not None

    def fail(self, closing: Closing) -> None:
        if self.reason is None:
            # A copy, without the raised one's traceback and cause: those hold the frames
            # that hold the session, a reference cycle only the garbage collector frees. A
            # flood of refused connections made ~40,000 such objects a second, and each
            # collection of them stalled every session for 30-70 ms.
            self.reason = closing.fresh()
        self.event.set()
