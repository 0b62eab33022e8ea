"""Shared by the model tests of both server lanes (native PostgreSQL, the TimescaleDB
engine). Migrations, roles and two tenants' data come from the schema tests' helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from pytest_alembic.config import Config as PytestAlembicConfig
from sqlalchemy.engine import Engine

from suho_mt5.db import Edition, TenantSession, tenant_session
from tests.integration.schema._support import ALEMBIC_INI, schema_engine

__all__ = ["alembic_test_config", "role_engine", "tenant"]


def alembic_test_config(edition: Edition | None = None) -> PytestAlembicConfig:
    """pytest-alembic's configuration: this repository's ``alembic.ini`` (for ``edition``)."""
    config = AlembicConfig(str(ALEMBIC_INI))
    if edition is not None:
        config.attributes["suho_edition"] = edition
    return PytestAlembicConfig(alembic_config=config)


def role_engine(url: str, role: str, **kwargs: Any) -> Engine:
    """An engine whose every connection acts as ``role`` (the fixtures' URLs are a
    superuser's, and superusers bypass row-level security)."""
    engine = schema_engine(url, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _set_role(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cur:
            cur.execute(f"SET ROLE {role}")
        dbapi_connection.commit()

    return engine


@contextmanager
def tenant(engine: Engine, tenant_id: str, **kwargs: Any) -> Iterator[TenantSession]:
    """A tenant session that commits on success and is always closed."""
    with tenant_session(engine, tenant_id, **kwargs) as session, session.begin():
        yield session
