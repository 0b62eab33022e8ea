"""The bridge's stop signal, shared by its workers and side loops."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["Stop"]


class Stop:
    """Set once (SIGTERM, :meth:`~suho_mt5.ingest.bridge.Bridge.stop`); loops sleep on it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()

    async def sleep(self, seconds: float) -> bool:
        """Sleep, but wake up at once when stopped; whether it is stopped."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
        return self._event.is_set()
