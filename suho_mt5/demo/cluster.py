"""Clustered servers on loopback, for the scale-out tests, the benchmarks and the demo.

Each is what operators run in production, from Debian's packages, started as child
processes in a private directory (the same :class:`~suho_mt5.demo.servers.ChildProcess`
machinery as the single servers: a log file each, killed with us on Linux):

* :class:`NatsCluster`: ``nats-server`` nodes routed into one JetStream cluster, each with
  its own store directory; ready when every node names the same metadata leader.
* :class:`HAProxy`: ``haproxy`` with a generated configuration, TCP mode (the EA gateway's
  raw transport, and WebSocket, which HAProxy passes through as TCP) with health checks.
* :class:`Etcd` and :class:`PatroniCluster`: PostgreSQL 15 with TimescaleDB preloaded,
  managed by Patroni over one ``etcd``, a primary and streaming replicas (synchronous
  mode, so a failover loses no committed transaction).
* :class:`PgBouncer`: ``pgbouncer`` in front of one server, transaction pooling by default.

Every class's :meth:`stop` stops everything it started, also after a failed start, and
leaves no process behind (PostgreSQL's too, when Patroni was killed under it). PostgreSQL,
Patroni and PgBouncer refuse to run as root: as root they run as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from suho_mt5.demo.servers import (
    ChildProcess,
    as_postgres,
    free_port,
    give_to_postgres,
    native_timescaledb_available,
    pg_bindir,
)
from suho_mt5.errors import ServerError

__all__ = [
    "Etcd",
    "HAProxy",
    "NatsCluster",
    "NatsNode",
    "PatroniCluster",
    "PatroniNode",
    "PgBouncer",
    "ProxiedService",
    "ProxyServer",
    "kill_tree",
    "wait_until",
]

T = TypeVar("T")


def _executable(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        raise ServerError(f"{name} is not installed: run `make setup` as root, or install the "
                          f"Debian package `{package}`")
    return found


def wait_until(what: str, probe: Callable[[], T | None], timeout: float,
               check: Callable[[], None] | None = None, every: float = 0.1) -> T:
    """Call ``probe`` until it returns something other than None (or False); that value.

    ``check`` runs before each attempt (a server's :meth:`check`: a dead server fails at
    once, with its log, instead of at the timeout); :class:`ServerError` after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise ServerError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def _http_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    """(status, decoded JSON body) of a GET; (0, None) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (OSError, ValueError):
        return 0, None


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _children_of(pid: int) -> list[int]:
    """Every process whose parent is ``pid`` (from ``/proc``; Linux)."""
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``pid`` and every descendant of it (children first collected)."""
    stack, seen = [pid], []
    while stack:
        current = stack.pop()
        seen.append(current)
        stack.extend(_children_of(current))
    for each in seen:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(each, sig)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


# --------------------------------------------------------------------------- NATS

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
        status, body = _http_json(f"http://127.0.0.1:{self.http_port}/jsz")
        return body if status == 200 and isinstance(body, dict) else None

    def meta_leader(self) -> str | None:
        info = self.jetstream()
        meta = (info or {}).get("meta_cluster") or {}
        return str(meta["leader"]) if meta.get("leader") else None

    def routes(self) -> int:
        """Route connections to other nodes (``/routez``), -1 when the node does not answer."""
        status, body = _http_json(f"http://127.0.0.1:{self.http_port}/routez")
        return int(body.get("num_routes", 0)) if status == 200 and isinstance(body, dict) else -1

    def healthy(self) -> bool:
        """``/healthz``: the server is up and its JetStream assets are current."""
        status, _ = _http_json(f"http://127.0.0.1:{self.http_port}/healthz")
        return status == 200


