"""Revision 0011 undoes exactly what it does (the functions of 0004 it replaces come back
byte for byte), and the models match what it builds."""

from __future__ import annotations

import pytest

from suho_mt5.db import make_engine
from suho_mt5.migrations.drift import check_drift
from tests.integration.compliance.conftest import Lane
from tests.integration.schema._support import alembic, catalog_snapshot, session

pytestmark = pytest.mark.integration


def test_0011_down_and_up_again_rebuild_the_same_catalog(lane: Lane) -> None:
    edition = lane.edition
    engine = make_engine(lane.fresh_database())
    try:
        alembic(engine, "upgrade", "0008", edition=edition)
        with session(engine) as conn:
            before = catalog_snapshot(conn)
        alembic(engine, "upgrade", "0011", edition=edition)
        with session(engine) as conn:
            head = catalog_snapshot(conn)
            assert check_drift(conn) == []
        assert head != before
        alembic(engine, "downgrade", "0008", edition=edition)
        with session(engine) as conn:
            assert catalog_snapshot(conn) == before
        alembic(engine, "upgrade", "0011", edition=edition)
        with session(engine) as conn:
            assert catalog_snapshot(conn) == head
    finally:
        engine.dispose()
