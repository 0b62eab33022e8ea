"""``suho-mt5 demo`` on the native TimescaleDB ``make setup`` installs, run as a user runs it:
a process of its own, which must print every number the issue names and leave nothing
running, whether it ends by itself or by Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.demo import DemoProcess

pytestmark = pytest.mark.timeout(300)


def test_demo_runs_the_data_flow_and_leaves_nothing(tmp_path: Path) -> None:
    demo = DemoProcess(["--engine", "native", "--duration", "10", "--json"], tmp_path).start()
    code, out = demo.finish(timeout=240)
    assert code == 0, demo.stderr()
    report = demo.report(out)

    # every packet the EAs sent is a row, once; nothing was dead-lettered
    stored, eas = report["stored"], report["eas"]
    assert eas["count"] == 6 and eas["packets_sent"] > 500
    assert stored["exactly_once"] and stored["total"] == eas["packets_sent"]
    assert stored["dead_letters"] == 0
    assert all(stored[t] > 0 for t in ("mt5_broker_quotes", "mt5_account_balance_history",
                                       "mt5_ea_heartbeat", "mt5_trade_orders",
                                       "mt5_signal_executions"))
    # the feedback loop: each signal reached its EA, was executed, its trade closed
    sig = report["signals"]
    assert sig["published"] > 0 and sig["received_by_eas"] == sig["published"]
    assert sig["executions_stored"] == sig["published"] == sig["trades_closed"]
    assert sig["latency_ms"]["count"] == sig["published"] and sig["latency_ms"]["p50"] > 0
    # ... and the gateway's own histogram has every hop of every one of them
    assert {hop: v["signals"] for hop, v in sig["gateway_hops"].items()} == {
        hop: sig["published"] for hop in ("created_to_published", "published_to_received",
                                          "received_to_written", "written_to_acked",
                                          "created_to_acked")}
    # the seed's queries, answered per tenant; deviations are the brokers' offsets
    for tenant, offset in (("demo-alpha", 0.8), ("demo-beta", -1.5)):
        answers = report["seed_queries"][tenant]
        deviation = {row["symbol"]: row["avg_deviation_pips"] for row in answers["deviation"]}
        assert len(deviation) == 4
        assert all(abs(v - offset) < 0.5 for v in deviation.values()), deviation
        assert answers["connectivity"][0]["total"] == 3
        assert {r["user_id"] for r in answers["balance_24h"]} == {"trader-1", "trader-2",
                                                                   "trader-3"}
        assert sum(r["trades"] for r in answers["weekly_pnl"]) > 0
        assert {r["symbol"] for r in answers["ohlc_1m"]} == set(deviation)
    # beta's symbols carry its suffix, alpha's do not: reconciliation mapped both
    assert set(report["seed_queries"]["demo-beta"]["deviation"][0]["symbol"].split(".")[1:]) \
        == {"m"}
    # isolation, through a login of mt5_app
    iso = report["isolation"]
    assert iso["own_quotes"] > 0
    assert iso["other_tenant_quotes"] == 0 and iso["other_tenant_accounts"] == 0
    assert iso["public_base_table"] == "permission denied"
    # the latest-state cache (make setup installs redis-server): one line per tenant, read
    # back as the tenant's own ACL user
    cache = report["cache"]
    assert set(cache) == {"demo-alpha", "demo-beta"}
    for tenant, state in cache.items():
        assert "cache" in state["sources"] and state["quote"] is not None, (tenant, state)
        assert "EURUSD" in state["line"] and "equity" in state["line"]
    assert report["bridge_exit_code"] == 0 and report["gateway_exit_code"] == 0
    # everything it started is gone: servers, bridge, gateway, PostgreSQL's backends
    assert {"postgresql", "nats-server", "data-bridge", "gateway"} <= set(report["pids"])
    assert len(demo.seen) >= 4
    assert demo.leftovers() == []


def test_ctrl_c_mid_run_stops_everything(tmp_path: Path) -> None:
    demo = DemoProcess(["--engine", "native", "--duration", "60"], tmp_path).start()
    demo.wait_for_step("streaming", timeout=120)
    demo.interrupt()  # to the demo alone, as a supervisor would; not to its process group
    code, _ = demo.finish(timeout=60)
    assert code == 130
    assert any("interrupted" in line for line in demo.stderr_lines)
    assert len(demo.seen) >= 4  # it had started its servers and services
    assert demo.leftovers() == []


def test_demo_on_a_three_node_nats_cluster(tmp_path: Path) -> None:
    """``--cluster``: three nats-server processes as one JetStream cluster, R3 streams; the
    same data flow, every packet once, every signal executed, nothing left running."""
    demo = DemoProcess(["--engine", "native", "--cluster", "--duration", "6", "--json"],
                       tmp_path).start()
    code, out = demo.finish(timeout=240)
    assert code == 0, demo.stderr()
    report = demo.report(out)
    assert len(report["nats"].split(",")) == 3
    stored, eas = report["stored"], report["eas"]
    assert stored["exactly_once"] and stored["total"] == eas["packets_sent"] > 0
    sig = report["signals"]
    assert sig["published"] > 0 and sig["executions_stored"] == sig["published"]
    assert {f"nats-server-{i}" for i in (1, 2, 3)} <= set(report["pids"])
    assert demo.leftovers() == []
