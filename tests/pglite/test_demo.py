"""``suho-mt5 demo --engine pglite``: the fallback where the native server cannot run. All
of the demo's processes (bridge, gateway, signal publisher, report) share the engine's one
backend, each connecting per transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.demo import DemoProcess

pytestmark = pytest.mark.timeout(300)


def test_demo_on_the_pglite_engine(tmp_path: Path) -> None:
    demo = DemoProcess(["--engine", "pglite", "--duration", "8", "--json"], tmp_path).start()
    code, out = demo.finish(timeout=240)
    assert code == 0, demo.stderr()
    report = demo.report(out)
    assert report["engine"] == "pglite" and "timescaledb-engine" in report["pids"]
    assert report["stored"]["exactly_once"] and report["stored"]["total"] > 300
    sig = report["signals"]
    assert sig["published"] > 0
    assert sig["received_by_eas"] == sig["executions_stored"] == sig["trades_closed"] \
        == sig["published"]
    for answers in report["seed_queries"].values():
        assert len(answers["deviation"]) == 4 and answers["weekly_pnl"]
    iso = report["isolation"]
    assert iso["own_quotes"] > 0 and iso["other_tenant_quotes"] == 0
    # one superuser backend: the tenant views filter, but no login proves the base table
    assert iso["public_base_table"].startswith("readable (superuser login")
    assert demo.leftovers() == []
