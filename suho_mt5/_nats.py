"""NATS server URLs: one URL, or a comma-separated list of the nodes of one cluster.

Every command and service takes ``--nats-url`` (``$SUHO_NATS_URL``) as one string; a list
names several nodes of a NATS cluster, and the client (nats-py's ``servers=``) tries them
in turn at the start and reconnects to another when the one it uses goes away. The server
also advertises the cluster's other nodes to the client, so one URL is enough once
connected; the list matters for starting while a node is down.

>>> nats_servers("nats://10.0.0.1:4222, nats://10.0.0.2:4222")
['nats://10.0.0.1:4222', 'nats://10.0.0.2:4222']
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from suho_mt5.errors import ConfigError

__all__ = ["NATS_SCHEMES", "cluster_size", "default_replicas", "nats_servers"]

#: The schemes nats-py connects with.
NATS_SCHEMES = ("nats", "tls", "ws", "wss")


def nats_servers(url: str) -> list[str]:
    """The server URLs of ``url`` (one URL or a comma-separated list), each checked.

    A :class:`~suho_mt5.errors.ConfigError` names the first part that is not a NATS URL
    (``nats://host:port``, or ``tls://``, ``ws://``, ``wss://``).
    """
    parts = [part.strip() for part in url.split(",")]
    if not any(parts):
        raise ConfigError("no NATS URL given (for example nats://127.0.0.1:4222)")
    for part in parts:
        parsed = urlsplit(part)
        try:
            port_ok = parsed.port is None or parsed.port > 0
        except ValueError:
            port_ok = False
        if parsed.scheme not in NATS_SCHEMES or not parsed.hostname or not port_ok:
            where = f" in {url!r}" if len(parts) > 1 else ""
            raise ConfigError(
                f"not a NATS URL: {part!r}{where} (for example nats://127.0.0.1:4222, or "
                "several nodes of a cluster separated by commas)"
            )
    return parts


def cluster_size(nc: Any) -> int | None:
    """How many nodes the NATS server that ``nc`` (a connected nats-py client) belongs to
    tells its clients about: 1 outside a cluster; in a cluster, the client URLs it
    advertises (its own and those of the peers it is routed to); None when it advertises
    none (``no_advertise``), so the size is unknown.

    A node that is down while this is asked is not counted: declare the streams while the
    cluster is whole, or say ``--replicas``.
    """
    info = getattr(nc, "_server_info", None) or {}  # nats-py keeps the server's INFO there
    if not info.get("cluster"):
        return 1
    urls = {str(u) for u in info.get("connect_urls") or ()}
    # INFO updates after the connect (a route that came up later) reach the server pool
    for server in getattr(nc, "discovered_servers", None) or ():
        urls.add(str(server.uri.netloc))
    return len(urls) or None


def default_replicas(nodes: int | None) -> int:
    """3 copies of each stream on a cluster of at least 3 nodes, else 1.

    >>> default_replicas(1), default_replicas(3), default_replicas(5), default_replicas(None)
    (1, 3, 3, 1)
    """
    return 3 if nodes is not None and nodes >= 3 else 1
