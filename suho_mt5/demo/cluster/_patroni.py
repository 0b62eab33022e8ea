"""PostgreSQL + TimescaleDB managed by Patroni over etcd: :class:`PatroniCluster`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from suho_mt5.demo.cluster._common import (
    alive,
    find_executable,
    http_json,
    kill_tree,
    start_retrying,
    wait_until,
)
from suho_mt5.demo.servers import (
    ChildProcess,
    as_postgres,
    free_port,
    give_to_postgres,
    native_timescaledb_available,
    pg_bindir,
)
from suho_mt5.errors import ServerError

__all__ = ["Etcd", "PatroniCluster", "PatroniNode"]


class Etcd(ChildProcess):
    """A single-member ``etcd`` (v3 API) on loopback: the store Patroni keeps its leader
    lock in. One member is a single point of failure: production runs three or five."""

    name = "etcd"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.executable = find_executable("etcd", "etcd-server")
        self.client_port = self.peer_port = 0
        self.data_dir = workdir / "etcd-data"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> Etcd:
        def attempt() -> None:
            self.client_port, self.peer_port = free_port(), free_port()
            client, peer = f"http://{self.endpoint}", f"http://127.0.0.1:{self.peer_port}"
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self._spawn([self.executable, "--name", "suho", "--data-dir", str(self.data_dir),
                         "--listen-client-urls", client, "--advertise-client-urls", client,
                         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                         "--initial-cluster", f"suho={peer}", "--initial-cluster-state", "new",
                         "--log-level", "warn"])
            wait_until("etcd to be healthy", self.healthy, timeout, self.check)

        start_retrying(attempt, self.stop, attempts)
        return self

    def healthy(self) -> bool:
        status, body = http_json(f"http://{self.endpoint}/health")
        return status == 200 and isinstance(body, dict) and body.get("health") == "true"


# --------------------------------------------------------------------------- Patroni

class PatroniNode(ChildProcess):
    """One Patroni-managed PostgreSQL of a :class:`PatroniCluster`.

    Patroni starts PostgreSQL in a session of its own, so killing Patroni leaves the
    postmaster running: :meth:`kill` kills both (a machine that died), :meth:`stop` lets
    Patroni stop PostgreSQL and then makes sure no postmaster is left.
    """

    stop_signal = signal.SIGTERM

    def __init__(self, workdir: Path, index: int) -> None:
        self.name = f"patroni-{index}"
        super().__init__(workdir)
        self.index = index
        self.member = f"pg{index}"
        self.node_dir = workdir / self.member
        self.data_dir = self.node_dir / "data"
        self.config_path = self.node_dir / "patroni.yml"
        self.port = self.api_port = 0

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def api(self, path: str) -> tuple[int, Any]:
        """GET Patroni's REST API: ``/patroni``, ``/cluster``, ``/primary``, ``/replica``."""
        return http_json(f"http://127.0.0.1:{self.api_port}{path}")

    def state(self) -> dict[str, Any]:
        status, body = self.api("/patroni")
        return body if status in (200, 503) and isinstance(body, dict) else {}

    def is_primary(self) -> bool:
        return self.api("/primary")[0] == 200

    def start(self) -> PatroniNode:
        give_to_postgres(self.node_dir, self.config_path)
        self._spawn([find_executable("patroni", "patroni"), str(self.config_path)],
                    env=_patroni_env(self.node_dir), **as_postgres())
        return self

    def kill(self) -> None:
        """SIGKILL Patroni, its PostgreSQL and PostgreSQL's processes: the node is gone."""
        postmaster = self.postmaster_pid()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if postmaster is not None and alive(postmaster):
            kill_tree(postmaster)
            wait_until(f"the postmaster of {self.member} to die",
                       lambda: not alive(postmaster), 10)
        super().stop()
        self.proc = None  # down on purpose: check() does not complain, alive() is False

    def stop(self, timeout: float = 30.0) -> None:
        postmaster = self.postmaster_pid()
        super().stop(timeout)
        if postmaster is not None and alive(postmaster):
            kill_tree(postmaster)  # Patroni was killed, or gave up on a fast shutdown
            with contextlib.suppress(ServerError):
                wait_until(f"the postmaster of {self.member} to die",
                           lambda: not alive(postmaster), 10)


