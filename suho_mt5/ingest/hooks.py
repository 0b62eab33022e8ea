"""What the ingest layer tells, and asks, a latest-state cache, without knowing one.

The ingest layer never imports :mod:`suho_mt5.cache` (the cache sits above it: it derives
its values from ingest's rows). Whoever runs the bridge or publishes signals passes an
object with these methods (:class:`suho_mt5.cache.CacheWriter` and
:class:`suho_mt5.cache.CacheReader` have them), or nothing, and then nothing changes.

The listener methods are synchronous and must not block: the cache writer only queues.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from suho_mt5.ingest.batch import Batch, WriteResult

__all__ = ["CommitListener", "PriceLike", "ReferenceSource", "SignalListener"]


class CommitListener(Protocol):
    """Told by the Data Bridge what it committed."""

    def after_commit(self, batch: Batch, result: WriteResult,
                     broker_of: Callable[[uuid.UUID], str | None]) -> None:
        """``batch`` was committed (``result`` says what the database did with it);
        ``broker_of`` names an account's broker (for its symbol mapping)."""

    def offline_marked(self, marked: Iterable[tuple[str, uuid.UUID, datetime]]) -> None:
        """``offline`` heartbeats were written: ``(tenant_id, account_id, time)``."""


class SignalListener(Protocol):
    """Told by :func:`suho_mt5.commands.signal.publish_signal` what became of a signal."""

    def signal_changed(self, tenant_id: str, account_id: uuid.UUID, signal_id: uuid.UUID,
                       time: datetime, status: str, details: Mapping[str, Any]) -> None:
        """The signal (of ``time``) is now ``status`` (``pending``, ``sent``); ``details``:
        symbol, action, volume, entry_price, stop_loss, take_profit."""


class PriceLike(Protocol):
    @property
    def bid(self) -> Decimal: ...

    @property
    def ask(self) -> Decimal: ...

    @property
    def time(self) -> datetime: ...


class ReferenceSource(Protocol):
    """Where :func:`~suho_mt5.commands.signal.publish_signal` reads an account's latest quote
    and the latest market reference price (the cache's read API)."""

    async def latest_quote(self, tenant_id: str, account_id: uuid.UUID,
                           symbol: str) -> PriceLike | None: ...

    async def market_reference(self, tenant_id: str, symbol: str) -> PriceLike | None: ...
