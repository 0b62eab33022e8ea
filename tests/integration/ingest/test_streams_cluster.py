"""``suho-mt5 streams setup --replicas N`` on one server and on a 3-node JetStream cluster,
and the comma-separated list of NATS URLs (docs/operations.md, "NATS cluster")."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import nats
from click.testing import CliRunner, Result
from nats.errors import TimeoutError as NatsTimeout
from nats.js.errors import ServiceUnavailableError

from suho_mt5._nats import nats_servers
from suho_mt5.cli import main
from suho_mt5.ingest import DEFAULT_CONTRACT
from tests.support.servers import NatsCluster, NatsServer, ServerError, wait_until


def _setup(url: str, *extra: str) -> Result:
    return CliRunner().invoke(main, ["streams", "setup", "--nats-url", url, "--json", *extra])


def _copies(url: str) -> dict[str, tuple[int, int]]:
    """``{stream or consumer: (configured replicas, peers that hold a copy)}``."""

    async def read() -> dict[str, tuple[int, int]]:
        nc = await nats.connect(servers=nats_servers(url))
        try:
            js = nc.jetstream()
            out: dict[str, tuple[int, int]] = {}
            for spec in DEFAULT_CONTRACT.streams:
                info = await js.stream_info(spec.name)
                out[spec.name] = (info.config.num_replicas, _holders(info.cluster))
            bridge = DEFAULT_CONTRACT.bridge
            cons = await js.consumer_info(bridge.stream, bridge.durable)
            out[bridge.durable] = (cons.config.num_replicas or 0, _holders(cons.cluster))
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


def _settled(url: str, copies: tuple[int, int]) -> bool:
    """Whether every stream and the consumer has ``copies``, once the cluster has moved
    them (a change of replicas takes the raft groups a moment; asked meanwhile, JetStream
    answers 503)."""
    last: dict[str, tuple[int, int]] = {}

    def probe() -> bool:
        nonlocal last
        try:
            last = _copies(url)
        except (NatsTimeout, ServiceUnavailableError):
            return False
        return set(last.values()) == {copies}

    try:
        wait_until(f"{copies} copies of everything", probe, 20)
    except ServerError:
        raise AssertionError(f"not {copies} copies of everything: {last}") from None
    return True


def _holders(cluster: Any) -> int:
    """The leader and its replicas (1 on a server outside any cluster)."""
    if cluster is None:
        return 1
    return (1 if cluster.leader else 0) + len(cluster.replicas or [])


def test_one_server_gets_one_replica_and_refuses_more(nats_server: NatsServer) -> None:
    result = _setup(nats_server.url)
    assert result.exit_code == 0, result.output
    assert {o["replicas"] for o in json.loads(result.output)} == {1}
    refused = _setup(nats_server.url, "--replicas", "3")
    assert refused.exit_code == 1
    assert refused.output.startswith("error: --replicas 3: the server is a single NATS "
                                     "server, not a cluster")
    text = CliRunner().invoke(main, ["streams", "setup", "--nats-url", nats_server.url])
    assert "stream MT5_ACCOUNTS: up to date (1 replica)" in text.output


def test_a_three_node_cluster_gets_three_replicas_of_everything(
    nats_cluster: NatsCluster,
) -> None:
    result = _setup(nats_cluster.url)
    assert result.exit_code == 0, result.output
    declared = json.loads(result.output)
    assert {(o["kind"], o["state"], o["replicas"]) for o in declared} == \
        {("stream", "created", 3), ("consumer", "ready", 3)}
    assert len(declared) == len(DEFAULT_CONTRACT.streams) + len(DEFAULT_CONTRACT.consumers)
    assert _settled(nats_cluster.url, (3, 3))

    too_many = _setup(nats_cluster.url, "--replicas", "4")
    assert too_many.exit_code == 1
    assert "--replicas 4: the server is a NATS cluster of 3 nodes" in too_many.output
    assert CliRunner().invoke(main, ["streams", "setup", "--nats-url", nats_cluster.url,
                                     "--replicas", "6"]).exit_code == 2  # click: 1-5

    # Only an explicit count lowers it; the default raises it back and says so.
    assert _setup(nats_cluster.url, "--replicas", "1").exit_code == 0
    assert _settled(nats_cluster.url, (1, 1))
    again = json.loads(_setup(nats_cluster.url).output)
    assert {o["state"] for o in again if o["kind"] == "stream"} == {"replicas 1 -> 3"}
    assert _settled(nats_cluster.url, (3, 3))
    unchanged = json.loads(_setup(nats_cluster.url).output)
    assert {o["state"] for o in unchanged if o["kind"] == "stream"} == {"up to date"}


def test_the_url_list_reaches_the_cluster_with_its_first_node_down(
    nats_cluster: NatsCluster,
) -> None:
    assert _setup(nats_cluster.url).exit_code == 0
    first = nats_cluster.nodes[0]
    nats_cluster.kill(first)
    nats_cluster.wait_ready()
    # Every later node has the streams; the command tries the list until one answers.
    result = _setup(nats_cluster.url)
    assert result.exit_code == 0, result.output
    assert {o["replicas"] for o in json.loads(result.output)} == {3}
    # One URL, the dead one, is not enough to start with.
    alone = _setup(first.url)
    assert alone.exit_code == 1 and alone.output.startswith("error: cannot connect to NATS")
