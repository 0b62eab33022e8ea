"""One EA connection, whatever its transport: handshake, inbound, outbound, liveness.

The life of a session (``docs/gateway.md`` and ``docs/protocol.md``, "Session"):

1. the first packet must be a HELLO within ``hello_timeout_s``; the gateway checks the
   source address's failed logins, then the key (:mod:`._auth`), and answers WELCOME;
2. inbound: every packet is decoded (CRC, ranges), must travel EA -> backend, carry the
   session's account and a sequence above every one accepted before; good packets are cut
   into runs of one kind, in arrival order, and published as frames one after the other, so
   what is on the bus is always a prefix of what the EA sent (the highest stored sequence is
   then exactly what WELCOME reports after a reconnect); a cumulative ACK follows each batch;
3. outbound: one durable JetStream consumer per channel (signal, command, config), restarted
   on every HELLO after the later of its ack floor and what the EA says it has handled; each
   message's stream sequence becomes the packet's ``sequence``; the EA's ACK acks it;
4. liveness: idle, ACK and write deadlines; WebSocket ping/pong; a keepalive ACK when
   nothing else was sent (TCP keepalive is set on the socket by the server).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from suho_mt5._subjects import account_subject, message_id, outbound_subject
from suho_mt5.errors import AuthenticationError, BusUnavailableError, ProtocolError, SuhoError
from suho_mt5.protocol import (
    MAGIC,
    PACKET_SIZE,
    AckPacket,
    CloseCode,
    ErrorCode,
    ErrorPacket,
    GoodbyePacket,
    HelloPacket,
    MessageType,
    SessionResult,
    WelcomePacket,
    decode,
    encode,
)
from suho_mt5.protocol._crc import crc32

from ._transport import Transport

if TYPE_CHECKING:
    from ._server import Gateway

__all__ = ["CHANNELS", "INBOUND_KINDS", "Session"]

log = logging.getLogger("suho_mt5.gateway")

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
_CHANNEL_OF_TYPE = {mtype: name for name, mtype in CHANNELS.items()}
_EA_TYPES = frozenset(INBOUND_KINDS) | {MessageType.ACK, MessageType.ERROR, MessageType.HELLO}

_ERROR_CODES: dict[str, ErrorCode] = {
    "TruncatedPacketError": ErrorCode.MALFORMED_PACKET,
    "BadMagicError": ErrorCode.MALFORMED_PACKET,
    "UnsupportedVersionError": ErrorCode.UNSUPPORTED_VERSION,
    "UnknownMessageTypeError": ErrorCode.UNKNOWN_MESSAGE_TYPE,
    "ChecksumMismatchError": ErrorCode.CHECKSUM_MISMATCH,
    "FieldRangeError": ErrorCode.FIELD_RANGE,
    "InvalidSymbolError": ErrorCode.INVALID_SYMBOL,
}
_SEQ = struct.Struct("<Q")
_EA_CLOSED = "the EA closed the connection"
#: cumulative ACKs of EA packets are sent at most this often (the latest sequence each time)
ACK_EVERY_S = 0.05
_CRC = struct.Struct("<I")


def _now_us() -> int:
    return time.time_ns() // 1000


def _detail(text: str) -> str:
    """ERROR and GOODBYE detail: printable ASCII, at most 64 bytes."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:64]


def restamp(packet: bytes, sequence: int) -> bytes:
    """``packet`` with its header ``sequence`` replaced and its CRC recomputed."""
    body = packet[:8] + _SEQ.pack(sequence) + packet[16:140]
    return body + _CRC.pack(crc32(body))


@dataclass(slots=True)
class _InFlight:
    """A backend -> EA message between its delivery to the gateway and the EA's ACK."""

    msg: Msg
    created: float
    published: float
    received: float
    written: float = 0.0
    is_signal: bool = False


