"""Model-test fixtures for the native PostgreSQL lane (edition ``postgresql``).

The shared model tests (``test_*.py`` here, also imported by ``tests/timescale/models``)
use ``db`` (one database migrated to head per module), ``app`` (an engine acting as
``mt5_app`` on it) and ``fresh_db_url`` (a factory of empty databases).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine

from suho_mt5.db import Edition
from tests.integration.models._support import role_engine
from tests.integration.schema._support import Schema, migrated_schema


@pytest.fixture(scope="module")
def fresh_db_url(make_pg_database: Callable[[], str]) -> Callable[[], str]:
    return make_pg_database


@pytest.fixture(scope="module")
def db(fresh_db_url: Callable[[], str]) -> Iterator[Schema]:
    with migrated_schema(fresh_db_url(), Edition.POSTGRESQL) as migrated:
        yield migrated


@pytest.fixture(scope="module")
def app(db: Schema) -> Iterator[Engine]:
    engine = role_engine(db.url, "mt5_app")
    try:
        yield engine
    finally:
        engine.dispose()
