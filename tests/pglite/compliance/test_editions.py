"""Revision 0011 on the TimescaleDB editions (the TimescaleDB engine): it undoes exactly
what it does, and retention (TimescaleDB's job, or ``drop_chunks`` through
``mt5_maintain()`` on apache) leaves a checkpoint so the audit chain still verifies.

The engine is one superuser backend: roles are switched with SET ROLE here, which is fine
for retention, not for privilege tests (those run on real servers, with logins).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from suho_mt5.compliance import audit
from suho_mt5.db import Edition, make_engine
from tests.db.compliance.test_migration import BEFORE
from tests.db.schema._support import alembic, catalog_snapshot, session
from tests.support.servers import TimescaleEngine

TENANT = "tenant_retention"


def _old_and_new_events(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_audit_log (time, tenant_id, event_type)"
            " SELECT now() - interval '8 years' + n * interval '1 day', :t, 'old.event'"
            " FROM generate_series(1, 3) n"), {"t": TENANT})
        conn.execute(sa.text(
            "INSERT INTO mt5_audit_log (tenant_id, event_type) VALUES (:t, 'new.event')"),
            {"t": TENANT})


def _retention_leaves_a_verifiable_chain(engine: Engine, edition: Edition) -> None:
    _old_and_new_events(engine)
    with engine.connect() as conn:
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        if edition is Edition.TIMESCALE:
            for job in ("proc_name = 'mt5_audit_checkpoint_job'",
                        "proc_name = 'policy_retention' AND hypertable_name = 'mt5_audit_log'"):
                job_id = auto.execute(sa.text(
                    f"SELECT job_id FROM timescaledb_information.jobs WHERE {job}")).scalar_one()
                auto.exec_driver_sql(f"CALL run_job({int(job_id)})")
        else:
            auto.exec_driver_sql("SET ROLE mt5_maintenance")
            auto.exec_driver_sql("CALL mt5_maintain()")
            auto.exec_driver_sql("RESET ROLE")
        kinds = [r[0] for r in auto.execute(sa.text(
            "SELECT event_type FROM mt5_audit_log WHERE tenant_id = :t ORDER BY chain_seq"),
            {"t": TENANT})]
    assert kinds == ["new.event", "audit.checkpoint"]
    (report,) = audit.verify(engine, tenant_id=TENANT).chains
    assert (report.ok, report.first, report.starts_after_checkpoint) == (True, 4, 3)


@pytest.mark.parametrize("edition", [Edition.TIMESCALE, Edition.APACHE])
def test_0011_on_timescaledb(
    start_timescale_engine: Callable[[], TimescaleEngine], edition: Edition
) -> None:
    engine = make_engine(start_timescale_engine().url)
    try:
        alembic(engine, "upgrade", str(BEFORE), edition=edition)
        with session(engine) as conn:
            before = catalog_snapshot(conn)
        alembic(engine, "upgrade", "0011", edition=edition)
        with session(engine) as conn:
            head = catalog_snapshot(conn)
            jobs = conn.execute(sa.text(
                "SELECT owner::text FROM timescaledb_information.jobs"
                " WHERE proc_name = 'mt5_audit_checkpoint_job'")).scalars().all()
        assert jobs == (["mt5_owner"] if edition is Edition.TIMESCALE else [])
        alembic(engine, "downgrade", str(BEFORE), edition=edition)
        with session(engine) as conn:
            assert catalog_snapshot(conn) == before
            assert conn.execute(sa.text(
                "SELECT count(*) FROM timescaledb_information.jobs"
                " WHERE proc_name = 'mt5_audit_checkpoint_job'")).scalar_one() == 0
        alembic(engine, "upgrade", "0011", edition=edition)
        with session(engine) as conn:
            assert catalog_snapshot(conn) == head
        _retention_leaves_a_verifiable_chain(engine, edition)
    finally:
        engine.dispose()