@dataclass(slots=True)
class _Channel:
    name: str
    stream: str
    subject: str
    durable: str
    #: highest sequence the EA reported (HELLO) or acknowledged: anything at or below it is
    #: acked on the bus without being sent again
    handled: int = 0
    inflight: dict[int, _InFlight] = field(default_factory=dict)
    sid: Any = None


class _Closing(Exception):
    """Raised inside the session's tasks to end it with a close code."""

    def __init__(self, code: CloseCode, detail: str, ref_sequence: int = 0) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.ref_sequence = ref_sequence


class Session:
    """One connection; :meth:`run` returns when it is over (it never raises)."""

    def __init__(self, gateway: Gateway, transport: Transport) -> None:
        self.gw = gateway
        self.cfg = gateway.config
        self.metrics = gateway.metrics
        self.transport = transport
        self.account: uuid.UUID | None = None
        self.account_bytes = bytes(16)
        self.tenant = ""
        self.last_sequence = 0  # highest EA sequence accepted in this session
        self.last_stored = 0  # highest EA sequence on the bus
        self.last_stored_type = MessageType.HEARTBEAT
        self._buffer = b""
        self._bad_packets = 0
        self._pending: list[tuple[int, MessageType, bytes]] = []
        self._pending_ready = asyncio.Event()
        self._pending_space = asyncio.Event()
        self._pending_space.set()
        self._sendq: deque[tuple[bytes, list[_InFlight] | None]] = deque()
        self._send_ready = asyncio.Event()
        self._last_write = time.monotonic()
        self._last_read = time.monotonic()
        self._channels: dict[str, _Channel] = {}
        self._close: _Closing | None = None
        self._closed = asyncio.Event()
        self._done = asyncio.Event()
        self._authenticated = False
        self._background: set[asyncio.Future[None]] = set()
        self._ack_timer: asyncio.TimerHandle | None = None
        self._inline_busy = False
        self._last_ack = 0.0

    # -- entry point ----------------------------------------------------------------------

    async def run(self) -> None:
        self.metrics.connections.labels(self.transport.name).inc()
        try:
            await self._run()
        except _Closing as closing:
            self._close = self._close or closing
        except Exception as exc:  # the session must end cleanly whatever happened
            log.exception("session %s: unexpected error", self._who())
            self._close = self._close or _Closing(CloseCode.BACKEND_UNAVAILABLE, str(exc))
        finally:
            await self._finish()

    async def close(self, code: CloseCode, detail: str) -> None:
        """Ask the session to end with ``code`` (another task: superseded, shutdown)."""
        if self._close is None:
            self._close = _Closing(code, detail)
        self._closed.set()
        await self._done.wait()

    # -- handshake --------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            hello = await asyncio.wait_for(self._read_hello(), self.cfg.hello_timeout_s)
        except TimeoutError:
            raise _Closing(CloseCode.AUTH_TIMEOUT, "no HELLO in time") from None
        if hello is None:
            raise _Closing(CloseCode.NORMAL, _EA_CLOSED)
        if not await self._authenticate(hello):
            return
        await self._start_session(hello)
        tasks = [
            asyncio.create_task(self._reader(), name="reader"),
            asyncio.create_task(self._publisher(), name="publisher"),
            asyncio.create_task(self._writer(), name="writer"),
            asyncio.create_task(self._watchdog(), name="watchdog"),
            asyncio.create_task(self._pinger(), name="pinger"),
            asyncio.create_task(self._closed.wait(), name="closed"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if isinstance(exc, _Closing):
                    self._close = self._close or exc
                elif exc is not None:
                    raise exc
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read_hello(self) -> HelloPacket | None:
        while len(self._buffer) < PACKET_SIZE:
            data = await self.transport.recv()
            if not data:
                return None
            self._buffer += data
        raw, self._buffer = self._buffer[:PACKET_SIZE], self._buffer[PACKET_SIZE:]
        try:
            packet = decode(raw)
        except ProtocolError as exc:
            await self._send_now(self._error(0, _ERROR_CODES.get(type(exc).__name__,
                                 ErrorCode.MALFORMED_PACKET), exc.reason))
            raise _Closing(CloseCode.PROTOCOL_VIOLATION, "the first packet is not a HELLO") \
                from None
        if not isinstance(packet, HelloPacket):
            await self._send_now(self._error(packet.sequence, ErrorCode.NOT_AUTHENTICATED,
                                             "send HELLO first"))
            raise _Closing(CloseCode.PROTOCOL_VIOLATION, "the first packet is not a HELLO")
        return packet

    async def _authenticate(self, hello: HelloPacket) -> bool:
        peer = self.transport.peer
        account = uuid.UUID(bytes=hello.account_id)
        limiter = self.gw.limiter
        if limiter.blocked(peer):
            retry_ms = int(limiter.retry_after_s(peer) * 1000) + 1
            self.metrics.auth_failures.labels("rate_limited").inc()
            log.warning("HELLO from %s for %s refused: too many failed logins", peer, account)
            await self._refuse(hello, SessionResult.RATE_LIMITED, retry_ms,
                               CloseCode.RATE_LIMITED, "too many failed logins")
            return False
        try:
            identity = await self.gw.authenticator.authenticate(account, hello.api_key)
        except AuthenticationError:
            limiter.failed(peer)
            self.metrics.auth_failures.labels("refused").inc()
            log.warning("HELLO from %s for %s refused: invalid account id or API key",
                        peer, account)
            await self._refuse(hello, SessionResult.REFUSED, 1000, CloseCode.AUTH_FAILED,
                               "invalid account id or API key")
            return False
        except SuhoError as exc:
            self.metrics.auth_failures.labels("unavailable").inc()
            log.error("HELLO from %s for %s: cannot check the key: %s", peer, account, exc)
            await self._refuse(hello, SessionResult.UNAVAILABLE, 5000,
                               CloseCode.BACKEND_UNAVAILABLE, "cannot check the key now")
            return False
        self.account = identity.account_id
        self.account_bytes = identity.account_id.bytes
        self.tenant = identity.tenant_id
        self._observe_skew(hello.timestamp_us)
        return True

    async def _refuse(self, hello: HelloPacket, result: SessionResult, retry_ms: int,
                      code: CloseCode, detail: str) -> None:
        welcome = WelcomePacket(0, _now_us(), hello.account_id, 0, 0, retry_ms, result)
        await self._send_now(encode(welcome))
        raise _Closing(code, detail)

    async def _start_session(self, hello: HelloPacket) -> None:
        assert self.account is not None
        await self.gw.register(self)  # closes an older session of the account first
        self._authenticated = True
        try:
            self.last_stored = await self._last_on_bus()
            self.last_sequence = self.last_stored
            # WELCOME goes first in the send queue: the consumers below start delivering
            # at once, and their packets must follow it.
            welcome = WelcomePacket(0, _now_us(), self.account_bytes, self.last_stored,
                                    int(self.cfg.heartbeat_interval_s * 1000), 0,
                                    SessionResult.ACCEPTED)
            self._enqueue(encode(welcome))
            handled = {"signal": hello.last_signal_sequence,
                       "command": hello.last_command_sequence,
                       "config": hello.last_config_sequence}
            for name in CHANNELS:
                await self._start_channel(name, handled[name])
        except BusUnavailableError as exc:
            raise _Closing(CloseCode.BACKEND_UNAVAILABLE, str(exc)) from exc
        self.metrics.connected.labels(self.transport.name).inc()
        log.info("session %s opened from %s over %s; last stored sequence %d", self._who(),
                 self.transport.peer, self.transport.name, self.last_stored)

    async def _last_on_bus(self) -> int:
        """The highest sequence of this account stored on the bus (0: none)."""
        assert self.account is not None
        best = 0
        for kind in INBOUND_KINDS.values():
            subject = account_subject(self.tenant, self.account, kind)
            try:
                msg = await self.gw.js.get_last_msg(self.cfg.accounts_stream, subject)
            except NotFoundError:
                continue
            except Exception as exc:
                raise BusUnavailableError(f"cannot read {subject}: {exc}") from exc
            data = msg.data or b""
            if len(data) >= PACKET_SIZE:
                best = max(best, _SEQ.unpack_from(data, len(data) - PACKET_SIZE + 8)[0])
        return best

    # -- outbound: JetStream -> EA -----------------------------------------------------------

    async def _start_channel(self, name: str, handled: int) -> None:
        assert self.account is not None
        stream = self.cfg.signals_stream if name == "signal" else self.cfg.commands_stream
        channel = _Channel(name, stream, outbound_subject(name, self.tenant, self.account),
                           f"gw_{name}_{self.account.hex}", handled)
        jsm = self.gw.js
        floor = 0
        try:
            info = await jsm.consumer_info(stream, channel.durable)
            floor = max(info.ack_floor.stream_seq if info.ack_floor else 0,
                        (info.config.opt_start_seq or 1) - 1)
            await jsm.delete_consumer(stream, channel.durable)
        except NotFoundError:
            pass
        except Exception as exc:
            raise BusUnavailableError(f"consumer {channel.durable}: {exc}") from exc
        start = max(floor, handled) + 1
        inbox = self.gw.nc_out.new_inbox()

        async def deliver(msg: Msg) -> None:
            inline = self._on_outbound(channel, msg)
            if inline is not None:
                await self._write_inline(*inline)

        sub = await self.gw.nc_out.subscribe(inbox, cb=deliver,
                                         pending_msgs_limit=self.cfg.max_in_flight * 4)
        channel.sid = sub
        self._channels[name] = channel  # from here on, _finish unsubscribes it
        try:
            await jsm.add_consumer(stream, ConsumerConfig(
                durable_name=channel.durable,
                deliver_subject=inbox,
                filter_subject=channel.subject,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start,
                ack_policy=AckPolicy.EXPLICIT,
                # JetStream redelivers only after the gateway's own ACK deadline has closed
                # the connection: a live session never sees a message twice.
                ack_wait=self.cfg.ack_timeout_s * 2 + 5,
                max_ack_pending=self.cfg.max_in_flight,
                max_deliver=-1,
            ))
        except Exception as exc:
            raise BusUnavailableError(f"consumer {channel.durable}: {exc}") from exc

    def _on_outbound(self, channel: _Channel, msg: Msg) -> tuple[bytes, _InFlight] | None:
        if self._close is not None:
            return None
        try:
            return self._deliver(channel, msg)
        except _Closing as closing:  # raised in a NATS callback: hand it to the session
            self._fail(closing)
            return None

    def _deliver(self, channel: _Channel, msg: Msg) -> tuple[bytes, _InFlight] | None:
        """Check a backend -> EA message and queue its packet; or return it, to be written
        at once by the caller, when nothing else waits to be written."""
        received = time.time()
        meta = msg.metadata
        seq = meta.sequence.stream
        if seq in channel.inflight:
            return None  # a redelivery of what the EA has not acknowledged yet
        if seq <= channel.handled:
            self._spawn(msg.ack())  # the EA handled it before (ACK lost)
            return None
        data = msg.data
        try:
            packet = decode(data)
            ok = packet.MESSAGE_TYPE is CHANNELS[channel.name] and \
                packet.account_id == self.account_bytes
        except ProtocolError as exc:
            ok, packet = False, None
            log.error("session %s: %s message %d is not a packet: %s", self._who(),
                      channel.name, seq, exc)
        if not ok:
            # Publisher bug: never send it; term it so it is not redelivered forever.
            log.error("session %s: %s message %d refused (wrong type or account)",
                      self._who(), channel.name, seq)
            self._spawn(msg.term())
            return None
        assert packet is not None
        published = meta.timestamp.timestamp()
        entry = _InFlight(msg, packet.timestamp_us / 1e6, published, received,
                          is_signal=channel.name == "signal")
        channel.inflight[seq] = entry
        if not self._sendq and not self._inline_busy:
            # The fast path of a signal: written by this (the subscription's) task now,
            # rather than one event-loop turn later by the writer task. Order is kept: the
            # queue is empty, and every send writes its bytes before its first await.
            return restamp(data, seq), entry
        self._enqueue(restamp(data, seq), [entry])
        return None

    async def _write_inline(self, data: bytes, entry: _InFlight) -> None:
        self._inline_busy = True
        entry.written = time.time()
        try:
            async with asyncio.timeout(self.cfg.ack_timeout_s):
                await self.transport.send(data)
        except TimeoutError:
            self._fail(_Closing(CloseCode.SLOW_CONSUMER, "socket write timed out"))
        except Exception:
            self._fail(_Closing(CloseCode.NORMAL, "connection lost"))
        else:
            self._last_write = time.monotonic()
            self.metrics.packets_out.labels(MessageType(data[5]).name).inc()
        finally:
            self._inline_busy = False

    def _fail(self, closing: _Closing) -> None:
        """End the session from a callback or another task (the first reason wins)."""
        self._close = self._close or closing
        self._closed.set()

    def _on_ack(self, ack: AckPacket) -> None:
        name = _CHANNEL_OF_TYPE.get(ack.acked_type)
        if name is None or name not in self._channels:
            return  # an ACK of a gateway packet (unnumbered) or of nothing: ignored
        channel = self._channels[name]
        channel.handled = max(channel.handled, ack.acked_sequence)
        entry = channel.inflight.pop(ack.acked_sequence, None)
        if entry is None:
            return
        self._spawn(entry.msg.ack())
        self.metrics.outbound_acked.labels(name).inc()
        if entry.is_signal:
            now = time.time()
            hops = self.metrics.signal_hops
            hops.labels("created_to_published").observe(max(0.0, entry.published - entry.created))
            hops.labels("published_to_received").observe(
                max(0.0, entry.received - entry.published))
            hops.labels("received_to_written").observe(max(0.0, entry.written - entry.received))
            hops.labels("written_to_acked").observe(max(0.0, now - entry.written))
            hops.labels("created_to_acked").observe(max(0.0, now - entry.created))

    # -- inbound: EA -> JetStream ------------------------------------------------------------

    async def _reader(self) -> None:
        if self._buffer:
            self._consume()
        while True:
            await self._pending_space.wait()
            data = await self.transport.recv()
            if not data:
                raise _Closing(CloseCode.NORMAL, _EA_CLOSED)
            self._last_read = time.monotonic()
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
                code = _ERROR_CODES.get(type(exc).__name__, ErrorCode.MALFORMED_PACKET)
                # Only a field error comes after the CRC check: then the 144 bytes are a
                # whole packet whose header may be quoted and skipped. Flags (offset 6) are
                # checked before the CRC, so those bytes may hold the start of the next one.
                framed = code in (ErrorCode.FIELD_RANGE, ErrorCode.INVALID_SYMBOL) \
                    and exc.offset >= 8
                ref = _SEQ.unpack_from(raw, 8)[0] if framed else 0
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
        if mtype not in _EA_TYPES:
            self._reject(seq, ErrorCode.WRONG_DIRECTION,
                         f"{mtype.name} travels backend -> EA only")
            return
        if mtype is MessageType.HELLO:
            self._reject(seq, ErrorCode.MALFORMED_PACKET, "HELLO after the session opened")
            return
        if packet.account_id != self.account_bytes:
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
            self._on_ack(packet)
        elif mtype is MessageType.ERROR:
            log.info("session %s: EA reports %s for sequence %d: %s", self._who(),
                     packet.code.name, packet.ref_sequence, packet.detail)
        else:
            if mtype is MessageType.HEARTBEAT:
                self._observe_skew(packet.timestamp_us)
            self._pending.append((seq, mtype, raw))
            self._pending_ready.set()
            if len(self._pending) >= self.cfg.max_inbound_pending:
                self._pending_space.clear()  # stop reading until the bus has caught up

    def _reject(self, ref_sequence: int, code: ErrorCode, detail: str) -> None:
        self._bad_packets += 1
        self.metrics.packets_rejected.labels(code.name).inc()
        log.warning("session %s: packet %d refused (%s): %s", self._who(), ref_sequence,
                    code.name, detail)
        self._enqueue(self._error(ref_sequence, code, detail))
        if self._bad_packets > self.cfg.max_bad_packets:
            raise _Closing(CloseCode.PROTOCOL_VIOLATION,
                           f"more than {self.cfg.max_bad_packets} bad packets", ref_sequence)

    async def _publisher(self) -> None:
        assert self.account is not None
        while True:
            await self._pending_ready.wait()
            batch, self._pending = self._pending, []
            self._pending_ready.clear()
            self._pending_space.set()
            start = 0
            while start < len(batch):
                mtype = batch[start][1]
                stop = start + 1
                while (stop < len(batch) and batch[stop][1] is mtype
                       and stop - start < self.cfg.max_frame_packets):
                    stop += 1
                run = batch[start:stop]
                await self._publish(INBOUND_KINDS[mtype], run[0][0],
                                    b"".join(raw for _, _, raw in run))
                self.last_stored, self.last_stored_type = run[-1][0], mtype
                self.metrics.packets_published.inc(len(run))
                start = stop
            self._acknowledge()

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
        ack = AckPacket(0, _now_us(), self.account_bytes, self.last_stored,
                        self.last_stored_type)
        try:
            self._enqueue(encode(ack))
        except _Closing as closing:  # from a timer callback: hand it to the session
            self._fail(closing)

    async def _publish(self, kind: str, first_sequence: int, frame: bytes) -> None:
        assert self.account is not None
        subject = account_subject(self.tenant, self.account, kind)
        headers = {"Nats-Msg-Id": message_id(self.account, first_sequence)}
        for attempt in range(3):
            try:
                await self.gw.js.publish(subject, frame, timeout=5.0,
                                         stream=self.cfg.accounts_stream, headers=headers)
                self.metrics.frames_published.inc()
                return
            except Exception as exc:
                log.warning("session %s: publish to %s failed (attempt %d): %s",
                            self._who(), subject, attempt + 1, exc)
                await asyncio.sleep(0.2 * (attempt + 1))
        raise _Closing(CloseCode.BACKEND_UNAVAILABLE, "cannot publish to the bus", first_sequence)

    # -- writing and liveness ------------------------------------------------------------------

    def _error(self, ref_sequence: int, code: ErrorCode, detail: str) -> bytes:
        return encode(ErrorPacket(0, _now_us(), self.account_bytes, ref_sequence, code,
                                  _detail(detail)))

    def _enqueue(self, data: bytes, entries: list[_InFlight] | None = None) -> None:
        if len(self._sendq) >= self.cfg.send_queue_packets:
            raise _Closing(CloseCode.SLOW_CONSUMER, "send queue full")
        self._sendq.append((data, entries))
        self._send_ready.set()

    async def _send_now(self, data: bytes, timeout: float = 2.0) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.transport.send(data), timeout)

    async def _writer(self) -> None:
        out = self.metrics.packets_out
        while True:
            await self._send_ready.wait()
            self._send_ready.clear()
            while self._sendq:
                items = list(self._sendq)
                self._sendq.clear()
                data = b"".join(d for d, _ in items)
                # Stamped before the await: the bytes reach the socket at once, and the EA's
                # ACK may be handled before this task runs again.
                now = time.time()
                for _, entries in items:
                    for entry in entries or ():
                        entry.written = now
                try:
                    # asyncio.timeout, not wait_for: no task per write, and the bytes are
                    # written before the first await (the fast path in _deliver relies on it)
                    async with asyncio.timeout(self.cfg.ack_timeout_s):
                        await self.transport.send(data)
                except TimeoutError:
                    raise _Closing(CloseCode.SLOW_CONSUMER, "socket write timed out") from None
                except Exception:
                    raise _Closing(CloseCode.NORMAL, "connection lost") from None
                self._last_write = time.monotonic()
                for packet, _ in items:
                    out.labels(MessageType(packet[5]).name).inc()

    async def _watchdog(self) -> None:
        cfg = self.cfg
        tick = min(1.0, cfg.heartbeat_interval_s / 4, cfg.ack_timeout_s / 4)
        # A random phase: after a restart hundreds of sessions open within a second, and
        # their checks would otherwise all run in the same event-loop turn, every tick,
        # holding up whatever signal arrives then.
        await asyncio.sleep(tick * random.random())
        while True:
            await asyncio.sleep(tick)
            mono, now = time.monotonic(), time.time()
            if mono - self._last_read > cfg.idle_timeout_s:
                raise _Closing(CloseCode.IDLE_TIMEOUT,
                               f"nothing received for {cfg.idle_timeout_s:g} s")
            for channel in self._channels.values():
                for entry in channel.inflight.values():
                    if entry.written and now - entry.written > cfg.ack_timeout_s:
                        raise _Closing(CloseCode.SLOW_CONSUMER,
                                       f"no ACK for {cfg.ack_timeout_s:g} s")
                    break  # the oldest is first: dicts keep delivery order
            if mono - self._last_write > cfg.heartbeat_interval_s and not self._sendq:
                ack = AckPacket(0, _now_us(), self.account_bytes, self.last_stored,
                                self.last_stored_type)
                self._enqueue(encode(ack))
                self._last_write = mono

    async def _pinger(self) -> None:
        """The transport's own liveness check (WebSocket ping/pong) ends the session like
        the idle deadline does."""
        reason = await self.transport.unresponsive()
        raise _Closing(CloseCode.IDLE_TIMEOUT, reason)

    def _observe_skew(self, timestamp_us: int) -> None:
        if self.account is not None:
            self.metrics.clock_skew.labels(self.tenant, str(self.account)).set(
                time.time() - timestamp_us / 1e6)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a JetStream ack in the background (a publish: it does not wait for a reply)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _who(self) -> str:
        return f"{self.tenant}/{self.account}" if self.account else f"<{self.transport.peer}>"

    # -- the end ------------------------------------------------------------------------------

    async def _finish(self) -> None:
        closing = self._close or _Closing(CloseCode.NORMAL, "")
        code = closing.code
        self.metrics.closes.labels(str(int(code))).inc()
        if code is CloseCode.SLOW_CONSUMER:
            self.metrics.slow_clients.inc()
        if code not in (CloseCode.NORMAL, CloseCode.GOING_AWAY):
            log.warning("session %s closed: %d %s: %s", self._who(), code, code.name,
                        closing.detail)
        else:
            log.info("session %s closed: %s", self._who(), closing.detail)
        if self._ack_timer is not None:
            self._ack_timer.cancel()
        for channel in self._channels.values():
            with contextlib.suppress(Exception):
                await channel.sid.unsubscribe()
        if self.account is not None:
            with contextlib.suppress(Exception):
                self.metrics.clock_skew.remove(self.tenant, str(self.account))
        if self._authenticated:
            self.metrics.connected.labels(self.transport.name).dec()
            self.gw.unregister(self)
        if closing.detail != _EA_CLOSED:
            # A slow consumer's buffers may be full: its GOODBYE gets one second, then the
            # connection is dropped (abort below) so that it cannot hold gateway memory.
            patience = 1.0 if code is CloseCode.SLOW_CONSUMER else 2.0
            goodbye = GoodbyePacket(0, _now_us(), self.account_bytes, closing.ref_sequence,
                                    code, _detail(closing.detail))
            await self._send_now(encode(goodbye), patience)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.transport.close(int(code), closing.detail),
                                       patience)
        with contextlib.suppress(Exception):
            self.transport.abort()
        self._done.set()

