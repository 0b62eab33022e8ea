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

from suho_mt5.demo.cluster._common import kill_tree, wait_until
from suho_mt5.demo.cluster._haproxy import HAProxy, ProxiedService, ProxyServer
from suho_mt5.demo.cluster._nats import NatsCluster, NatsNode
from suho_mt5.demo.cluster._patroni import Etcd, PatroniCluster, PatroniNode
from suho_mt5.demo.cluster._pgbouncer import PgBouncer

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
