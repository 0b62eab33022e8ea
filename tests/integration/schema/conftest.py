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
    alembic,
    schema_engine,
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
    url = fresh_url()
    engine = schema_engine(url)
    try:
        alembic(engine, "upgrade", "head")
        yield Schema(url=url, engine=engine, edition=lane_edition)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def seeded(schema: Schema) -> dict[str, TenantData]:
    return seed_two_tenants(schema.engine)
