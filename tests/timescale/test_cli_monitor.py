"""`suho-mt5 monitor` on native TimescaleDB (the timescale edition): real hypertables,
continuous aggregates with their refresh jobs, and chunks created by heartbeats."""

from __future__ import annotations

import json

from click.testing import CliRunner

from suho_mt5.cli import main
from suho_mt5.commands import account as accounts
from suho_mt5.commands import db as db_commands
from tests.integration.test_cli_monitor import execute


def test_monitor_shows_hypertables_aggregates_chunks_and_connectivity(ts_url: str) -> None:
    db_commands.upgrade(ts_url)  # the server offers TimescaleDB: the timescale edition
    account = accounts.create(ts_url, tenant_id="tenant_a", user_id="u", broker_name="B",
                              broker_server="S", mt5_login=7, mt5_account_number="7").account
    execute(ts_url,
            "INSERT INTO public.mt5_ea_heartbeat (time, tenant_id, account_id, status) "
            "VALUES (now() - interval '3 days', 'tenant_a', :id, 'online'), "
            "(now(), 'tenant_a', :id, 'degraded')",
            id=account.account_id)

    result = CliRunner().invoke(main, ["monitor", "--url", ts_url, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["edition"] == "timescale"
    sections = {s["name"]: s for s in report["sections"]}
    hypertables = {r["hypertable_name"]: r for r in sections["hypertables"]["rows"]}
    assert len(hypertables) == 8 and all(r["is_hypertable"] for r in hypertables.values())
    assert hypertables["mt5_ea_heartbeat"]["num_chunks"] == 2  # 1-day chunks, 3 days apart
    aggregates = sections["aggregates"]["rows"]
    assert aggregates and {r["kind"] for r in aggregates} == {"continuous aggregate"}
    assert all(r["refresh_schedule"] is not None for r in aggregates)  # the policies' jobs
    chunks = [r for r in sections["chunks"]["rows"] if r["hypertable_name"] == "mt5_ea_heartbeat"]
    assert len(chunks) == 2 and all(r["chunk_name"].startswith("_hyper_") for r in chunks)
    [connectivity] = sections["connectivity"]["rows"]
    assert (connectivity["online"], connectivity["degraded"], connectivity["total"]) == (0, 1, 1)

    text = CliRunner().invoke(main, ["monitor", "--url", ts_url])
    assert text.exit_code == 0, text.output
    assert "continuous aggregate" in text.output and "_hyper_" in text.output
