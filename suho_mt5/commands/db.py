"""Database commands: server information (migrations follow in this module)."""

from __future__ import annotations

from suho_mt5.db import ServerInfo, inspect_server, make_engine

__all__ = ["server_info"]


def server_info(url: str) -> ServerInfo:
    """What the server at ``url`` offers (see :func:`suho_mt5.db.inspect_server`)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return inspect_server(conn)
    finally:
        engine.dispose()
