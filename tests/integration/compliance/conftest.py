"""Fixtures of the compliance tests: a database migrated to head, and engines that log in
as a fresh LOGIN member of a role (never ``SET ROLE`` from a superuser session).

The URL fixture is the lane: ``pg_url``/``make_pg_database`` (native PostgreSQL, edition
``postgresql``) today; the native TimescaleDB lane swaps in its own factory and edition.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine

from suho_mt5.db import Edition
from tests.integration.compliance._support import Db, migrate, role_login

#: The lane: a factory of fresh empty databases and the edition to build on them.
LANE_EDITION = Edition.POSTGRESQL


@pytest.fixture(scope="module")
def fresh_database(make_pg_database: Callable[[], str]) -> Callable[[], str]:
    return make_pg_database


@pytest.fixture(scope="module")
def db(fresh_database: Callable[[], str]) -> Iterator[Db]:
    """One database migrated to head per test module (tests use tenants of their own)."""
    with migrate(fresh_database(), LANE_EDITION) as migrated:
        yield migrated


@pytest.fixture(scope="module")
def login(db: Db) -> Iterator[Callable[[str], Engine]]:
    """``login(role)``: an engine logging in as a LOGIN member of ``role`` (one per role
    and module)."""
    engines: dict[str, Engine] = {}

    def make(role: str) -> Engine:
        if role not in engines:
            engines[role] = role_login(db, role)
        return engines[role]

    yield make
    for engine in engines.values():
        engine.dispose()
    with db.engine.begin() as conn:  # roles are the cluster's: leave none behind
        for engine in engines.values():
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {engine.url.username}")
