"""Tamper evidence (issue #14, build 2): chains stay whole under concurrent writers, and
``audit verify`` pinpoints each kind of tampering a superuser can do with triggers off,
the whole-chain rewrite through a digest taken before."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from suho_mt5.compliance import audit
from suho_mt5.db import Edition
from suho_mt5.errors import DigestError
from tests.db.compliance._support import (
    Db,
    audit_rows,
    create_account,
    new_tenant,
    tenant_tx,
)

pytestmark = pytest.mark.engines("postgresql", "timescale")

WRITERS = 4
TRANSACTIONS = 30  # per writer, alternating two tenants, three events each


def chain(engine: Engine, tenant: str, events: int = 6) -> None:
    with tenant_tx(engine, tenant) as conn:
        for n in range(events):
            conn.execute(sa.text(
                "INSERT INTO mt5_audit_log (event_type, payload)"
                " VALUES ('order.note', jsonb_build_object('n', CAST(:n AS int)))"), {"n": n + 1})


def tamper(db: Db, sql: str, **params: object) -> None:
    """As the superuser, with every trigger off (session_replication_role = replica)."""
    with db.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(sa.text(sql), params)


def problem(db: Db, tenant: str, since: audit.Digest | None = None) -> tuple[int, str] | None:
    (report,) = audit.verify(db.engine, tenant_id=tenant, since=since).chains
    return None if report.problem is None else (report.problem.position, report.problem.kind)


def test_concurrent_writers_keep_every_chain_whole(
    db: Db, login: Callable[[str], Engine]
) -> None:
    tenants = (new_tenant("conc"), new_tenant("conc"))
    app = login("mt5_app")
    accounts = {}
    for n, tenant in enumerate(tenants):
        with tenant_tx(app, tenant) as conn:
            accounts[tenant] = create_account(conn, user_id="writer", login=700 + n)
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(w: int) -> None:
        try:
            start.wait()
            for n in range(TRANSACTIONS):
                tenant = tenants[(w + n) % 2]
                with tenant_tx(app, tenant) as conn:
                    conn.execute(sa.text(
                        "INSERT INTO mt5_audit_log (event_type, payload) SELECT 'order.note',"
                        " jsonb_build_object('writer', CAST(:w AS int), 'n', CAST(:n AS int),"
                        " 'k', k) FROM generate_series(1, 2) k"), {"w": w, "n": n})
                    # and one the database writes: a configuration change
                    conn.execute(sa.text(
                        "INSERT INTO mt5_account_settings (account_id, name, value)"
                        " VALUES (:a, :name, :v) ON CONFLICT (tenant_id, account_id, name)"
                        " DO UPDATE SET value = EXCLUDED.value"),
                        {"a": accounts[tenant], "name": f"w{w}", "v": str(n)})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # per tenant: account.created, then WRITERS * TRANSACTIONS / 2 transactions of 3 events
    expected = 1 + WRITERS * TRANSACTIONS // 2 * 3
    for tenant in tenants:
        (report,) = audit.verify(db.engine, tenant_id=tenant).chains
        assert (report.events, report.first, report.last, report.problem) == (
            expected, 1, expected, None)
        kinds = [r.event_type for r in audit_rows(db, tenant)]
        assert kinds.count("config.changed") == WRITERS * TRANSACTIONS // 2


def test_an_edited_field_is_pinpointed(db: Db) -> None:
    tenant = new_tenant()
    chain(db.engine, tenant)
    assert problem(db, tenant) is None
    tamper(db, "UPDATE mt5_audit_log SET payload = '{\"n\": 30}' WHERE tenant_id = :t"
           " AND chain_seq = 3", t=tenant)
    assert problem(db, tenant) == (3, "edited")


def test_a_deleted_row_is_pinpointed(db: Db) -> None:
    tenant = new_tenant()
    chain(db.engine, tenant)
    tamper(db, "DELETE FROM mt5_audit_log WHERE tenant_id = :t AND chain_seq = 3", t=tenant)
    assert problem(db, tenant) == (3, "missing")


def test_two_swapped_rows_are_pinpointed(db: Db) -> None:
    tenant = new_tenant()
    chain(db.engine, tenant)
    for old, new in ((3, 1000), (4, 3), (1000, 4)):  # (tenant, position, time) is unique
        tamper(db, "UPDATE mt5_audit_log SET chain_seq = :new WHERE tenant_id = :t"
               " AND chain_seq = :old", t=tenant, old=old, new=new)
    assert problem(db, tenant) == (3, "edited")
    # Swapping the contents but keeping every seal in place breaks the same position.
    other = new_tenant()
    chain(db.engine, other)
    tamper(db, "UPDATE mt5_audit_log a SET payload = b.payload, event_type = b.event_type"
           " FROM mt5_audit_log b WHERE a.tenant_id = :t AND b.tenant_id = :t"
           " AND a.chain_seq + b.chain_seq = 9 AND a.chain_seq IN (4, 5)", t=other)
    assert problem(db, other) == (4, "edited")


def test_a_truncated_tail_is_pinpointed(db: Db) -> None:
    tenant = new_tenant()
    chain(db.engine, tenant)
    tamper(db, "DELETE FROM mt5_audit_log WHERE tenant_id = :t AND chain_seq >= 5", t=tenant)
    assert problem(db, tenant) == (5, "truncated")
    # New events continue after the recorded head: the gap stays visible.
    chain(db.engine, tenant, 1)
    assert problem(db, tenant) == (5, "missing")


def _rewrite_from(db: Db, tenant: str, position: int) -> None:
    """What a superuser can do: change one event and recompute every later hash and the
    head, so that every check inside the database passes."""
    with db.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(sa.text("UPDATE mt5_audit_log SET payload = '{\"n\": 99}'"
                             " WHERE tenant_id = :t AND chain_seq = :p"),
                     {"t": tenant, "p": position})
        last = conn.execute(sa.text("SELECT max(chain_seq) FROM mt5_audit_log"
                                    " WHERE tenant_id = :t"), {"t": tenant}).scalar_one()
        for seq in range(position, last + 1):
            conn.execute(sa.text(
                "UPDATE mt5_audit_log a SET prev_hash = coalesce((SELECT p.row_hash FROM"
                " mt5_audit_log p WHERE p.tenant_id = a.tenant_id"
                " AND p.chain_seq = a.chain_seq - 1), repeat('0', 64))"
                " WHERE a.tenant_id = :t AND a.chain_seq = :s"),
                {"t": tenant, "s": seq})
            conn.execute(sa.text(
                "UPDATE mt5_audit_log SET row_hash = mt5_audit_row_hash(tenant_id, chain_seq,"
                " prev_hash, event_id, time, recorded_at, event_type, actor, account_id, payload,"
                " app_user) WHERE tenant_id = :t AND chain_seq = :s"), {"t": tenant, "s": seq})
        conn.execute(sa.text(
            "UPDATE mt5_audit_chain_heads h SET row_hash = a.row_hash FROM mt5_audit_log a"
            " WHERE a.tenant_id = h.tenant_id AND a.chain_seq = h.chain_seq AND h.tenant_id = :t"),
            {"t": tenant})


def test_a_whole_chain_rewrite_is_caught_through_a_digest_taken_before(
    db: Db, tmp_path: Path
) -> None:
    tenant = new_tenant()
    chain(db.engine, tenant)
    digest_file = tmp_path / "digest.json"
    digest_file.write_text(audit.take_digest(db.engine, tenant_id=tenant).dumps())
    chain(db.engine, tenant, 2)  # the chain goes on after the digest
    _rewrite_from(db, tenant, 2)
    assert problem(db, tenant) is None  # nothing inside the database shows it
    digest = audit.read_digest(digest_file)
    assert problem(db, tenant, since=digest) == (6, "digest")


def test_a_digest_catches_a_tail_truncated_with_its_head(db: Db) -> None:
    tenant = new_tenant()
    chain(db.engine, tenant)
    digest = audit.take_digest(db.engine, tenant_id=tenant)
    tamper(db, "DELETE FROM mt5_audit_log WHERE tenant_id = :t AND chain_seq >= 4", t=tenant)
    tamper(db, "UPDATE mt5_audit_chain_heads h SET chain_seq = 3, row_hash = a.row_hash"
           " FROM mt5_audit_log a WHERE a.tenant_id = h.tenant_id AND a.chain_seq = 3"
           " AND h.tenant_id = :t", t=tenant)
    assert problem(db, tenant) is None
    assert problem(db, tenant, since=digest) == (4, "truncated")


def test_an_altered_digest_file_is_refused(db: Db, tmp_path: Path) -> None:
    tenant = new_tenant()
    chain(db.engine, tenant, 2)
    data = audit.take_digest(db.engine, tenant_id=tenant).as_json()
    data["heads"][0]["chain_seq"] = 1
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DigestError, match="altered"):
        audit.read_digest(path)


def test_corrections_refer_to_the_original(db: Db, login: Callable[[str], Engine]) -> None:
    tenant = new_tenant()
    chain(db.engine, tenant, 3)
    original = audit_rows(db, tenant)[1]
    position = audit.correct_event(login("mt5_compliance"), tenant, original.event_id,
                                   "wrong volume", {"volume": "0.2"})
    rows = audit_rows(db, tenant)
    assert (position, rows[-1].event_type) == (4, "audit.correction")
    assert rows[-1].payload["corrects"] == {"event_id": str(original.event_id), "chain_seq": 2,
                                            "row_hash": original.row_hash}
    assert rows[1] == original  # the original is untouched
    assert problem(db, tenant) is None


def _retention(db: Db, maintenance: Engine) -> None:
    """Retention as the edition runs it: ``CALL mt5_maintain()`` as ``mt5_maintenance``
    (postgresql), or TimescaleDB's jobs, here started by hand in the order their schedules
    keep (the daily checkpoint job, then the audit log's retention job)."""
    if db.edition is not Edition.TIMESCALE:
        with maintenance.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "CALL mt5_maintain()")
        return
    with db.engine.connect() as conn:
        auto = conn.execution_options(isolation_level="AUTOCOMMIT")
        for job in ("proc_name = 'mt5_audit_checkpoint_job'",
                    "proc_name = 'policy_retention' AND hypertable_name = 'mt5_audit_log'"):
            job_id = auto.execute(sa.text(
                f"SELECT job_id FROM timescaledb_information.jobs WHERE {job}")).scalar_one()
            auto.exec_driver_sql(f"CALL run_job({int(job_id)})")


