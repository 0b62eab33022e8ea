"""pytest-alembic's model/DDL comparison on TimescaleDB (edition ``timescale``): the
hypertables, their chunk-time indexes and the aggregates' views leave nothing for
autogenerate to do. The engine's single backend gets exactly one connection."""

from __future__ import annotations

import pytest
from pytest_alembic.config import Config

from suho_mt5.db import Edition
from tests.integration.models._support import alembic_test_config
from tests.integration.models.test_ddl_match import (
    alembic_engine,
    test_model_definitions_match_ddl,
)

__all__ = ["alembic_config", "alembic_engine", "test_model_definitions_match_ddl"]


@pytest.fixture
def alembic_config() -> Config:
    return alembic_test_config(Edition.TIMESCALE)
