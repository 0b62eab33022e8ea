"""Upgrade, downgrade, and upgrade again: nothing left behind, nothing different.

Shared by both server lanes (``tests/timescale/schema`` imports this module's tests), with
pytest-alembic's built-in tests run against a fresh database of the lane.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from pytest_alembic.tests import (  # noqa: F401  (collected here)
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy.engine import Connection

from suho_mt5.db import Edition
from tests.db.schema._support import (
    ALEMBIC_INI,
    ALL_ROLES,
    ALL_TABLES,
    alembic,
    catalog_snapshot,
    leftovers,
    schema_engine,
    session,
)


@pytest.fixture
def alembic_config(lane_edition: Edition) -> Config:
    config = Config(str(ALEMBIC_INI))
    config.attributes["suho_edition"] = lane_edition
    return config


@pytest.fixture
def alembic_engine(fresh_url: Callable[[], str]) -> Iterator[Connection]:
    # A connection rather than an engine: env.py hands config.attributes["connection"] to
    # Alembic as is, and Alembic accepts only connections there.
    engine = schema_engine(fresh_url())
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def test_up_down_up_leaves_nothing_and_rebuilds_the_same_catalog(
    fresh_url: Callable[[], str], lane_edition: Edition
) -> None:
    engine = schema_engine(fresh_url())
    try:
        alembic(engine, "upgrade", "head")
        with session(engine) as conn:
            first = catalog_snapshot(conn)
            edition = conn.execute(sa.text("SELECT mt5_schema_edition()")).scalar_one()
        assert edition == lane_edition.value
        assert {r[0] for r in first["relations"] if r[1] in ("r", "p")} >= set(ALL_TABLES)
        assert [r[0] for r in first["roles"]] == sorted(ALL_ROLES)

        alembic(engine, "downgrade", "base")
        with session(engine) as conn:
            assert leftovers(conn) == []
            assert catalog_snapshot(conn)["policies"] == []
            if lane_edition.has_hypertables:
                acl = conn.execute(sa.text(
                    "SELECT nspacl::text FROM pg_namespace WHERE nspname = '_timescaledb_internal'"
                )).scalar_one()
                assert "=U/" in acl  # PUBLIC's USAGE is given back

        alembic(engine, "upgrade", "head")
        with session(engine) as conn:
            second = catalog_snapshot(conn)
        for key in first:
            assert second[key] == first[key], key
    finally:
        engine.dispose()


def test_every_revision_steps_down_and_up_again(fresh_url: Callable[[], str]) -> None:
    """Each revision's downgrade undoes exactly its upgrade, one step at a time, down to the
    init revision (whose downgrade the up/down/up test covers)."""
    revisions = list(ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).walk_revisions())
    engine = schema_engine(fresh_url())
    try:
        alembic(engine, "upgrade", "head")
        snapshots: list[dict[str, Any]] = []
        for _ in range(len(revisions) - 1):
            with session(engine) as conn:
                snapshots.append(catalog_snapshot(conn))
            alembic(engine, "downgrade", "-1")
        for expected in reversed(snapshots):
            alembic(engine, "upgrade", "+1")
            with session(engine) as conn:
                got = catalog_snapshot(conn)
            for key in expected:
                assert got[key] == expected[key], key
    finally:
        engine.dispose()