def _old_events(conn: Connection, tenant: str, count: int) -> None:
    for n in range(count):
        conn.execute(sa.text(
            "INSERT INTO mt5_audit_log (time, tenant_id, event_type)"
            " VALUES (:when, :t, 'old.event')"),
            {"when": datetime.now(UTC) - timedelta(days=8 * 365 - n), "t": tenant})


def test_retention_keeps_the_chain_verifiable_through_a_checkpoint(
    db: Db, login: Callable[[str], Engine]
) -> None:
    tenant, late = new_tenant("ret"), new_tenant("ret")
    compliance, maintenance = login("mt5_compliance"), login("mt5_maintenance")
    with tenant_tx(compliance, None) as conn:
        _old_events(conn, tenant, 3)
    chain(db.engine, tenant, 2)
    with tenant_tx(compliance, None) as conn:  # reported late, dated 8 years back
        _old_events(conn, tenant, 1)
    chain(db.engine, tenant, 1)
    assert audit.write_checkpoints(maintenance) >= 1
    assert audit.write_checkpoints(maintenance) == 0  # nothing new expired
    # Expired after that checkpoint: retention writes the next one itself.
    chain(db.engine, late, 1)
    with tenant_tx(compliance, None) as conn:
        _old_events(conn, late, 2)
    _retention(db, maintenance)
    # 1-3 and the late 6 are gone; 8 is the checkpoint.
    assert [r.chain_seq for r in audit_rows(db, tenant)] == [4, 5, 7, 8]
    (report,) = audit.verify(db.engine, tenant_id=tenant).chains
    assert (report.ok, report.first, report.starts_after_checkpoint) == (True, 4, 3)
    checkpoint = audit_rows(db, tenant)[-1].payload
    assert (checkpoint["through_seq"], [e[0] for e in checkpoint["extra"]]) == (3, [6])
    rows = audit_rows(db, late)
    assert [(r.chain_seq, r.event_type) for r in rows] == [(1, "order.note"),
                                                           (4, "audit.checkpoint")]
    assert [e[0] for e in rows[-1].payload["extra"]] == [2, 3]
    assert problem(db, late) is None


