"""Model-test fixtures for the TimescaleDB lane (edition ``timescale``).

Same fixture names as ``tests/integration/models/conftest.py``, so the shared model tests
run unchanged here. The engine holds one database: ``db`` starts one engine per module and
``fresh_db_url`` starts another for each call (~1.5 s each).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.engine import Engine

from suho_mt5.db import Edition
from tests.integration.models._support import role_engine
from tests.integration.schema._support import Schema, migrated_schema
from tests.support.servers import TimescaleEngine


@pytest.fixture(scope="module")
def fresh_db_url(start_timescale_engine: Callable[[], TimescaleEngine]) -> Callable[[], str]:
    return lambda: start_timescale_engine().url


@pytest.fixture(scope="module")
def db(fresh_db_url: Callable[[], str]) -> Iterator[Schema]:
    with migrated_schema(fresh_db_url(), Edition.TIMESCALE) as migrated:
        yield migrated


@pytest.fixture(scope="module")
def app(db: Schema) -> Iterator[Engine]:
    engine = role_engine(db.url, "mt5_app")
    try:
        yield engine
    finally:
        engine.dispose()
