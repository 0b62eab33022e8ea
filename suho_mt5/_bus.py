"""One NATS connection for a command that runs once (stream setup, monitor, signal send).

``nats.connect`` with ``allow_reconnect=False`` (or ``max_reconnect_attempts=0``) retries a
refused first connection forever (nats-py 2.x): a command pointed at a server that is down
would hang. One reconnect attempt makes it give up after ``timeout`` with ``NoServersError``,
and the error callback keeps nats-py from logging what the caller raises anyway.
"""

from __future__ import annotations

from typing import Any

__all__ = ["connect_once"]


async def _quiet(_: Exception) -> None:
    return None


async def connect_once(url: str, timeout: float = 5.0) -> Any:
    """A connected ``nats.aio.client.Client``; raises what ``nats.connect`` raises, promptly."""
    import nats

    return await nats.connect(servers=[url], connect_timeout=timeout,
                              max_reconnect_attempts=1, reconnect_time_wait=0,
                              error_cb=_quiet)
