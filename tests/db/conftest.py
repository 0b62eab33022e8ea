"""One parametrised ``backend`` fixture: every test under ``tests/db`` runs on each engine.

========== =============================================== ===============
backend    server                                          lane (marker)
========== =============================================== ===============
postgresql native PostgreSQL 15, edition ``postgresql``    ``integration``
timescale  native TimescaleDB 2.28 (preloaded, TSL)        ``timescale``
pglite     the PGlite TimescaleDB engine (one backend)     ``pglite``
========== =============================================== ===============

A test written once runs on all three. ``@pytest.mark.engines("timescale", "pglite")``
keeps it to some of them; tests of roles through their own logins are for the native
servers only, since the PGlite engine has one superuser backend and no logins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from suho_mt5.db import Edition
from tests.db.schema._support import (
    Schema,
    TenantData,
    migrated_schema,
    register_edition,
    seed_two_tenants,
)
from tests.support.servers import TimescaleEngine

#: Engines that log in as real roles (the PGlite engine switches with SET ROLE instead).
NATIVE = ("postgresql", "timescale")


@dataclass(frozen=True)
class Backend:
    """One engine of the parametrisation: its name, edition and a factory of empty databases."""

    name: str
    edition: Edition
    fresh_url: Callable[[], str]

    @property
    def native(self) -> bool:
        return self.name in NATIVE


@pytest.fixture(
    scope="session",
    params=[
        pytest.param("postgresql", marks=pytest.mark.integration),
        pytest.param("timescale", marks=pytest.mark.timescale),
        pytest.param("pglite", marks=pytest.mark.pglite),
    ],
)
def backend(
    request: pytest.FixtureRequest,
    make_pg_database: Callable[[], str],
    make_ts_database: Callable[[], str],
    start_timescale_engine: Callable[[], TimescaleEngine],
) -> Backend:
    # The factories are plain arguments, not getfixturevalue() calls: a session fixture
    # fetched dynamically is finalized with this parametrised one, which stopped the
    # PostgreSQL server under later tests. Each server starts when first asked for a database.
    name: str = request.param
    if name == "postgresql":
        make = make_pg_database
        edition = Edition.POSTGRESQL
    elif name == "timescale":
        make = make_ts_database
        edition = Edition.TIMESCALE
    else:

        def make() -> str:
            return start_timescale_engine().url

        edition = Edition.TIMESCALE

    def fresh_url() -> str:
        return register_edition(make(), edition)

    return Backend(name, edition, fresh_url)


@pytest.fixture(scope="session")
def fresh_url(backend: Backend) -> Callable[[], str]:
    """Factory of empty databases on the backend (a fresh engine process on PGlite)."""
    return backend.fresh_url


@pytest.fixture(scope="session")
def lane_edition(backend: Backend) -> Edition:
    return backend.edition


@pytest.fixture(scope="module")
def schema(fresh_url: Callable[[], str], lane_edition: Edition) -> Iterator[Schema]:
    with migrated_schema(fresh_url(), lane_edition) as migrated:
        yield migrated


@pytest.fixture(scope="module")
def seeded(schema: Schema) -> dict[str, TenantData]:
    return seed_two_tenants(schema.engine)


@pytest.fixture
def native_only(backend: Backend) -> None:
    """Skip on the PGlite engine (for tests that need logins or several connections)."""
    if not backend.native:
        pytest.skip("needs a native server (logins, several connections)")
