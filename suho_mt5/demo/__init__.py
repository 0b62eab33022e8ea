"""``suho-mt5 demo``: the seed's whole data flow on servers it starts itself.

:func:`run_demo` starts nats-server and a database (the native TimescaleDB ``make setup``
installs, the PGlite engine, or a database given by URL), migrates it, creates two tenants,
runs the Data Bridge and the gateway as processes, drives simulated EAs over real sockets,
publishes signals they execute and close, and returns what it measured
(:mod:`suho_mt5.demo.report`). :mod:`suho_mt5.demo.servers` starts the servers; the test
fixtures use it too.
"""

from suho_mt5.demo.run import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
