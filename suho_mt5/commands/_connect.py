"""Connecting from a command: fail fast with one line when a server is not there.

The services (bridge, gateway) reconnect forever once they run; a command that starts
against a server that is down must instead say so and exit. nats-py's ``connect`` with
``allow_reconnect=False`` waits forever for a server that refuses, so this asks for one
reconnect attempt and bounds the whole call.
"""

from __future__ import annotations

import asyncio
from typing import Any

from suho_mt5._nats import nats_servers
from suho_mt5.errors import ConfigError, StreamSetupError

__all__ = ["CONNECT_TIMEOUT", "check_database", "check_database_url", "check_nats",
           "connect_nats"]

#: Seconds for one connection attempt; the whole call is bounded by three of them.
CONNECT_TIMEOUT = 5.0


async def connect_nats(nats_url: str, what: str = "this command") -> Any:
    """A connected nats-py client, or a :class:`StreamSetupError` saying why not."""
    try:
        import nats
    except ImportError as exc:  # the `nats` extra
        raise ConfigError(f"{what} needs nats-py: pip install 'suho-mt5[nats]'") from exc

    async def quiet(_: Exception) -> None:  # the failure is raised; no log line besides
        return None

    try:
        return await asyncio.wait_for(
            nats.connect(servers=nats_servers(nats_url), connect_timeout=CONNECT_TIMEOUT,
                         max_reconnect_attempts=1, error_cb=quiet),
            3 * CONNECT_TIMEOUT)
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        raise StreamSetupError(f"cannot connect to NATS at {nats_url}: {reason}") from exc


def check_nats(nats_url: str, what: str = "this command") -> None:
    """Connect once and close: the check a long-running command makes before it starts."""

    async def probe() -> None:
        client = await connect_nats(nats_url, what)
        await client.close()

    asyncio.run(probe())


def check_database(url: str) -> None:
    """``SELECT 1`` at ``url``: a :class:`~suho_mt5.errors.ConfigError` for a URL that is
    not PostgreSQL, a :class:`~suho_mt5.errors.DatabaseError` for a server that is not
    there, before a long-running command starts."""
    from sqlalchemy import text

    from suho_mt5.commands.db import _connection

    with _connection(url) as conn:
        conn.execute(text("SELECT 1"))


def check_database_url(url: str) -> None:
    """A :class:`~suho_mt5.errors.ConfigError` for a URL that is not PostgreSQL, without
    connecting (for a service that rides out a database that is down)."""
    from suho_mt5.db import make_engine

    make_engine(url).dispose()
