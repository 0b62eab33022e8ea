"""``suho-mt5 demo --database-url``: the same run against a database it did not start (here
plain PostgreSQL 15, the ``postgresql`` edition), leaving its logins dropped and no process
running."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.demo import DemoProcess

pytestmark = pytest.mark.timeout(300)


def test_demo_against_a_given_postgresql(pg_url: str, tmp_path: Path) -> None:
    demo = DemoProcess(["--database-url", pg_url, "--edition", "postgresql", "--duration", "8",
                        "--accounts-per-tenant", "2", "--json"], tmp_path).start()
    code, out = demo.finish(timeout=240)
    assert code == 0, demo.stderr()
    report = demo.report(out)
    assert report["engine"] == "external"
    assert "postgresql" not in report["pids"]  # it used the given server, started none
    assert report["stored"]["exactly_once"] and report["stored"]["total"] > 0
    sig = report["signals"]
    assert sig["published"] > 0 and sig["trades_closed"] == sig["published"]
    tenants = list(report["tenants"])
    assert all(t.startswith(("demo-alpha-", "demo-beta-")) for t in tenants)  # no collisions
    answers = report["seed_queries"][tenants[0]]
    assert sum(r["trades"] for r in answers["weekly_pnl"]) > 0  # materialized, then refreshed
    assert report["isolation"]["other_tenant_quotes"] == 0
    assert report["isolation"]["public_base_table"] == "permission denied"
    assert demo.leftovers() == []
    url = make_url(pg_url)
    with psycopg.connect(host=url.host, port=url.port, user=url.username,
                         password=url.password, dbname=url.database) as conn:
        left = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'suho_demo_%'"
                            ).fetchall()
    assert left == []
