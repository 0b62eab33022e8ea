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
from tests.db.schema._support import (
    ALEMBIC_INI,
    ensure_login,
    is_single_backend,
    login_url,
    schema_engine,
)

__all__ = ["alembic_test_config", "role_engine", "tenant"]


def alembic_test_config(edition: Edition) -> PytestAlembicConfig:
    """pytest-alembic's configuration: this repository's ``alembic.ini``, for ``edition``."""
    config = AlembicConfig(str(ALEMBIC_INI))
    config.attributes["suho_edition"] = edition
    return PytestAlembicConfig(alembic_config=config)


def role_engine(url: str, role: str, **kwargs: Any) -> Engine:
    """An engine whose every connection acts as ``role``: a LOGIN member of it on a native
    server, ``SET ROLE`` on the single-backend PGlite engine (which has no logins)."""
    if not is_single_backend(url):
        admin = schema_engine(url)
        try:
            ensure_login(admin, role)
        finally:
            admin.dispose()
        return schema_engine(login_url(url, role).render_as_string(hide_password=False), **kwargs)
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
