"""PgBouncer in front of one PostgreSQL server."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from suho_mt5.demo.cluster._common import (
    find_executable,
    port_open,
    start_retrying,
    wait_until,
)
from suho_mt5.demo.servers import ChildProcess, as_postgres, free_port, give_to_postgres

__all__ = ["PgBouncer"]


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
        self.executable = find_executable("pgbouncer", "pgbouncer")
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
        def attempt() -> None:
            self.port = free_port()
            self.config_path.write_text(self._config())
            give_to_postgres(self.workdir, self.config_path, self.auth_path)
            self._spawn([self.executable, str(self.config_path)], **as_postgres())
            wait_until("pgbouncer to listen", partial(port_open, self.port), timeout,
                       self.check)

        start_retrying(attempt, self.stop, attempts)
        return self

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
