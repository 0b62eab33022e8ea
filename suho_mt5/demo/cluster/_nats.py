"""A NATS JetStream cluster on loopback: :class:`NatsCluster` of :class:`NatsNode`."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from suho_mt5.demo.cluster._common import (
    find_executable,
    http_json,
    port_open,
    start_retrying,
    wait_until,
)
from suho_mt5.demo.servers import ChildProcess, free_port

__all__ = ["NatsCluster", "NatsNode"]


class NatsNode(ChildProcess):
    """One ``nats-server`` of a :class:`NatsCluster`, from a configuration file."""

    def __init__(self, workdir: Path, index: int, executable: str) -> None:
        self.name = f"nats-{index}"
        super().__init__(workdir)
        self.index = index
        self.executable = executable
        self.server_name = f"n{index}"
        self.port = self.cluster_port = self.http_port = 0
        self.store_dir = workdir / f"store-{index}"
        self.config_path = workdir / f"nats-{index}.conf"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def configure(self, cluster: str, routes: Sequence[int]) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        route_list = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
        self.config_path.write_text(
            f"server_name: {self.server_name}\n"
            f"listen: 127.0.0.1:{self.port}\n"
            f"http: 127.0.0.1:{self.http_port}\n"
            f'jetstream {{ store_dir: "{self.store_dir}" }}\n'
            f"cluster {{\n  name: {cluster}\n  listen: 127.0.0.1:{self.cluster_port}\n"
            f"  routes: [{route_list}]\n}}\n"
        )

    def start(self) -> NatsNode:
        self._spawn([self.executable, "-c", str(self.config_path), "-l", str(self.log_path)])
        return self

    def kill(self) -> None:
        """SIGKILL: the node dies as in a power cut (its store stays for a restart)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.stop()  # closes the pipes and the log
        self.proc = None  # down on purpose: check() does not complain, alive() is False

    def jetstream(self) -> dict[str, Any] | None:
        """The node's ``/jsz`` (JetStream state, with ``meta_cluster``), or None."""
        status, body = http_json(f"http://127.0.0.1:{self.http_port}/jsz")
        return body if status == 200 and isinstance(body, dict) else None

    def meta_leader(self) -> str | None:
        info = self.jetstream()
        meta = (info or {}).get("meta_cluster") or {}
        return str(meta["leader"]) if meta.get("leader") else None

    def routes(self) -> int:
        """Route connections to other nodes (``/routez``), -1 when the node does not answer."""
        status, body = http_json(f"http://127.0.0.1:{self.http_port}/routez")
        return int(body.get("num_routes", 0)) if status == 200 and isinstance(body, dict) else -1

    def healthy(self) -> bool:
        """``/healthz``: the server is up and its JetStream assets are current."""
        status, _ = http_json(f"http://127.0.0.1:{self.http_port}/healthz")
        return status == 200


class NatsCluster:
    """``size`` nats-server processes on loopback routed into one JetStream cluster.

    :attr:`url` is the comma-separated client URL list every ``--nats-url`` takes. The
    cluster is ready when every running node names the same JetStream metadata leader.
    """

    def __init__(self, workdir: Path, size: int = 3, name: str = "suho",
                 executable: str | None = None) -> None:
        exe = executable or find_executable("nats-server", "nats-server")
        self.workdir = workdir
        self.name = name
        self.nodes = [NatsNode(workdir, i, exe) for i in range(size)]

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 30.0, attempts: int = 3) -> NatsCluster:
        def attempt() -> None:
            for node in self.nodes:
                node.port, node.cluster_port, node.http_port = (free_port() for _ in range(3))
            for node in self.nodes:
                node.configure(self.name, [n.cluster_port for n in self.nodes])
            for node in self.nodes:
                node.start()
            self.wait_ready(timeout)

        start_retrying(attempt, self.stop, attempts)
        return self

    def check(self) -> None:
        """:class:`ServerError` if a node that should run has died."""
        for node in self.nodes:
            node.check()

    def running(self) -> list[NatsNode]:
        return [node for node in self.nodes if node.alive()]

    def leader(self) -> str | None:
        """The metadata leader's server name, if every running node agrees on one."""
        running = self.running()
        leaders = {node.meta_leader() for node in running}
        leader = leaders.pop() if len(leaders) == 1 else None
        # A node that was just killed is still named by the others for a moment.
        return leader if leader in {node.server_name for node in running} else None

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Until every running node serves clients and names one metadata leader: its name."""
        for node in self.running():
            wait_until(f"{node.name} to listen", partial(port_open, node.port), timeout,
                       node.check)
        # Every node routed to every other: the INFO a client gets names the whole cluster.
        peers = len(self.running()) - 1
        wait_until(f"the NATS cluster {self.name}'s routes",
                   lambda: all(n.routes() >= peers for n in self.running()), timeout, self.check)
        return wait_until(f"the NATS cluster {self.name} to elect a JetStream leader",
                          self.leader, timeout, self.check)

    def node_named(self, server_name: str) -> NatsNode:
        return next(n for n in self.nodes if n.server_name == server_name)

    def kill(self, node: NatsNode) -> None:
        node.kill()

    def restart(self, node: NatsNode, timeout: float = 30.0) -> None:
        """Start a killed node again on its ports and store; wait until it is current."""
        node.start()
        wait_until(f"{node.name} to listen", lambda: port_open(node.port), timeout,
                   node.check)
        wait_until(f"{node.name} to rejoin the cluster", node.healthy, timeout, node.check)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
