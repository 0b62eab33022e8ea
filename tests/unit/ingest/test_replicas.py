"""How ``streams setup`` picks the replica count: the cluster's size from the server's INFO,
the default, and the refusals (servers: tests/integration/ingest/test_streams_cluster.py)."""

from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import urlparse

import pytest

from suho_mt5.errors import StreamSetupError
from suho_mt5.ingest.streams import (
    Declared,
    _check_replicas,
    cluster_size,
    default_replicas,
)


def _client(info: dict[str, object], discovered: tuple[str, ...] = ()) -> SimpleNamespace:
    """What a connected nats-py client holds: the server's INFO and the servers it learnt."""
    return SimpleNamespace(_server_info=info, discovered_servers=[
        SimpleNamespace(uri=urlparse(f"nats://{d}")) for d in discovered])


@pytest.mark.parametrize(("client", "size"), [
    (_client({"server_id": "x"}), 1),  # no cluster
    (_client({"cluster": "c", "connect_urls": ["a:1", "b:1", "c:1"]}), 3),
    (_client({"cluster": "c", "connect_urls": ["a:1", "a:1", "b:1"]}), 2),
    # a route that came up after the connect: the server pool learnt it from a later INFO
    (_client({"cluster": "c", "connect_urls": ["a:1", "b:1"]}, ("b:1", "c:1")), 3),
    (_client({"cluster": "c"}), None),  # no_advertise: unknown
    (None, 1),
])
def test_the_cluster_size_from_the_servers_info(client: object, size: int | None) -> None:
    assert cluster_size(client) == size


def test_the_default_is_three_copies_on_three_nodes_or_more() -> None:
    assert [default_replicas(n) for n in (None, 1, 2, 3, 4, 5)] == [1, 1, 1, 3, 3, 3]


@pytest.mark.parametrize(("replicas", "nodes", "message"), [
    (3, 1, "--replicas 3: the server is a single NATS server, not a cluster"),
    (4, 3, "--replicas 4: the server is a NATS cluster of 3 nodes, so it cannot keep 4"),
    (0, 3, "JetStream keeps 1 to 5 copies"),
    (6, None, "JetStream keeps 1 to 5 copies"),
])
def test_more_copies_than_nodes_are_refused(replicas: int, nodes: int | None,
                                            message: str) -> None:
    with pytest.raises(StreamSetupError, match=message):
        _check_replicas(replicas, nodes)


def test_an_unknown_size_and_enough_nodes_pass() -> None:
    _check_replicas(5, None)  # the server decides
    _check_replicas(3, 3)


def test_a_declared_object_reads_as_one_line() -> None:
    assert str(Declared("stream", "MT5_ACCOUNTS", "created", 3)) == \
        "stream MT5_ACCOUNTS: created (3 replicas)"
    assert str(Declared("consumer", "MT5_ACCOUNTS/suho-bridge", "ready", 1)) == \
        "consumer MT5_ACCOUNTS/suho-bridge: ready (1 replica)"
