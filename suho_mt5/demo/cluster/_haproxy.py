"""HAProxy in TCP mode in front of services, with health checks."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from suho_mt5.demo.cluster._common import (
    find_executable,
    port_open,
    start_retrying,
    wait_until,
)
from suho_mt5.demo.servers import ChildProcess, free_port
from suho_mt5.errors import ConfigError

__all__ = ["HAProxy", "ProxiedService", "ProxyServer"]


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
    #: ``"v1"`` or ``"v2"``: HAProxy sends a PROXY protocol header with the client's address
    #: to each server (``send-proxy`` / ``send-proxy-v2``; the gateway's
    #: ``--proxy-protocol-from``)
    send_proxy: str | None = None


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
        self.executable = find_executable("haproxy", "haproxy")
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
            proxy = {None: "", "v1": " send-proxy", "v2": " send-proxy-v2"}[service.send_proxy]
            for server in service.servers:
                check = f" port {server.check_port}" if server.check_port else ""
                lines.append(f"    server {server.name} {server.host}:{server.port} check"
                             f"{check} inter {self.check_ms} fall 2 rise 2{proxy}")
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0, attempts: int = 3) -> HAProxy:
        def attempt() -> None:
            self.ports = {s.name: free_port() for s in self.services}
            self.config_path.write_text(self.config())
            validate = subprocess.run([self.executable, "-c", "-q", "-f", str(self.config_path)],
                                      capture_output=True, text=True, timeout=30)
            if validate.returncode != 0:
                raise ConfigError(f"haproxy refused its configuration {self.config_path}:\n"
                                  f"{validate.stdout}{validate.stderr}")
            self._spawn([self.executable, "-db", "-f", str(self.config_path)])
            for name, port in self.ports.items():
                wait_until(f"haproxy to listen for {name}", partial(port_open, port),
                           timeout, self.check)
            wait_until("haproxy's runtime API", self.socket_path.exists, timeout, self.check)

        start_retrying(attempt, self.stop, attempts)
        return self

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
