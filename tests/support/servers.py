"""Real servers for the test lanes: the TimescaleDB engine and nats-server.

Plain classes with no pytest dependency, so the fixtures (``tests/support/fixtures.py``),
the benchmarks and the demo can all start the same servers the same way. Native
PostgreSQL is started by pytest-postgresql through ``tests/support/pg_ctl_as_postgres``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[2]
ENGINE_SCRIPT = REPO_ROOT / "scripts" / "timescale_engine.mjs"


class ServerError(RuntimeError):
    """A test server could not start, or died while tests were using it."""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Process:
    """A child process with a log file, stopped by :meth:`stop` and checked by :meth:`check`."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log_path = workdir / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise :class:`ServerError`, loudly, if the server has died."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerError(
                f"the {self.name} (pid {self.proc.pid}) died with exit code "
                f"{self.proc.returncode}; every later test using it would fail obscurely. "
                f"Last lines of {self.log_path}:\n{_tail(self.log_path)}"
            )

    def _spawn(self, argv: list[str], *, stdin: int | None = None) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=REPO_ROOT,
            start_new_session=True,  # Ctrl-C in the terminal must not reach it before us
        )

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
        if self._log is not None:
            self._log.close()
            self._log = None


class TimescaleEngine(_Process):
    """PGlite + TimescaleDB served over the wire protocol by ``scripts/timescale_engine.mjs``.

    One backend is shared by all clients: use ``suho_mt5.db.make_engine(self.url)``, whose
    guards keep to one connection at a time and refuse COPY and oversized statements.
    """

    name = "timescaledb-engine"

    def __init__(self, workdir: Path, node: str | None = None) -> None:
        super().__init__(workdir)
        self.node = node or shutil.which("node") or "node"
        self.host = "127.0.0.1"
        self.port = 0

    @property
    def url(self) -> str:
        return (
            f"postgresql+psycopg://postgres:postgres@{self.host}:{self.port}/postgres"
            "?sslmode=disable&single_backend=true"
        )

    def start(self, timeout: float = 60.0) -> TimescaleEngine:
        if not (REPO_ROOT / "node_modules" / "@unni-craftsman" / "pglite").is_dir():
            raise ServerError("node_modules is missing: run `make setup` (it runs `npm ci`)")
        # stdin stays an open pipe that only we hold: if this process dies without stopping
        # the engine, the pipe closes and the engine exits by itself.
        self._spawn(
            [self.node, str(ENGINE_SCRIPT), "--host", self.host, "--port", "0",
             "--exit-on-stdin-close"],
            stdin=subprocess.PIPE,
        )
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(self.proc.stdout.fileno(), False)
        buffer = b""
        while time.monotonic() < deadline:
            self.check()
            chunk = self.proc.stdout.read()
            if chunk:
                buffer += chunk
                for line in buffer.decode(errors="replace").splitlines():
                    if line.startswith("READY "):
                        _, host, port = line.split()
                        self.host, self.port = host, int(port)
                        return self
            time.sleep(0.05)
        self.stop()
        raise ServerError(
            f"the TimescaleDB engine did not get ready in {timeout:.0f} s. "
            f"Last lines of {self.log_path}:\n{_tail(self.log_path)}"
        )


class NatsServer(_Process):
    """``nats-server`` with JetStream, its store in a private temporary directory."""

    name = "nats-server"

    def __init__(self, workdir: Path, executable: str | None = None) -> None:
        super().__init__(workdir)
        found = executable or shutil.which("nats-server")
        if found is None:
            raise ServerError(
                "nats-server is not installed: run `make setup` as root, or install the "
                "Debian package `nats-server`"
            )
        self.executable = found
        self.port = 0
        self.store_dir = workdir / "jetstream"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            self.port = free_port()
            self._spawn(
                [self.executable, "-a", "127.0.0.1", "-p", str(self.port), "-js",
                 "-sd", str(self.store_dir), "-l", str(self.log_path)]
            )
            if self._wait_ready(timeout):
                return self
            self.stop()  # most likely lost the race for the port: try another
        raise ServerError(
            f"nats-server did not get ready after {attempts} attempts. "
            f"Last lines of {self.log_path}:\n{_tail(self.log_path)}"
        )

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if "Server is ready" in _tail(self.log_path, 200):
                return True
            time.sleep(0.05)
        return False


def make_workdir(prefix: str) -> Path:
    """A private temporary directory for one server (removed by the caller)."""
    return Path(tempfile.mkdtemp(prefix=f"suho-{prefix}-"))
