"""Real servers for the test lanes: the TimescaleDB engine, nats-server and redis-server,
and the clustered ones of the scale-out tests (a NATS cluster, HAProxy, Patroni, PgBouncer).

They are the demo's servers (:mod:`suho_mt5.demo.servers`, :mod:`suho_mt5.demo.cluster`),
so the fixtures
(``tests/support/fixtures.py``), the benchmarks and ``suho-mt5 demo`` start them the same way.
Native PostgreSQL is started by pytest-postgresql through ``tests/support/pg_ctl_as_postgres``.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from suho_mt5.demo.cluster import (
    HAProxy,
    NatsCluster,
    PatroniCluster,
    PgBouncer,
    ProxiedService,
    ProxyServer,
    wait_until,
)
from suho_mt5.demo.servers import (
    NativeCluster,
    NatsServer,
    RedisServer,
    TimescaleEngine,
    free_port,
    make_workdir,
)
from suho_mt5.errors import ServerError

__all__ = [
    "REPO_ROOT",
    "HAProxy",
    "NativeCluster",
    "NatsCluster",
    "NatsServer",
    "PatroniCluster",
    "PgBouncer",
    "ProxiedService",
    "ProxyServer",
    "RedisServer",
    "ServerError",
    "TimescaleEngine",
    "free_port",
    "make_workdir",
    "serving",
    "wait_until",
]

REPO_ROOT = Path(__file__).resolve().parents[2]


_P = TypeVar("_P", bound=Any)


@contextlib.contextmanager
def serving(make: Callable[[Path], _P], prefix: str) -> Iterator[_P]:
    """``make(workdir)`` started in a private directory, stopped and removed after."""
    workdir = make_workdir(prefix)
    server = make(workdir)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
