"""The committed schemas/*.sql (timescale edition) apply with ``psql -f`` in order on a
TimescaleDB engine, and build the same catalog as ``alembic upgrade`` to the same revision."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from suho_mt5.migrations.operations import SCHEMA_FILES
from tests.db.schema._support import (
    REPO_ROOT,
    alembic,
    catalog_snapshot,
    psql_apply,
    schema_engine,
    session,
)

pytestmark = pytest.mark.engines("timescale", "pglite")



def test_the_schema_files_apply_in_order_with_psql(fresh_url: Callable[[], str]) -> None:
    files = [REPO_ROOT / "schemas" / f.name for f in SCHEMA_FILES]
    last = re.findall(r"version_num='(\w+)'", files[-1].read_text())[-1]
    offline_url = fresh_url()
    psql_apply(offline_url, files)
    offline = schema_engine(offline_url)
    online = schema_engine(fresh_url())
    try:
        alembic(online, "upgrade", last)
        with session(offline) as conn:
            built = catalog_snapshot(conn)
            health = dict(conn.execute(sa.text("SELECT component, status FROM health_check()")
                                       ).all())
            hypertables = conn.execute(sa.text(
                "SELECT count(*) FROM timescaledb_information.hypertables")).scalar_one()
        with session(online) as conn:
            expected = catalog_snapshot(conn)
    finally:
        offline.dispose()
        online.dispose()
    # login_roles (revision 0014) warns about the test servers' trust rules: by design
    assert {v for k, v in health.items() if k != "login_roles"} == {"ok"}, health
    assert hypertables == 8
    for key in expected:
        assert built[key] == expected[key], key

