"""Schema fixtures for the native PostgreSQL lane (edition ``postgresql``).

The shared schema tests (``test_*.py`` here, also imported by ``tests/timescale/schema``)
use three fixtures every lane defines: ``fresh_url`` (a factory of empty databases),
``schema`` (one database migrated to head per module) and ``seeded`` (``schema`` with two
tenants' data).
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


@pytest.fixture(scope="session")
def fresh_url(make_pg_database: Callable[[], str]) -> Callable[[], str]:
    return make_pg_database


@pytest.fixture(scope="session")
def lane_edition() -> Edition:
    return Edition.POSTGRESQL


@pytest.fixture(scope="module")
def schema(fresh_url: Callable[[], str], lane_edition: Edition) -> Iterator[Schema]:
    with migrated_schema(fresh_url(), lane_edition) as migrated:
        yield migrated


@pytest.fixture(scope="module")
def seeded(schema: Schema) -> dict[str, TenantData]:
    return seed_two_tenants(schema.engine)
