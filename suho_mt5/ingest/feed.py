"""The reference feed: quotes on ``mt5.market.<SYMBOL>`` (stream ``MT5_MARKET``) into the
:class:`~suho_mt5.ingest.reconcile.ReferenceBook` that reconciles broker quotes.

An ordered consumer with no durable name starts from the last quote of each symbol, so a
restarted bridge reconciles at once.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from suho_mt5.errors import ReconcileError
from suho_mt5.ingest._stop import Stop
from suho_mt5.ingest.metrics import BridgeMetrics
from suho_mt5.ingest.reconcile import Reconciler, decode_reference

__all__ = ["reference_feed"]

log = logging.getLogger("suho_mt5.ingest")


async def reference_feed(js: Any, reconciler: Reconciler, metrics: BridgeMetrics,
                         stop: Stop) -> None:
    """Feed ``reconciler``'s book until ``stop``; without a market stream, say so and end."""
    from nats.js.api import DeliverPolicy

    async def on_quote(msg: Any) -> None:
        symbol = msg.subject.rsplit(".", 1)[-1]
        try:
            reconciler.book.add(decode_reference(symbol, msg.data))
            metrics.reference_quotes.inc()
        except ReconcileError as exc:
            log.warning("reference quote ignored: %s", exc)

    try:
        sub = await js.subscribe("mt5.market.>", cb=on_quote, ordered_consumer=True,
                                 deliver_policy=DeliverPolicy.LAST_PER_SUBJECT)
    except Exception as exc:
        log.warning("no reference quotes (stream MT5_MARKET missing?): %s", exc)
        return
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
