"""Revision 0011 undoes exactly what it does (the functions of earlier revisions it
replaces come back byte for byte), and the models match what it builds."""

from __future__ import annotations

from alembic.config import Config
from alembic.script import ScriptDirectory

from suho_mt5.db import make_engine
from suho_mt5.migrations.drift import check_drift
from tests.db.conftest import Backend
from tests.db.schema._support import ALEMBIC_INI, alembic, catalog_snapshot, session

# Whatever 0011 follows (revisions are re-chained when branches merge).
BEFORE = ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_revision("0011").down_revision




def test_0011_down_and_up_again_rebuild_the_same_catalog(backend: Backend) -> None:
    edition = backend.edition
    engine = make_engine(backend.fresh_url())
    try:
        alembic(engine, "upgrade", str(BEFORE), edition=edition)
        with session(engine) as conn:
            before = catalog_snapshot(conn)
        alembic(engine, "upgrade", "0011", edition=edition)
        with session(engine) as conn:
            head = catalog_snapshot(conn)
        assert head != before
        alembic(engine, "downgrade", str(BEFORE), edition=edition)
        with session(engine) as conn:
            assert catalog_snapshot(conn) == before
        alembic(engine, "upgrade", "0011", edition=edition)
        with session(engine) as conn:
            assert catalog_snapshot(conn) == head
        # The models describe the newest revision.
        alembic(engine, "upgrade", "head", edition=edition)
        with session(engine) as conn:
            assert check_drift(conn) == []
    finally:
        engine.dispose()
