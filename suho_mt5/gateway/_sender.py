"""Writing to one EA: a bounded send queue drained by one task, and the fast path that
writes a lone signal at once from the task that received it.

Every write puts its bytes on the socket before its first ``await`` (``asyncio.timeout``, not
``wait_for``: no task per write), so order holds between the queue and the fast path.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from nats.aio.msg import Msg

from suho_mt5.protocol import CloseCode, MessageType

from ._common import Closing
from ._config import GatewayConfig
from ._metrics import GatewayMetrics
from ._transport import Transport

__all__ = ["InFlight", "Sender"]


@dataclass(slots=True)
class InFlight:
    """A backend -> EA message between its delivery to the gateway and the EA's ACK."""

    msg: Msg
    created: float
    published: float
    received: float
    written: float = 0.0
    is_signal: bool = False


class Sender:
    """The send side of one connection; :meth:`run` is the writer task."""

    def __init__(self, transport: Transport, config: GatewayConfig,
                 metrics: GatewayMetrics) -> None:
        self.transport = transport
        self.config = config
        self.metrics = metrics
        self._queue: deque[tuple[bytes, list[InFlight] | None]] = deque()
        self._ready = asyncio.Event()
        self._inline_busy = False
        #: ``time.monotonic()`` of the last completed write (the keepalive deadline reads it)
        self.last_write = time.monotonic()

    @property
    def queued(self) -> bool:
        return bool(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing queued and no fast-path write under way: a packet may go at once."""
        return not self._queue and not self._inline_busy

    def enqueue(self, data: bytes, entries: list[InFlight] | None = None) -> None:
        """Queue ``data`` (with the in-flight entries whose write time it stamps); a full
        queue ends the session with ``SLOW_CONSUMER``."""
        if len(self._queue) >= self.config.send_queue_packets:
            raise Closing(CloseCode.SLOW_CONSUMER, "send queue full")
        self._queue.append((data, entries))
        self._ready.set()

    async def run(self) -> None:
        out = self.metrics.packets_out
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._queue:
                items = list(self._queue)
                self._queue.clear()
                data = b"".join(d for d, _ in items)
                # Stamped before the await: the bytes reach the socket at once, and the EA's
                # ACK may be handled before this task runs again.
                now = time.time()
                for _, entries in items:
                    for entry in entries or ():
                        entry.written = now
                try:
                    async with asyncio.timeout(self.config.ack_timeout_s):
                        await self.transport.send(data)
                except TimeoutError:
                    raise Closing(CloseCode.SLOW_CONSUMER, "socket write timed out") from None
                except Exception:
                    raise Closing(CloseCode.NORMAL, "connection lost") from None
                self.last_write = time.monotonic()
                for packet, _ in items:
                    out.labels(MessageType(packet[5]).name).inc()

    async def write_now(self, data: bytes, entry: InFlight) -> Closing | None:
        """The fast path: write ``data`` from the calling task (only when :attr:`idle`);
        what ends the session is returned, not raised (the caller is a NATS callback)."""
        self._inline_busy = True
        entry.written = time.time()
        try:
            async with asyncio.timeout(self.config.ack_timeout_s):
                await self.transport.send(data)
        except TimeoutError:
            return Closing(CloseCode.SLOW_CONSUMER, "socket write timed out")
        except Exception:
            return Closing(CloseCode.NORMAL, "connection lost")
        else:
            self.last_write = time.monotonic()
            self.metrics.packets_out.labels(MessageType(data[5]).name).inc()
        finally:
            self._inline_busy = False
        return None
