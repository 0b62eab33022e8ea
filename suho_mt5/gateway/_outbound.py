"""Backend -> EA: one durable JetStream consumer per channel (signal, command, config), each
message checked, renumbered and written, and acked on the bus when the EA ACKs it.

Every HELLO restarts each consumer after the later of its ack floor and what the EA says it
has handled, so nothing the EA acknowledged is sent again and nothing is skipped. A
message's stream sequence becomes the packet's ``sequence`` (:func:`restamp`), which is
what the EA's ACK names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg

from suho_mt5._subjects import outbound_subject
from suho_mt5.errors import ProtocolError
from suho_mt5.protocol import AckPacket, decode
from suho_mt5.protocol._crc import crc32

from ._bus import SessionBus
from ._common import CHANNEL_OF_TYPE, CHANNELS, SEQ, Closing, Ending, Peer
from ._config import GatewayConfig
from ._metrics import GatewayMetrics
from ._sender import InFlight, Sender

__all__ = ["Outbound", "restamp"]

log = logging.getLogger("suho_mt5.gateway")
_CRC = struct.Struct("<I")


def restamp(packet: bytes, sequence: int) -> bytes:
    """``packet`` with its header ``sequence`` replaced and its CRC recomputed."""
    body = packet[:8] + SEQ.pack(sequence) + packet[16:140]
    return body + _CRC.pack(crc32(body))


@dataclass(slots=True)
class _Channel:
    name: str
    stream: str
    subject: str
    durable: str
    #: highest sequence the EA reported (HELLO) or acknowledged: anything at or below it is
    #: acked on the bus without being sent again
    handled: int = 0
    inflight: dict[int, InFlight] = field(default_factory=dict)
    sid: Any = None


@dataclass(eq=False)
class Outbound:
    """The outbound channels of one session."""

    peer: Peer
    bus: SessionBus
    sender: Sender
    ending: Ending
    config: GatewayConfig
    metrics: GatewayMetrics
    _channels: dict[str, _Channel] = field(default_factory=dict, init=False)
    _background: set[asyncio.Future[None]] = field(default_factory=set, init=False)

    async def start(self, handled: dict[str, int]) -> None:
        """Start every channel; ``handled`` is what the HELLO says the EA handled."""
        for name in CHANNELS:
            await self._start_channel(name, handled[name])

    async def _start_channel(self, name: str, handled: int) -> None:
        cfg, peer = self.config, self.peer
        stream = cfg.signals_stream if name == "signal" else cfg.commands_stream
        channel = _Channel(name, stream, outbound_subject(name, peer.tenant_id, peer.account_id),
                           f"gw_{name}_{peer.account_id.hex}", handled)
        floor = await self.bus.ack_floor(stream, channel.durable)

        async def deliver(msg: Msg) -> None:
            inline = self._on_outbound(channel, msg)
            if inline is not None:
                closing = await self.sender.write_now(*inline)
                if closing is not None:
                    self.ending.fail(closing)

        inbox, channel.sid = await self.bus.subscribe(deliver)
        self._channels[name] = channel  # from here on, close() unsubscribes it
        await self.bus.start_consumer(stream, channel.durable, channel.subject, inbox,
                                      max(floor, handled) + 1)

    def _on_outbound(self, channel: _Channel, msg: Msg) -> tuple[bytes, InFlight] | None:
        if self.ending.ended:
            return None
        try:
            return self._deliver(channel, msg)
        except Closing as closing:  # raised in a NATS callback: hand it to the session
            self.ending.fail(closing)
            return None

    def _deliver(self, channel: _Channel, msg: Msg) -> tuple[bytes, InFlight] | None:
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
                packet.account_id == self.peer.account_bytes
        except ProtocolError as exc:
            ok, packet = False, None
            log.error("session %s: %s message %d is not a packet: %s", self.peer,
                      channel.name, seq, exc)
        if not ok:
            # Publisher bug: never send it; term it so it is not redelivered forever.
            log.error("session %s: %s message %d refused (wrong type or account)",
                      self.peer, channel.name, seq)
            self._spawn(msg.term())
            return None
        assert packet is not None
        published = meta.timestamp.timestamp()
        entry = InFlight(msg, packet.timestamp_us / 1e6, published, received,
                         is_signal=channel.name == "signal")
        channel.inflight[seq] = entry
        if self.sender.idle:
            # The fast path of a signal: written by this (the subscription's) task now,
            # rather than one event-loop turn later by the writer task. Order is kept: the
            # queue is empty, and every send writes its bytes before its first await.
            return restamp(data, seq), entry
        self.sender.enqueue(restamp(data, seq), [entry])
        return None

    def on_ack(self, ack: AckPacket) -> None:
        """The EA's ACK of an outbound packet: ack its message on the bus."""
        name = CHANNEL_OF_TYPE.get(ack.acked_type)
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

    def oldest_written(self) -> float:
        """When the oldest packet still waiting for its ACK was written (0: none waits)."""
        oldest = 0.0
        for channel in self._channels.values():
            for entry in channel.inflight.values():
                if entry.written and (not oldest or entry.written < oldest):
                    oldest = entry.written
                break  # the oldest is first: dicts keep delivery order
        return oldest

    async def close(self) -> None:
        for channel in self._channels.values():
            with contextlib.suppress(Exception):
                await channel.sid.unsubscribe()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a JetStream ack in the background (a publish: it does not wait for a reply)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
