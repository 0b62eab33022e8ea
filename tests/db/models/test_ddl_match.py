"""pytest-alembic's model/DDL comparison: autogenerate finds nothing to do after
``upgrade head`` on an empty database (native PostgreSQL, edition ``postgresql``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pytest_alembic.config import Config
from pytest_alembic.tests import test_model_definitions_match_ddl
from sqlalchemy.engine import Connection

from suho_mt5.db import Edition
from tests.db.models._support import alembic_test_config
from tests.db.schema._support import schema_engine

__all__ = ["test_model_definitions_match_ddl"]


@pytest.fixture
def alembic_config(lane_edition: Edition) -> Config:
    return alembic_test_config(lane_edition)


@pytest.fixture
def alembic_engine(fresh_db_url: Callable[[], str]) -> Iterator[Connection]:
    # A connection, not an engine: env.py hands it to Alembic as is.
    engine = schema_engine(fresh_db_url())
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()