def _patroni_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PATRONI_", "PG"))}
    env["HOME"] = str(home)
    return env


@dataclass
class PatroniCluster:
    """``size`` PostgreSQL 15 servers preloading TimescaleDB, managed by Patroni over one
    etcd: one primary, the others streaming replicas, in synchronous mode.

    The superuser is ``postgres`` / ``password``. :meth:`url` is a libpq multi-host URL
    of every node, which reaches the primary with ``target_session_attrs=read-write`` and
    a replica with ``prefer-standby``. ``ttl`` is the leader lock's lifetime in etcd: a
    dead primary is replaced about ``ttl`` seconds after it died.
    """

    workdir: Path
    size: int = 2
    password: str = "postgres"
    ttl: int = 10
    loop_wait: int = 1
    scope: str = "suho"
    nodes: list[PatroniNode] = field(default_factory=list)
    etcd: Etcd | None = None

    def __post_init__(self) -> None:
        why = native_timescaledb_available()
        if why is not None:
            raise ServerError(f"cannot start a Patroni cluster of TimescaleDB: {why}")
        find_executable("patroni", "patroni")
        bindir = pg_bindir()
        assert bindir is not None
        self.bindir = bindir
        self.nodes = [PatroniNode(self.workdir, i) for i in range(self.size)]

    def _config(self, node: PatroniNode) -> str:
        assert self.etcd is not None
        retry = max(3, (self.ttl - self.loop_wait) // 2 - 1)
        config = {
            "scope": self.scope,
            "namespace": "/suho/",
            "name": node.member,
            "log": {"level": "INFO"},
            "restapi": {"listen": f"127.0.0.1:{node.api_port}",
                        "connect_address": f"127.0.0.1:{node.api_port}"},
            "etcd3": {"hosts": self.etcd.endpoint, "protocol": "http"},
            "bootstrap": {
                "dcs": {
                    "ttl": self.ttl, "loop_wait": self.loop_wait, "retry_timeout": retry,
                    "maximum_lag_on_failover": 1048576,
                    # A commit waits until the replica has it: the replica Patroni promotes
                    # holds every transaction the primary acknowledged (docs/operations.md).
                    "synchronous_mode": True,
                    "postgresql": {
                        "use_pg_rewind": False,
                        "use_slots": True,
                        "parameters": {
                            "max_connections": 200,
                            "max_worker_processes": 32,
                            "max_wal_senders": 10,
                            "max_replication_slots": 10,
                            "wal_level": "replica",
                            "hot_standby": "on",
                            "wal_keep_size": "256MB",
                        },
                    },
                },
                "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, "no-sync"],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{node.port}",
                "connect_address": f"127.0.0.1:{node.port}",
                "data_dir": str(node.data_dir),
                "bin_dir": str(self.bindir),
                "pgpass": str(node.node_dir / "pgpass"),
                "authentication": {
                    "superuser": {"username": "postgres", "password": self.password},
                    "replication": {"username": "replicator", "password": self.password},
                },
                "pg_hba": [
                    "local all all trust",
                    "host replication replicator 127.0.0.1/32 scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256",
                ],
                "parameters": {
                    "unix_socket_directories": str(node.node_dir),
                    "shared_preload_libraries": "timescaledb",
                    "timescaledb.telemetry_level": "off",
                    "timescaledb.max_background_workers": 8,
                    "password_encryption": "scram-sha-256",
                    # a throw-away cluster: the kill tests kill processes, not the machine
                    "fsync": "off",
                    "full_page_writes": "off",
                },
            },
            "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False},
        }
        return json.dumps(config, indent=2)  # JSON is YAML

    def start(self, timeout: float = 120.0) -> PatroniCluster:
        """etcd, then the first node (it bootstraps the primary), then the replicas; ready
        when every replica streams synchronously."""
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            give_to_postgres(self.workdir)
            self.etcd = Etcd(self.workdir).start()
            for node in self.nodes:
                node.port, node.api_port = free_port(), free_port()
                node.node_dir.mkdir(parents=True, exist_ok=True)
                node.config_path.write_text(self._config(node))
                node.config_path.chmod(0o600)
            first, *others = self.nodes
            first.start()
            wait_until(f"{first.member} to bootstrap the primary", first.is_primary, timeout,
                       first.check, every=0.2)
            for node in others:
                node.start()
            self.wait_healthy(timeout)
            return self
        except BaseException:
            self.stop()
            raise

    def check(self) -> None:
        for node in self.nodes:
            node.check()
        if self.etcd is not None:
            self.etcd.check()

    def members(self) -> list[dict[str, Any]]:
        """Patroni's view of the cluster (``/cluster`` of any node that answers)."""
        for node in self.nodes:
            if node.alive():
                status, body = node.api("/cluster")
                if status == 200 and isinstance(body, dict):
                    return list(body.get("members", []))
        return []

    def primary(self) -> PatroniNode | None:
        return next((n for n in self.nodes if n.alive() and n.is_primary()), None)

    def replicas(self) -> list[PatroniNode]:
        return [n for n in self.nodes if n.alive() and n.api("/replica")[0] == 200]

    def wait_healthy(self, timeout: float = 120.0) -> PatroniNode:
        """Until one running node leads and every other running node is its synchronous
        standby, streaming; the primary."""

        def healthy() -> PatroniNode | None:
            running = {n.member for n in self.nodes if n.alive()}
            members = {m.get("name"): m for m in self.members()}
            if set(members) < running:
                return None
            roles = [members[name].get("role") for name in running]
            states = [members[name].get("state") for name in running]
            leaders = [name for name in running if members[name].get("role") == "leader"]
            standbys = len(running) - 1
            if (len(leaders) != 1 or roles.count("sync_standby") != min(standbys, 1)
                    or any(s not in ("running", "streaming") for s in states)):
                return None
            return next(n for n in self.nodes if n.member == leaders[0])

        return wait_until("the Patroni cluster to have a primary and a synchronous standby",
                          healthy, timeout, self.check, every=0.2)

    def wait_primary(self, other_than: PatroniNode | None = None,
                     timeout: float = 120.0) -> PatroniNode:
        """Until a node other than ``other_than`` is the primary and accepts writes."""

        def promoted() -> PatroniNode | None:
            node = self.primary()
            if node is None or node is other_than:
                return None
            # Patroni holds the leader lock a moment before PostgreSQL leaves recovery.
            return node if self.writable(node) else None

        return wait_until("Patroni to promote a replica", promoted, timeout, every=0.05)

    def writable(self, node: PatroniNode) -> bool:
        """Whether ``node``'s PostgreSQL answers and is out of recovery."""
        import psycopg

        try:
            with psycopg.connect(host="127.0.0.1", port=node.port, user="postgres",
                                 password=self.password, dbname="postgres",
                                 connect_timeout=2) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            return False
        return row is not None and row[0] is False

    def url(self, dbname: str = "postgres", user: str = "postgres",
            password: str | None = None, target: str = "read-write") -> str:
        """A libpq multi-host URL of every node with ``target_session_attrs=target``."""
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)
        secret = quote(password if password is not None else self.password, safe="")
        return (f"postgresql://{quote(user, safe='')}:{secret}@{hosts}/{dbname}"
                f"?target_session_attrs={target}&connect_timeout=3")

    def node_url(self, node: PatroniNode, dbname: str = "postgres", user: str = "postgres",
                 password: str | None = None) -> str:
        """The SQLAlchemy URL of one node."""
        secret = quote(password if password is not None else self.password, safe="")
        return (f"postgresql+psycopg://{quote(user, safe='')}:{secret}@127.0.0.1:{node.port}"
                f"/{dbname}")

    def stop(self) -> None:
        # Replicas first, so a stopping primary does not wait for a synchronous standby.
        for node in sorted(self.nodes, key=lambda n: n.alive() and n.is_primary()):
            node.stop()
        if self.etcd is not None:
            self.etcd.stop()
