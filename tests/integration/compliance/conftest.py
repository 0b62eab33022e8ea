"""Fixtures of the compliance tests: a database migrated to head, and engines that log in
as a fresh LOGIN member of a role (never ``SET ROLE`` from a superuser session).

Every test here runs on both native servers: plain PostgreSQL (edition ``postgresql``)
and TimescaleDB 2.28 (edition ``timescale``), through the module-scoped ``lane``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from suho_mt5.db import Edition
from tests.integration.compliance._support import Db, migrate, role_login


@dataclass(frozen=True)
class Lane:
    """A native server: a factory of fresh empty databases and the edition to build."""

    name: str
    fresh_database: Callable[[], str]
    edition: Edition


_LANES = {"postgresql": ("make_pg_database", Edition.POSTGRESQL),
          "timescale": ("make_ts_database", Edition.TIMESCALE)}


@pytest.fixture(scope="session", params=sorted(_LANES))
def lane(request: pytest.FixtureRequest) -> Lane:
    factory, edition = _LANES[request.param]
    return Lane(request.param, request.getfixturevalue(factory), edition)


@pytest.fixture(scope="session")
def db(lane: Lane) -> Iterator[Db]:
    """One database per lane migrated to head, shared by every compliance test: each
    test writes under tenants of its own and checks only those."""
    with migrate(lane.fresh_database(), lane.edition) as migrated:
        yield migrated


def _usable(engine: Engine) -> str | None:
    """Why a login of a role cannot work on this server yet, or None."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1 FROM mt5_user_accounts LIMIT 0"))
            conn.execute(sa.text("SELECT 1 FROM mt5_trade_orders LIMIT 0"))
    except sa.exc.DBAPIError as exc:
        message = str(exc.orig).splitlines()[0]
        if "_timescaledb_internal" in message:
            return message
    return None


@pytest.fixture(scope="module")
def login(db: Db) -> Iterator[Callable[[str], Engine]]:
    """``login(role)``: an engine logging in as a LOGIN member of ``role`` (one per role
    and module).

    On native TimescaleDB, tenant and service roles fail every query until the tenant
    views of issue #8 replace row-level security on hypertables (revision 0009): the tests
    that need a role's login skip there, naming the server's error, and run by themselves
    once that lands."""
    engines: dict[str, Engine] = {}
    unusable: dict[str, str | None] = {}

    def make(role: str) -> Engine:
        if role not in engines:
            engines[role] = role_login(db, role)
            probe = db.edition is Edition.TIMESCALE and role != "mt5_owner"
            unusable[role] = _usable(engines[role]) if probe else None
        if unusable[role]:
            pytest.skip(f"native TimescaleDB, {role}: {unusable[role]} (issue #8)")
        return engines[role]

    yield make
    for engine in engines.values():
        engine.dispose()
    with db.engine.begin() as conn:  # roles are the cluster's: leave none behind
        for engine in engines.values():
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {engine.url.username}")
