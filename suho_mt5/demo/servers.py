"""Servers started as child processes in a private directory: the demo's and the tests'.

* :class:`NativeCluster`: a throw-away PostgreSQL cluster that preloads TimescaleDB (what
  ``make setup`` installs), run as the ``postgres`` system user when we are root, because
  PostgreSQL refuses to run as root.
* :class:`TimescaleEngine`: the PGlite TimescaleDB engine (``scripts/timescale_engine.mjs``
  of a source checkout, after ``npm ci``), for machines where the native server cannot run.
* :class:`NatsServer`: ``nats-server`` with JetStream.
* :class:`RedisServer`: ``redis-server`` 7, the cache tier (what DragonflyDB replaces in
  production), its default user disabled and an admin user of its own.

Each is a child of this process with a log file in its directory; :meth:`stop` ends it and
:meth:`check` raises :class:`~suho_mt5.errors.ServerError`, with the log's last lines, when
it died. Children start in a session of their own: a Ctrl-C in the terminal reaches only us,
and we stop them in order (clients first, the database last).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import suho_mt5
from suho_mt5.errors import ServerError

__all__ = [
    "ENGINE_SCRIPT_ENV",
    "ChildProcess",
    "NativeCluster",
    "NatsServer",
    "RedisServer",
    "Service",
    "TimescaleEngine",
    "as_postgres",
    "engine_script",
    "free_port",
    "give_to_postgres",
    "log_tail",
    "make_workdir",
    "native_timescaledb_available",
    "pg_bindir",
]

ENGINE_SCRIPT_ENV = "SUHO_ENGINE_SCRIPT"
_SOURCE_ROOT = Path(suho_mt5.__file__).resolve().parents[1]


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a server's log, for an error message."""
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


def make_workdir(prefix: str) -> Path:
    """A private temporary directory for one server (removed by the caller)."""
    return Path(tempfile.mkdtemp(prefix=f"suho-{prefix}-"))


def _die_with_parent(sig: int) -> Any:
    """Linux: the child gets ``sig`` when we die, even by SIGKILL, so no server outlives a
    killed demo or test session. Elsewhere nothing (the stop in ``finally`` remains)."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    pr_set_pdeathsig = 1

    def arm() -> None:
        libc.prctl(pr_set_pdeathsig, int(sig), 0, 0, 0)

    return arm


class ChildProcess:
    """A child process with a log file, stopped by :meth:`stop` and checked by :meth:`check`."""

    name = "server"
    stop_signal = signal.SIGTERM

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
                f"{self.proc.returncode}; every later request to it would fail obscurely. "
                f"Last lines of {self.log_path}:\n{log_tail(self.log_path)}"
            )

    def _wait_until(self, ready: Callable[[], bool], timeout: float) -> bool:
        """Poll ``ready()`` every 50 ms while the process lives: True once it is, False when
        the process died or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            if ready():
                return True
            time.sleep(0.05)
        return False

    def _spawn(self, argv: list[str], *, stdin: int | None = None, cwd: Path | None = None,
               **popen: Any) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=cwd or self.workdir,
            start_new_session=True,  # Ctrl-C in the terminal must not reach it before us
            preexec_fn=_die_with_parent(self.stop_signal),
            **popen,
        )

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(self.stop_signal)
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


def engine_script() -> Path:
    """``scripts/timescale_engine.mjs`` of the source checkout (or ``$SUHO_ENGINE_SCRIPT``),
    with its ``node_modules`` installed; :class:`ServerError` saying how to get them."""
    script = Path(os.environ.get(ENGINE_SCRIPT_ENV) or
                  _SOURCE_ROOT / "scripts" / "timescale_engine.mjs")
    if not script.is_file():
        raise ServerError(
            f"the PGlite engine script {script} is missing: the PGlite engine runs from a "
            f"source checkout of suho-mt5 (set ${ENGINE_SCRIPT_ENV} to its "
            "scripts/timescale_engine.mjs)"
        )
    if not (script.parent.parent / "node_modules" / "@unni-craftsman" / "pglite").is_dir():
        raise ServerError(
            f"node_modules is missing next to {script.parent}: run `make setup` (it runs "
            "`npm ci`)"
        )
    return script


