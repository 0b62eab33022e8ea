"""EA -> backend: read, decode and check every packet, publish the good ones in frames, and
acknowledge what the bus stored.

Every packet is decoded (CRC, ranges), must travel EA -> backend, carry the session's account
and a sequence above every one accepted before. Good packets are cut into runs of one kind,
in arrival order, and published as frames one after the other, so what is on the bus is
always a prefix of what the EA sent (the highest stored sequence is then exactly what
WELCOME reports after a reconnect); a cumulative ACK follows each batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from suho_mt5._subjects import account_subject, message_id
from suho_mt5.errors import ProtocolError
from suho_mt5.protocol import (
    MAGIC,
    PACKET_SIZE,
    AckPacket,
    CloseCode,
    ErrorCode,
    MessageType,
    decode,
    encode,
    now_us,
)

from ._bus import SessionBus, refusal_reason
from ._common import (
    EA_CLOSED,
    EA_TYPES,
    ERROR_CODES,
    INBOUND_KINDS,
    SEQ,
    Closing,
    Ending,
    Peer,
    error_packet,
)
from ._config import GatewayConfig
from ._metrics import GatewayMetrics
from ._sender import Sender
from ._transport import Transport

__all__ = ["ACK_EVERY_S", "Inbound"]

log = logging.getLogger("suho_mt5.gateway")

#: cumulative ACKs of EA packets are sent at most this often (the latest sequence each time)
ACK_EVERY_S = 0.05


class Inbound:
    """The inbound path of one session: :meth:`read` and :meth:`publish` are its tasks."""

    def __init__(self, peer: Peer, transport: Transport, bus: SessionBus, sender: Sender,
                 on_ack: Callable[[AckPacket], None], ending: Ending, config: GatewayConfig,
                 metrics: GatewayMetrics, *, last_stored: int, last_read: float,
                 buffered: bytes = b"") -> None:
        self.peer = peer
        self.transport = transport
        self.bus = bus
        self.sender = sender
        self.on_ack = on_ack
        self.ending = ending
        self.config = config
        self.metrics = metrics
        self.last_sequence = last_stored  # highest EA sequence accepted
        self.last_stored = last_stored  # highest EA sequence on the bus
        self.last_stored_type = MessageType.HEARTBEAT
        #: ``time.monotonic()`` of the last bytes read (the idle deadline reads it)
        self.last_read = last_read
        self._buffer = buffered
        self._bad_packets = 0
        self._pending: list[tuple[int, MessageType, bytes]] = []
        self._pending_ready = asyncio.Event()
        self._pending_space = asyncio.Event()
        self._pending_space.set()
        self._ack_timer: asyncio.TimerHandle | None = None
        self._last_ack = 0.0

    # -- reading --------------------------------------------------------------------------

    async def read(self) -> None:
        if self._buffer:
            self._consume()
        while True:
            await self._pending_space.wait()
            data = await self.transport.recv()
            if not data:
                raise Closing(CloseCode.NORMAL, EA_CLOSED)
            self.last_read = time.monotonic()
            self._buffer += data
            self._consume()

    def _consume(self) -> None:
        """Decode every whole packet in the buffer; resynchronise on the magic after one
        whose framing cannot be trusted (bad magic, CRC, version or type)."""
        buf = self._buffer
        i, end = 0, len(buf)
        while end - i >= PACKET_SIZE:
            if not buf.startswith(MAGIC, i):
                nxt = buf.find(MAGIC, i + 1)
                nxt = nxt if nxt >= 0 else max(i + 1, end - len(MAGIC) + 1)
                self._reject(0, ErrorCode.MALFORMED_PACKET, f"{nxt - i} bytes without a packet")
                i = nxt
                continue
            raw = buf[i:i + PACKET_SIZE]
            try:
                packet = decode(raw)
            except ProtocolError as exc:
                code = ERROR_CODES.get(type(exc).__name__, ErrorCode.MALFORMED_PACKET)
                # Only a field error comes after the CRC check: then the 144 bytes are a
                # whole packet whose header may be quoted and skipped. Flags (offset 6) are
                # checked before the CRC, so those bytes may hold the start of the next one.
                framed = code in (ErrorCode.FIELD_RANGE, ErrorCode.INVALID_SYMBOL) \
                    and exc.offset >= 8
                ref = SEQ.unpack_from(raw, 8)[0] if framed else 0
                self._reject(ref, code, exc.reason)
                if framed:
                    i += PACKET_SIZE
                else:
                    nxt = buf.find(MAGIC, i + 1)
                    i = nxt if nxt >= 0 else end
                continue
            i += PACKET_SIZE
            self._accept(packet, raw)
        self._buffer = buf[i:]

    def _accept(self, packet: Any, raw: bytes) -> None:
        mtype: MessageType = packet.MESSAGE_TYPE
        seq: int = packet.sequence
        if mtype not in EA_TYPES:
            self._reject(seq, ErrorCode.WRONG_DIRECTION,
                         f"{mtype.name} travels backend -> EA only")
            return
        if mtype is MessageType.HELLO:
            self._reject(seq, ErrorCode.MALFORMED_PACKET, "HELLO after the session opened")
            return
        if packet.account_id != self.peer.account_bytes:
            self._reject(seq, ErrorCode.NOT_AUTHENTICATED,
                         "account_id is not the connection's account")
            return
        if seq <= self.last_sequence:
            self._reject(seq, ErrorCode.SEQUENCE_REPLAYED,
                         f"sequence {seq} <= {self.last_sequence} already accepted")
            return
        if seq > self.last_sequence + 1 and self.last_sequence:
            self.metrics.sequence_gaps.inc(seq - self.last_sequence - 1)
        self.last_sequence = seq
        self.metrics.packets_in.labels(mtype.name).inc()
        if mtype is MessageType.ACK:
            self.on_ack(packet)
        elif mtype is MessageType.ERROR:
            log.info("session %s: EA reports %s for sequence %d: %s", self.peer,
                     packet.code.name, packet.ref_sequence, packet.detail)
        else:
            if mtype is MessageType.HEARTBEAT:
                self.peer.observe_skew(packet.timestamp_us)
            self._pending.append((seq, mtype, raw))
            self._pending_ready.set()
            if len(self._pending) >= self.config.max_inbound_pending:
                self._pending_space.clear()  # stop reading until the bus has caught up

    def _reject(self, ref_sequence: int, code: ErrorCode, detail: str) -> None:
        self._bad_packets += 1
        self.metrics.packets_rejected.labels(code.name).inc()
        log.warning("session %s: packet %d refused (%s): %s", self.peer, ref_sequence,
                    code.name, detail)
        self.sender.enqueue(error_packet(self.peer.account_bytes, ref_sequence, code, detail))
        if self._bad_packets > self.config.max_bad_packets:
            raise Closing(CloseCode.PROTOCOL_VIOLATION,
                          f"more than {self.config.max_bad_packets} bad packets", ref_sequence)

    # -- publishing -------------------------------------------------------------------------

    async def publish(self) -> None:
        max_frame = self.config.max_frame_packets
        while True:
            await self._pending_ready.wait()
            batch, self._pending = self._pending, []
            self._pending_ready.clear()
            self._pending_space.set()
            start = 0
            while start < len(batch):
                mtype = batch[start][1]
                stop = start + 1
                while stop < len(batch) and batch[stop][1] is mtype and stop - start < max_frame:
                    stop += 1
                run = batch[start:stop]
                await self._publish(INBOUND_KINDS[mtype], run[0][0],
                                    b"".join(raw for _, _, raw in run))
                self.last_stored, self.last_stored_type = run[-1][0], mtype
                self.metrics.packets_published.inc(len(run))
                start = stop
            self._acknowledge()

    async def _publish(self, kind: str, first_sequence: int, frame: bytes) -> None:
        peer = self.peer
        subject = account_subject(peer.tenant_id, peer.account_id, kind)
        msg_id = message_id(peer.account_id, first_sequence)
        reason = ""
        for attempt in range(3):
            try:
                await self.bus.publish(subject, frame, msg_id)
                self.metrics.frames_published.inc()
                return
            except Exception as exc:
                reason = refusal_reason(exc, self.config.publish_timeout_s)
                log.warning("session %s: publish to %s failed (attempt %d): %s (%s)",
                            peer, subject, attempt + 1, reason, exc)
                await asyncio.sleep(0.2 * (attempt + 1))
        # The EA learns why (a full store says "insufficient resources", a hung one "no
        # PubAck"); nothing from the first refused sequence on was acknowledged: it resends.
        raise Closing(CloseCode.BACKEND_UNAVAILABLE, f"cannot publish to the bus: {reason}",
                      first_sequence)

    # -- acknowledging ----------------------------------------------------------------------

    def ack_packet(self) -> bytes:
        """The cumulative ACK: the highest sequence stored on the bus."""
        return encode(AckPacket(0, now_us(), self.peer.account_bytes, self.last_stored,
                                self.last_stored_type))

    def _acknowledge(self) -> None:
        """Send the cumulative ACK, at most one per ``ACK_EVERY_S``: an EA streaming a quote
        at a time would otherwise get an ACK per quote, doubling the packets both ways."""
        if self._ack_timer is not None:
            return  # one is due already; it will carry the latest sequence
        wait = self._last_ack + ACK_EVERY_S - time.monotonic()
        if wait > 0:
            self._ack_timer = asyncio.get_running_loop().call_later(wait, self._send_ack)
        else:
            self._send_ack()

    def _send_ack(self) -> None:
        self._ack_timer = None
        self._last_ack = time.monotonic()
        try:
            self.sender.enqueue(self.ack_packet())
        except Closing as closing:  # from a timer callback: hand it to the session
            self.ending.fail(closing)

    def stop(self) -> None:
        if self._ack_timer is not None:
            self._ack_timer.cancel()
