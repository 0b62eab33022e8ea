"""What a session asks of NATS JetStream, and nothing more: store a frame, read the highest
sequence stored, and (re)start a durable push consumer for one backend -> EA channel.

The gateway builds one :class:`SessionBus` over its two connections and hands it to every
session, so that a session never reaches into the gateway for a client.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError

from suho_mt5._subjects import account_subject
from suho_mt5.errors import BusUnavailableError
from suho_mt5.protocol import PACKET_SIZE

from ._common import INBOUND_KINDS, SEQ
from ._config import GatewayConfig

__all__ = ["SessionBus", "refusal_reason"]


def refusal_reason(exc: BaseException, timeout_s: float) -> str:
    """Why a publish failed, short enough for a GOODBYE's detail and free of secrets: a
    JetStream refusal's own description (``insufficient resources`` when the store is full or
    over its limits, ``jetstream not enabled`` ...), or what the client saw, never the
    exception's text (a connection error may quote the server's URL with its credentials).
    ``timeout_s``: how long the publish waited."""
    if isinstance(exc, APIError):
        text = (exc.description or "refused").strip()
        return f"{text} ({exc.err_code})" if exc.err_code else text
    if isinstance(exc, NoRespondersError):
        return "no JetStream responders"
    if isinstance(exc, (NatsTimeoutError, TimeoutError)):
        return f"no PubAck in {timeout_s:g} s"
    return type(exc).__name__


class SessionBus:
    """JetStream for sessions: ``js`` carries the EAs' frames and their PubAcks, ``nc_out``
    the outbound consumers' deliveries (and their acks), apart so that a signal is never
    queued behind hundreds of publishes."""

    def __init__(self, js: JetStreamContext, nc_out: NatsClient, config: GatewayConfig) -> None:
        self.js = js
        self.nc_out = nc_out
        self.config = config

    async def publish(self, subject: str, frame: bytes, message_id: str) -> None:
        """Store ``frame`` in the accounts stream (one attempt; the caller retries and
        names the failure with :func:`refusal_reason`)."""
        await self.js.publish(subject, frame, timeout=self.config.publish_timeout_s,
                              stream=self.config.accounts_stream,
                              headers={"Nats-Msg-Id": message_id})

    async def last_stored(self, tenant_id: str, account: uuid.UUID) -> int:
        """The highest sequence of ``account`` stored on the bus (0: none): the last packet
        of the last message of each of its subjects."""
        best = 0
        for kind in INBOUND_KINDS.values():
            subject = account_subject(tenant_id, account, kind)
            try:
                msg = await self.js.get_last_msg(self.config.accounts_stream, subject)
            except NotFoundError:
                continue
            except Exception as exc:
                raise BusUnavailableError(f"cannot read {subject}: {exc}") from exc
            data = msg.data or b""
            if len(data) >= PACKET_SIZE:
                best = max(best, SEQ.unpack_from(data, len(data) - PACKET_SIZE + 8)[0])
        return best

    async def ack_floor(self, stream: str, durable: str) -> int:
        """The stream sequence ``durable`` had acknowledged up to, and delete it (0: there
        was none); the session recreates it after that floor."""
        try:
            info = await self.js.consumer_info(stream, durable)
            floor = max(info.ack_floor.stream_seq if info.ack_floor else 0,
                        (info.config.opt_start_seq or 1) - 1)
            await self.js.delete_consumer(stream, durable)
        except NotFoundError:
            return 0
        except Exception as exc:
            raise BusUnavailableError(f"consumer {durable}: {exc}") from exc
        return floor

    async def subscribe(self, deliver: Callable[[Msg], Awaitable[None]]) -> tuple[str, Any]:
        """A new inbox on the outbound connection and its subscription."""
        inbox = self.nc_out.new_inbox()
        sub = await self.nc_out.subscribe(inbox, cb=deliver,
                                          pending_msgs_limit=self.config.max_in_flight * 4)
        return inbox, sub

    async def start_consumer(self, stream: str, durable: str, subject: str, inbox: str,
                             start: int) -> None:
        """A durable push consumer of ``subject`` delivering to ``inbox`` from stream
        sequence ``start`` on, with explicit acks and the gateway's in-flight bound."""
        cfg = self.config
        try:
            await self.js.add_consumer(stream, ConsumerConfig(
                durable_name=durable,
                deliver_subject=inbox,
                filter_subject=subject,
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=start,
                ack_policy=AckPolicy.EXPLICIT,
                # JetStream redelivers only after the gateway's own ACK deadline has closed
                # the connection: a live session never sees a message twice.
                ack_wait=cfg.ack_timeout_s * 2 + 5,
                max_ack_pending=cfg.max_in_flight,
                max_deliver=-1,
            ))
        except Exception as exc:
            raise BusUnavailableError(f"consumer {durable}: {exc}") from exc