class TimescaleEngine(ChildProcess):
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
        script = engine_script()
        # stdin stays an open pipe that only we hold: if this process dies without stopping
        # the engine, the pipe closes and the engine exits by itself.
        self._spawn(
            [self.node, str(script), "--host", self.host, "--port", "0",
             "--exit-on-stdin-close"],
            stdin=subprocess.PIPE, cwd=script.parent.parent,
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
            f"Last lines of {self.log_path}:\n{log_tail(self.log_path)}"
        )


def _installed(program: str, given: str | None) -> str:
    """``given``, else ``program`` on the PATH, else a :class:`ServerError` saying how to get
    it (the Debian package has the program's name)."""
    found = given or shutil.which(program)
    if found is None:
        raise ServerError(f"{program} is not installed: run `make setup` as root, or install "
                          f"the Debian package `{program}`")
    return found


class NatsServer(ChildProcess):
    """``nats-server`` with JetStream, its store in a private temporary directory."""

    name = "nats-server"

    def __init__(self, workdir: Path, executable: str | None = None) -> None:
        super().__init__(workdir)
        self.executable = _installed("nats-server", executable)
        self.port = 0
        self.store_dir = workdir / "jetstream"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, attempts: int = 3) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            self.port = free_port()
            if self._spawn_and_wait(timeout):
                return self
            self.stop()  # most likely lost the race for the port: try another
        raise ServerError(
            f"nats-server did not get ready after {attempts} attempts. "
            f"Last lines of {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def restart(self, timeout: float = 30.0, stop_timeout: float = 10.0) -> NatsServer:
        """Stop (SIGKILL after ``stop_timeout``: a nats-server 2.9 whose store hit a full
        disk ignores SIGTERM) and start again on the same port and store, as an operator
        would; clients reconnect to it. Call it from a thread that outlives the server."""
        self.stop(stop_timeout)
        if not self._spawn_and_wait(timeout):
            self.stop()
            raise ServerError(f"nats-server did not restart. Last lines of {self.log_path}:"
                              f"\n{log_tail(self.log_path)}")
        return self

    def _spawn_and_wait(self, timeout: float) -> bool:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self._spawn(
            [self.executable, "-a", "127.0.0.1", "-p", str(self.port), "-js",
             "-sd", str(self.store_dir), "-l", str(self.log_path)]
        )
        return self._wait_until(lambda: self._ready_since(offset), timeout)

    def _ready_since(self, offset: int) -> bool:
        """"Server is ready" in the log after ``offset`` (the log is appended to)."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return b"Server is ready" in log.read()


class RedisServer(ChildProcess):
    """``redis-server`` on 127.0.0.1 and a free port, for the cache tier.

    The configuration it writes is the one ``docs/cache.md`` recommends: loopback only, no
    persistence (the cache is rebuilt from the database), ACL users in an ACL file (so
    ``ACL SAVE`` keeps the users ``suho-mt5 cache grant-*`` creates across a restart), the
    ``default`` user **off**, and one admin user (``suho-admin``, ``admin_password``).
    ``debug_command`` allows ``DEBUG`` from loopback connections, so that the ACL is what
    refuses it to the tenants (tests; the default refuses it to everyone).
    """

    name = "redis-server"
    ADMIN = "suho-admin"

    def __init__(self, workdir: Path, executable: str | None = None,
                 admin_password: str | None = None, debug_command: bool = False) -> None:
        super().__init__(workdir)
        self.executable = _installed("redis-server", executable)
        self.port = 0
        self.admin_password = admin_password or secrets.token_hex(16)
        self.debug_command = debug_command
        self.config_path = workdir / "redis.conf"
        self.acl_path = workdir / "users.acl"

    def url(self, user: str | None = None, password: str | None = None, db: int = 0) -> str:
        """``redis://user:password@127.0.0.1:port/db`` (no credentials: none in the URL)."""
        from urllib.parse import quote

        auth = f"{quote(user, safe='')}:{quote(password or '', safe='')}@" if user else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    @property
    def admin_url(self) -> str:
        return self.url(self.ADMIN, self.admin_password)

    def _write_config(self) -> None:
        self.config_path.write_text("\n".join([
            "bind 127.0.0.1", "protected-mode yes", f"port {self.port}", "unixsocket \"\"",
            f"dir {self.workdir}", f"logfile {self.log_path}", "daemonize no",
            'save ""', "appendonly no", f"aclfile {self.acl_path}",
            f"enable-debug-command {'local' if self.debug_command else 'no'}", ""]))
        if not self.acl_path.exists():
            self.acl_path.write_text(
                "user default off resetkeys resetchannels -@all\n"
                f"user {self.ADMIN} on >{self.admin_password} ~* &* +@all\n")
        self.acl_path.chmod(0o600)

    def start(self, timeout: float = 30.0, attempts: int = 3) -> RedisServer:
        keep_port = self.port
        for _ in range(attempts):
            self.port = keep_port or free_port()
            self._write_config()
            self._spawn([self.executable, str(self.config_path)])
            if self._wait_ready(timeout):
                return self
            self.stop()
            if keep_port:
                break
        raise ServerError(
            f"redis-server did not get ready. Last lines of {self.log_path}:\n"
            f"{log_tail(self.log_path)}"
        )

    def _wait_ready(self, timeout: float) -> bool:
        def answers() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(64).startswith((b"+PONG", b"-NOAUTH", b"-NOPERM"))
            except OSError:
                return False

        return self._wait_until(answers, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would (nothing is saved; the port is free again)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.stop()

    def pause(self) -> None:
        """SIGSTOP: the server holds its connections and answers nothing (a hung cache)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`: it answers again, with all its data."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def restart(self, timeout: float = 30.0) -> RedisServer:
        """Start again on the same port with the same users (and, without persistence, an
        empty keyspace). Call it from a thread that outlives the server: on Linux a child
        gets its stop signal when the *thread* that started it ends (``_die_with_parent``)."""
        self.stop()
        return self.start(timeout, attempts=1)


# --------------------------------------------------------------------------- native server

def pg_bindir() -> Path | None:
    """The newest PostgreSQL's ``bin`` directory (``$SUHO_PG_BINDIR`` wins), or None."""
    configured = os.environ.get("SUHO_PG_BINDIR")
    if configured:
        return Path(configured)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    if candidates:
        return candidates[-1]
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _pg_sharedir(bindir: Path) -> Path | None:
    try:
        out = subprocess.run([str(bindir / "pg_config"), "--sharedir"], capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        # Debian's layout when pg_config (postgresql-server-dev) is absent
        return Path("/usr/share/postgresql") / bindir.parent.name
    return Path(out)


def native_timescaledb_available() -> str | None:
    """None when a native PostgreSQL with TimescaleDB can be started here, else why not."""
    bindir = pg_bindir()
    if bindir is None or not (bindir / "postgres").is_file():
        return "PostgreSQL is not installed (make setup installs PostgreSQL 15)"
    share = _pg_sharedir(bindir)
    if share is None or not (share / "extension" / "timescaledb.control").is_file():
        return "TimescaleDB is not installed into PostgreSQL (make setup builds it)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return ("running as root and there is no `postgres` system user to run the "
                    "server as (PostgreSQL refuses to run as root)")
    return None


def as_postgres() -> dict[str, Any]:
    """``subprocess.Popen`` arguments that run a child as the ``postgres`` system user when
    we are root (PostgreSQL refuses to run as root, and so do Patroni's PostgreSQL and
    PgBouncer); none otherwise."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def give_to_postgres(*paths: Path) -> None:
    """As root: the ``postgres`` user owns each of ``paths`` that exists and can reach it
    through every parent directory. Otherwise nothing (we are the server's user)."""
    if os.geteuid() != 0:
        return
    entry = pwd.getpwnam("postgres")
    for path in paths:
        if not path.exists():
            continue
        os.chown(path, entry.pw_uid, entry.pw_gid)
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)


class NativeCluster(ChildProcess):
    """A throw-away PostgreSQL cluster preloading TimescaleDB, in ``workdir``.

    ``initdb`` and ``postgres`` run as this user, or as ``postgres`` when this is root. The
    superuser ``postgres`` logs in with ``password`` over TCP on 127.0.0.1 (scram); the
    server is tuned for a throw-away cluster (no fsync).
    """

    name = "postgresql"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back sessions, then exit cleanly

    def __init__(self, workdir: Path, password: str = "postgres") -> None:
        super().__init__(workdir)
        why = native_timescaledb_available()
        if why is not None:
            raise ServerError(f"cannot start a native TimescaleDB: {why}")
        bindir = pg_bindir()
        assert bindir is not None
        self.bindir = bindir
        self.password = password
        self.port = 0
        self.datadir = workdir / "pgdata"
        self._as = as_postgres()

    def url(self, dbname: str = "postgres", user: str = "postgres",
            password: str | None = None) -> str:
        return (f"postgresql+psycopg://{user}:{password or self.password}"
                f"@127.0.0.1:{self.port}/{dbname}")

    def start(self, timeout: float = 60.0) -> NativeCluster:
        give_to_postgres(self.workdir, self.log_path)
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        give_to_postgres(pwfile)
        init = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
             f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, cwd=self.workdir, **self._as,
        )
        pwfile.unlink()
        if init.returncode != 0:
            raise ServerError(f"initdb failed:\n{init.stdout[-2000:]}{init.stderr[-2000:]}")
        for _ in range(3):
            self.port = free_port()
            self._spawn(
                [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port),
                 "-c", "listen_addresses=127.0.0.1",
                 "-c", f"unix_socket_directories={self.workdir}",
                 "-c", "shared_preload_libraries=timescaledb",
                 "-c", "timescaledb.telemetry_level=off",
                 "-c", "fsync=off", "-c", "full_page_writes=off",
                 "-c", "synchronous_commit=off", "-c", "max_connections=100"],
                **self._as,
            )
            if self._wait_ready(timeout):
                return self
            self.stop()
        raise ServerError(
            f"PostgreSQL did not get ready. Last lines of {self.log_path}:\n"
            f"{log_tail(self.log_path)}"
        )

    def _wait_ready(self, timeout: float) -> bool:
        import psycopg

        def answers() -> bool:
            try:
                psycopg.connect(host="127.0.0.1", port=self.port, user="postgres",
                                password=self.password, dbname="postgres",
                                connect_timeout=2).close()
            except psycopg.OperationalError:
                return False
            return True

        return self._wait_until(answers, timeout)


class Service(ChildProcess):
    """One of our own long-running commands (``python -m suho_mt5 ...``) as a child process,
    ready when ``127.0.0.1:ready_port`` accepts connections; SIGTERM stops it cleanly."""

    def __init__(self, workdir: Path, name: str, args: list[str], ready_port: int,
                 env: dict[str, str] | None = None) -> None:
        self.name = name
        super().__init__(workdir)
        self.args = args
        self.ready_port = ready_port
        self.env = env

    def start(self, timeout: float = 60.0) -> Service:
        import sys

        self._spawn([sys.executable, "-m", "suho_mt5", *self.args],
                    env={**os.environ, **(self.env or {})})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check()
            try:
                socket.create_connection(("127.0.0.1", self.ready_port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise ServerError(
            f"the {self.name} did not listen on port {self.ready_port} within {timeout:.0f} s. "
            f"Last lines of {self.log_path}:\n{log_tail(self.log_path)}"
        )