class NatsCluster:
    """``size`` nats-server processes on loopback routed into one JetStream cluster.

    :attr:`url` is the comma-separated client URL list every ``--nats-url`` takes. The
    cluster is ready when every running node names the same JetStream metadata leader.
    """

    def __init__(self, workdir: Path, size: int = 3, name: str = "suho",
                 executable: str | None = None) -> None:
        exe = executable or _executable("nats-server", "nats-server")
        self.workdir = workdir
        self.name = name
        self.nodes = [NatsNode(workdir, i, exe) for i in range(size)]

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 30.0, attempts: int = 3) -> NatsCluster:
        for attempt in range(attempts):
            for node in self.nodes:
                node.port, node.cluster_port, node.http_port = (free_port() for _ in range(3))
            for node in self.nodes:
                node.configure(self.name, [n.cluster_port for n in self.nodes])
            try:
                for node in self.nodes:
                    node.start()
                self.wait_ready(timeout)
                return self
            except ServerError:
                self.stop()
                if attempt == attempts - 1:  # else most likely a port was taken: again
                    raise
        raise AssertionError("unreachable")

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
            wait_until(f"{node.name} to listen", partial(_port_open, node.port), timeout,
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
        wait_until(f"{node.name} to listen", lambda: _port_open(node.port), timeout,
                   node.check)
        wait_until(f"{node.name} to rejoin the cluster", node.healthy, timeout, node.check)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


# --------------------------------------------------------------------------- HAProxy

@dataclass(frozen=True)
class ProxyServer:
    """One server of a :class:`ProxiedService`; ``check_port``: health-check another port
    (a service's metrics port, answered by HTTP) instead of the proxied one."""

    name: str
    port: int
    check_port: int | None = None
    host: str = "127.0.0.1"


@dataclass(frozen=True)
class ProxiedService:
    """A TCP frontend and its servers. ``http_check``: a path (``/metrics``) that must
    answer 2xx/3xx on each server's check port; without it the check is a TCP connect."""

    name: str
    servers: tuple[ProxyServer, ...]
    http_check: str | None = None
    balance: str = "roundrobin"


class HAProxy(ChildProcess):
    """``haproxy`` in TCP mode in front of ``services`` (one frontend port each, on loopback).

    Health checks every ``check_ms`` (fall 2, rise 2): a server that stops answering is out
    of rotation within about two intervals, and clients that reconnect reach the others.
    :meth:`states` reads each server's state from the runtime API (a UNIX socket).
    """

    name = "haproxy"

    def __init__(self, workdir: Path, services: Sequence[ProxiedService],
                 check_ms: int = 250) -> None:
        super().__init__(workdir)
        self.services = list(services)
        self.check_ms = check_ms
        self.ports: dict[str, int] = {}
        self.executable = _executable("haproxy", "haproxy")
        self.config_path = workdir / "haproxy.cfg"
        self.socket_path = workdir / "haproxy.sock"

    def port(self, service: str) -> int:
        return self.ports[service]

    @staticmethod
    def _maxconn(wanted: int = 10_000) -> int:
        """Connections HAProxy may hold: it needs two descriptors for each (client and
        server side) and refuses to start when the hard limit is lower than that."""
        import resource

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard == resource.RLIM_INFINITY:
            return wanted
        return max(64, min(wanted, (hard - 100) // 2))

    def config(self) -> str:
        lines = [
            "global",
            f"    stats socket {self.socket_path} mode 600 level admin",
            f"    maxconn {self._maxconn()}",
            "defaults",
            "    mode tcp",
            "    timeout connect 2s",
            # EAs hold their connections for hours; their heartbeats keep them busy anyway.
            "    timeout client 1h",
            "    timeout server 1h",
            "    timeout tunnel 1h",
            "    option redispatch",
            "    retries 2",
        ]
        for service in self.services:
            lines += [f"frontend {service.name}",
                      f"    bind 127.0.0.1:{self.ports[service.name]}",
                      f"    default_backend {service.name}_servers",
                      f"backend {service.name}_servers",
                      f"    balance {service.balance}"]
            if service.http_check:
                lines.append(f"    option httpchk GET {service.http_check}")
            for server in service.servers:
                check = f" port {server.check_port}" if server.check_port else ""
                lines.append(f"    server {server.name} {server.host}:{server.port} check"
                             f"{check} inter {self.check_ms} fall 2 rise 2")
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0, attempts: int = 3) -> HAProxy:
        for attempt in range(attempts):
            self.ports = {s.name: free_port() for s in self.services}
            self.config_path.write_text(self.config())
            validate = subprocess.run([self.executable, "-c", "-q", "-f", str(self.config_path)],
                                      capture_output=True, text=True, timeout=30)
            if validate.returncode != 0:
                raise ServerError(f"haproxy refused its configuration {self.config_path}:\n"
                                  f"{validate.stdout}{validate.stderr}")
            self._spawn([self.executable, "-db", "-f", str(self.config_path)])
            try:
                for name, port in self.ports.items():
                    wait_until(f"haproxy to listen for {name}", partial(_port_open, port),
                               timeout, self.check)
                wait_until("haproxy's runtime API", lambda: self.socket_path.exists(), timeout,
                           self.check)
                return self
            except ServerError:
                self.stop()
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def command(self, text: str) -> str:
        """One runtime API command (``show stat``, ``disable server b/s`` ...): its answer."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(text.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def states(self) -> dict[tuple[str, str], str]:
        """``{(service, server): "UP" | "DOWN" | ...}`` from ``show stat``."""
        out: dict[tuple[str, str], str] = {}
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",") if lines else []
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            backend, server = row.get("pxname", ""), row.get("svname", "")
            if backend.endswith("_servers") and server not in ("BACKEND", "FRONTEND", ""):
                out[(backend.removesuffix("_servers"), server)] = row.get("status", "")
        return out

    def wait_state(self, service: str, server: str, state: str, timeout: float = 15.0) -> None:
        """Until HAProxy's health checks put ``server`` of ``service`` in ``state`` (UP or
        DOWN; a state "UP 1/2" is on its way and does not count)."""
        wait_until(f"haproxy to see {service}/{server} {state}",
                   lambda: self.states().get((service, server)) == state, timeout, self.check)


# --------------------------------------------------------------------------- etcd

class Etcd(ChildProcess):
    """A single-member ``etcd`` (v3 API) on loopback: the store Patroni keeps its leader
    lock in. One member is a single point of failure: production runs three or five."""

    name = "etcd"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.executable = _executable("etcd", "etcd-server")
        self.client_port = self.peer_port = 0
        self.data_dir = workdir / "etcd-data"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> Etcd:
        for attempt in range(attempts):
            self.client_port, self.peer_port = free_port(), free_port()
            client, peer = f"http://{self.endpoint}", f"http://127.0.0.1:{self.peer_port}"
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self._spawn([self.executable, "--name", "suho", "--data-dir", str(self.data_dir),
                         "--listen-client-urls", client, "--advertise-client-urls", client,
                         "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                         "--initial-cluster", f"suho={peer}", "--initial-cluster-state", "new",
                         "--log-level", "warn"])
            try:
                wait_until("etcd to be healthy", self.healthy, timeout, self.check)
                return self
            except ServerError:
                self.stop()
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def healthy(self) -> bool:
        status, body = _http_json(f"http://{self.endpoint}/health")
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
        return _http_json(f"http://127.0.0.1:{self.api_port}{path}")

    def state(self) -> dict[str, Any]:
        status, body = self.api("/patroni")
        return body if status in (200, 503) and isinstance(body, dict) else {}

    def is_primary(self) -> bool:
        return self.api("/primary")[0] == 200

    def start(self) -> PatroniNode:
        give_to_postgres(self.node_dir, self.config_path)
        self._spawn([_executable("patroni", "patroni"), str(self.config_path)],
                    env=_patroni_env(self.node_dir), **as_postgres())
        return self

    def kill(self) -> None:
        """SIGKILL Patroni, its PostgreSQL and PostgreSQL's processes: the node is gone."""
        postmaster = self.postmaster_pid()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if postmaster is not None and _alive(postmaster):
            kill_tree(postmaster)
            wait_until(f"the postmaster of {self.member} to die",
                       lambda: not _alive(postmaster), 10)
        super().stop()
        self.proc = None  # down on purpose: check() does not complain, alive() is False

    def stop(self, timeout: float = 30.0) -> None:
        postmaster = self.postmaster_pid()
        super().stop(timeout)
        if postmaster is not None and _alive(postmaster):
            kill_tree(postmaster)  # Patroni was killed, or gave up on a fast shutdown
            with contextlib.suppress(ServerError):
                wait_until(f"the postmaster of {self.member} to die",
                           lambda: not _alive(postmaster), 10)


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
        _executable("patroni", "patroni")
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


# --------------------------------------------------------------------------- PgBouncer

class PgBouncer(ChildProcess):
    """``pgbouncer`` on loopback in front of the server at ``server_port``.

    ``users``: login -> password, in PgBouncer's auth file (it logs in to the server with
    the same password, by SCRAM); ``admin_user`` (one of them) may use the admin console
    (:meth:`show`). ``pool_size`` server connections per database and user,
    ``max_db_connections`` per database over all users (0: no limit).
    """

    name = "pgbouncer"

    def __init__(self, workdir: Path, server_port: int, users: dict[str, str], *,
                 admin_user: str | None = None, pool_mode: str = "transaction",
                 pool_size: int = 2, max_db_connections: int = 0,
                 server_host: str = "127.0.0.1") -> None:
        super().__init__(workdir)
        self.executable = _executable("pgbouncer", "pgbouncer")
        self.server_port = server_port
        self.server_host = server_host
        self.users = dict(users)
        self.admin_user = admin_user
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.max_db_connections = max_db_connections
        self.port = 0
        self.config_path = workdir / "pgbouncer.ini"
        self.auth_path = workdir / "userlist.txt"

    def url(self, dbname: str, user: str, password: str | None = None) -> str:
        secret = quote(password if password is not None else self.users[user], safe="")
        return (f"postgresql+psycopg://{quote(user, safe='')}:{secret}@127.0.0.1:{self.port}"
                f"/{dbname}")

    def _config(self) -> str:
        return "\n".join([
            "[databases]",
            f"* = host={self.server_host} port={self.server_port}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            f"unix_socket_dir = {self.workdir}",
            "auth_type = scram-sha-256",
            f"auth_file = {self.auth_path}",
            f"pool_mode = {self.pool_mode}",
            f"default_pool_size = {self.pool_size}",
            "min_pool_size = 0",
            "reserve_pool_size = 0",
            f"max_db_connections = {self.max_db_connections}",
            "max_client_conn = 1000",
            # what psycopg and SQLAlchemy send at connect; not pooled state
            "ignore_startup_parameters = extra_float_digits,options",
            f"pidfile = {self.workdir / 'pgbouncer.pid'}",
            f"admin_users = {self.admin_user or ''}",
            "",
        ])

    def start(self, timeout: float = 15.0, attempts: int = 3) -> PgBouncer:
        def quoted(text: str) -> str:
            return '"' + text.replace('"', '""') + '"'

        self.auth_path.write_text("".join(f"{quoted(u)} {quoted(p)}\n"
                                          for u, p in self.users.items()))
        self.auth_path.chmod(0o600)
        for attempt in range(attempts):
            self.port = free_port()
            self.config_path.write_text(self._config())
            give_to_postgres(self.workdir, self.config_path, self.auth_path)
            self._spawn([self.executable, str(self.config_path)], **as_postgres())
            try:
                wait_until("pgbouncer to listen", lambda: _port_open(self.port), timeout,
                           self.check)
                return self
            except ServerError:
                self.stop()
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def show(self, what: str) -> list[dict[str, Any]]:
        """``SHOW <what>`` on the admin console (``pools``, ``servers``, ``stats``)."""
        import psycopg

        assert self.admin_user is not None, "no admin_user given"
        with psycopg.connect(host="127.0.0.1", port=self.port, dbname="pgbouncer",
                             user=self.admin_user, password=self.users[self.admin_user],
                             autocommit=True, prepare_threshold=None) as conn:
            cur = conn.execute(f"SHOW {what}")
            names = [d.name for d in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

