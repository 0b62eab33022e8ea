"""Real servers for the test lanes: the TimescaleDB engine and nats-server, and the
clustered ones of the scale-out tests (a NATS cluster, HAProxy, Patroni, PgBouncer).

They are the demo's servers (:mod:`suho_mt5.demo.servers`, :mod:`suho_mt5.demo.cluster`),
so the fixtures
(``tests/support/fixtures.py``), the benchmarks and ``suho-mt5 demo`` start them the same way.
Native PostgreSQL is started by pytest-postgresql through ``tests/support/pg_ctl_as_postgres``.
"""

from __future__ import annotations

from pathlib import Path

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
    "ServerError",
    "TimescaleEngine",
    "free_port",
    "make_workdir",
    "wait_until",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
