"""Messages the server gave up on (MaxDeliver reached) become ``max_deliver`` dead letters.

The server stops delivering such a message and announces it once on an advisory subject;
one bridge of the queue group takes it, reads the message from the stream and writes the
dead letter (idempotent by stream position). A message that reached MaxDeliver while no
bridge was running is not recorded (``docs/ingest.md``, "Dead letters").
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from suho_mt5._subjects import SubjectError, parse_account_subject
from suho_mt5.ingest._stop import Stop
from suho_mt5.ingest.batch import Batch, DeadLetterRecord, MessageContext
from suho_mt5.ingest.metrics import BridgeMetrics, count_result
from suho_mt5.ingest.streams import ConsumerSpec
from suho_mt5.ingest.writer import Writer

__all__ = ["max_deliver_advisories"]

log = logging.getLogger("suho_mt5.ingest")


async def max_deliver_advisories(nc: Any, js: Any, spec: ConsumerSpec, url: str,
                                 metrics: BridgeMetrics, stop: Stop) -> None:
    """Dead-letter what the consumer ``spec`` gives up on, until ``stop``."""
    subject = f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{spec.stream}.{spec.durable}"
    writer = Writer(url)

    async def on_advisory(msg: Any) -> None:
        try:
            event = json.loads(msg.data)
            seq, deliveries = int(event["stream_seq"]), int(event.get("deliveries", 0))
            raw = await js.get_msg(spec.stream, seq)
            ctx = MessageContext(spec.stream, seq, raw.subject, bytes(raw.data or b""),
                                 deliveries)
            with contextlib.suppress(SubjectError):
                tenant_id, account, _ = parse_account_subject(raw.subject)
                ctx = MessageContext(spec.stream, seq, raw.subject, ctx.data, deliveries,
                                     tenant_id, account)
            record = DeadLetterRecord.of(
                ctx, "max_deliver", f"delivered {deliveries} times without an ack "
                f"(MaxDeliver {spec.max_deliver}); the server will not deliver it again")
            count_result(metrics, await writer.write(Batch(dead=[record])))
        except Exception as exc:
            log.warning("max-deliver advisory not recorded: %s", exc)

    sub = await nc.subscribe(subject, queue=f"{spec.durable}-advisories", cb=on_advisory)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        await writer.close()
