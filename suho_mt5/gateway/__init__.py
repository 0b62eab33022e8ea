"""The EA gateway: WebSocket and TCP/TLS endpoints where MetaTrader 5 EAs connect.

``suho-mt5 gateway run`` starts it; ``docs/gateway.md`` describes both transports, the
session, the close codes and the metrics. :mod:`suho_mt5.gateway.simulator` is an EA
simulator for tests, demos and benchmarks. This package never imports ``suho_mt5.models``.
"""

from ._auth import Authenticator, DatabaseAuthenticator, LoginLimiter, StaticAuthenticator
from ._common import CHANNELS, INBOUND_KINDS
from ._config import GatewayConfig
from ._metrics import HOPS, GatewayMetrics, signal_hop_bounds
from ._server import Gateway, run_fast, tune_gc
from .client import EAConnection, Resume, open_connection

__all__ = [
    "CHANNELS",
    "HOPS",
    "INBOUND_KINDS",
    "Authenticator",
    "DatabaseAuthenticator",
    "EAConnection",
    "Gateway",
    "GatewayConfig",
    "GatewayMetrics",
    "LoginLimiter",
    "Resume",
    "StaticAuthenticator",
    "open_connection",
    "run_fast",
    "signal_hop_bounds",
    "tune_gc",
]
