"""Schema fixtures for the TimescaleDB engine lane (edition ``timescale``).

Same fixture names as ``tests/integration/schema/conftest.py`` so the shared schema tests
run here too. The engine holds one database: a fresh database is a fresh engine process
(about a second to start), so ``schema`` is one engine per test module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from suho_mt5.db import Edition
from tests.integration.schema._support import (
    Schema,
    TenantData,
    migrated_schema,
    seed_two_tenants,
)
from tests.support.servers import TimescaleEngine


@pytest.fixture(scope="session")
def fresh_url(start_timescale_engine: Callable[[], TimescaleEngine]) -> Callable[[], str]:
    def make() -> str:
        return start_timescale_engine().url

    return make


@pytest.fixture(scope="session")
def lane_edition() -> Edition:
    return Edition.TIMESCALE


@pytest.fixture(scope="module")
def schema(fresh_url: Callable[[], str], lane_edition: Edition) -> Iterator[Schema]:
    with migrated_schema(fresh_url(), lane_edition) as migrated:
        yield migrated


@pytest.fixture(scope="module")
def seeded(schema: Schema) -> dict[str, TenantData]:
    return seed_two_tenants(schema.engine)
