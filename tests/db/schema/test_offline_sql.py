"""Offline SQL for the postgresql edition, applied with ``psql -f`` in order, builds the same
catalog as ``alembic upgrade head``. (The committed schemas/ files, timescale edition, are
applied on TimescaleDB by tests/db/schema/test_schema_files.py.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from suho_mt5.db import Edition
from suho_mt5.migrations.operations import render_schema_files
from tests.db.schema._support import (
    ALEMBIC_INI,
    alembic,
    catalog_snapshot,
    psql_apply,
    schema_engine,
    session,
)

pytestmark = pytest.mark.engines("postgresql")



def test_offline_scripts_build_what_online_migrations_build(
    fresh_url: Callable[[], str], tmp_path: Path
) -> None:
    files = []
    for name, text in render_schema_files(ALEMBIC_INI, Edition.POSTGRESQL).items():
        (tmp_path / name).write_text(text)
        files.append(tmp_path / name)
    offline_url, online_url = fresh_url(), fresh_url()
    psql_apply(offline_url, files)
    offline, online = schema_engine(offline_url), schema_engine(online_url)
    try:
        alembic(online, "upgrade", "heads")
        with session(offline) as conn:
            built = catalog_snapshot(conn)
            health = dict(conn.execute(sa.text("SELECT component, status FROM health_check()")
                                       ).all())
            stamped = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        with session(online) as conn:
            expected = catalog_snapshot(conn)
            head = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        offline.dispose()
        online.dispose()
    assert stamped == head
    # login_roles (revision 0014) warns about the test servers' trust rules: by design
    assert {v for k, v in health.items() if k != "login_roles"} == {"ok"}, health
    for key in expected:
        if key == "catalog":  # last_refresh_at differs; the rest is compared
            continue
        assert built[key] == expected[key], key
