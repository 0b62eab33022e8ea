"""pytest-alembic's model/DDL comparison on TimescaleDB (edition ``timescale``): the
hypertables, their chunk-time indexes and the aggregates' views leave nothing for
autogenerate to do. The engine's single backend gets exactly one connection."""

from __future__ import annotations

from tests.integration.models.test_ddl_match import (
    alembic_config,
    alembic_engine,
    test_model_definitions_match_ddl,
)

__all__ = ["alembic_config", "alembic_engine", "test_model_definitions_match_ddl"]