def test_a_removed_prefix_without_a_checkpoint_is_reported(db: Db) -> None:
    tenant = new_tenant()
    chain(db.engine, tenant, 4)
    tamper(db, "DELETE FROM mt5_audit_log WHERE tenant_id = :t AND chain_seq <= 2", t=tenant)
    assert problem(db, tenant) == (1, "missing")


def _cli(db: Db, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``suho-mt5`` script, as an operator runs it."""
    script = Path(sys.executable).with_name("suho-mt5")
    return subprocess.run([str(script), *args, "--url", db.url],
                          capture_output=True, text=True, timeout=120, check=False)


def test_the_command_line_digests_verifies_and_fails_with_one_line(
    db: Db, tmp_path: Path
) -> None:
    tenant = new_tenant()
    chain(db.engine, tenant)
    digest = _cli(db, "audit", "digest", "--tenant", tenant)
    assert digest.returncode == 0, digest.stderr
    path = tmp_path / "heads.json"
    path.write_text(digest.stdout)
    _rewrite_from(db, tenant, 1)
    ok = _cli(db, "audit", "verify", "--tenant", tenant, "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True
    broken = _cli(db, "audit", "verify", "--tenant", tenant, "--since", str(path))
    assert broken.returncode == 1
    assert broken.stderr.count("\n") == 1 and broken.stderr.startswith("error: ")
    assert f"tenant {tenant}: position 6: digest" in broken.stderr
