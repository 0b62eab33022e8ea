"""Cache fixtures: the ingest lanes' databases (native PostgreSQL and native TimescaleDB,
``db_lane``), a nats-server per test, the session's redis-server, and the logins the cache
uses: a tenant login (``mt5_app``) for the read API's fallback and a maintenance login
(``mt5_maintenance``, ``BYPASSRLS``) for rebuilds."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.integration.ingest._support import IngestDb, libpq
from tests.integration.ingest.conftest import (  # noqa: F401  (fixtures used here)
    db_lane,
    ingest_db,
    ingest_template,
    nats,
)

APP_LOGIN = "suho_cache_app_test"
MAINTENANCE_LOGIN = "suho_cache_maint_test"
PASSWORD = "cache-pw"


def _login(admin_url: str, name: str, role: str, extra: str = "") -> str:
    with psycopg.connect(libpq(admin_url), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
            with contextlib.suppress(psycopg.errors.DuplicateObject):
                conn.execute(f"CREATE ROLE {name} LOGIN {extra} PASSWORD '{PASSWORD}'"
                             f" IN ROLE {role}")
    return make_url(admin_url).set(username=name, password=PASSWORD).render_as_string(
        hide_password=False)


@dataclass
class CacheDb:
    """An ingest database and the cache's logins on it."""

    db: IngestDb
    app_url: str
    maintenance_url: str


@pytest.fixture
def cache_db(ingest_db: IngestDb) -> CacheDb:  # noqa: F811
    return CacheDb(ingest_db, _login(ingest_db.admin_url, APP_LOGIN, "mt5_app"),
                   _login(ingest_db.admin_url, MAINTENANCE_LOGIN, "mt5_maintenance",
                          "BYPASSRLS"))
