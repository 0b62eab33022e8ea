"""Model-test fixtures, on each engine of the ``backend`` parametrisation.

The model tests use ``db`` (one database migrated to head per module), ``app`` (an engine acting as
``mt5_app`` on it) and ``fresh_db_url`` (a factory of empty databases).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine

from suho_mt5.db import Edition
from tests.db.models._support import role_engine
from tests.db.schema._support import Schema, migrated_schema


@pytest.fixture(scope="module")
def fresh_db_url(fresh_url: Callable[[], str]) -> Callable[[], str]:
    return fresh_url


@pytest.fixture(scope="module")
def db(fresh_db_url: Callable[[], str], lane_edition: Edition) -> Iterator[Schema]:
    with migrated_schema(fresh_db_url(), lane_edition) as migrated:
        yield migrated


@pytest.fixture(scope="module")
def app(db: Schema) -> Iterator[Engine]:
    engine = role_engine(db.url, "mt5_app")
    try:
        yield engine
    finally:
        engine.dispose()
