"""Fixtures of the compliance tests: one database per backend migrated to head, and
engines that log in as a LOGIN member of a role (never ``SET ROLE`` from a superuser).

The tests run on the native servers of the ``backend`` parametrisation (plain PostgreSQL
and TimescaleDB 2.28): they need logins and several connections, which the PGlite engine
has not (``tests/pglite/compliance`` covers the revision there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine

from tests.db.compliance._support import Db, migrate
from tests.db.conftest import Backend
from tests.db.schema._support import login_engine


@pytest.fixture(scope="session")
def db(backend: Backend) -> Iterator[Db]:
    """One database per backend migrated to head, shared by every compliance test: each
    test writes under tenants of its own and checks only those."""
    with migrate(backend.fresh_url(), backend.edition) as migrated:
        yield migrated


@pytest.fixture(scope="session")
def login(db: Db) -> Callable[[str], Engine]:
    """``login(role)``: an engine that logs in as the test login of ``role`` (tenant logins
    have ``search_path = mt5_tenant, public``, as docs/schema.md tells DBAs)."""

    def make(role: str) -> Engine:
        return login_engine(db.engine, role)

    return make
