"""`suho-mt5 simulate --record FILE` writes the data packets its EAs send, each once; the
file is what reached the bus through the gateway, and `suho-mt5 ingest replay FILE` writes
it to the tables once, however often it runs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from pathlib import Path

import nats
import pytest
from click.testing import CliRunner

from suho_mt5.cli import main
from suho_mt5.commands.replay import read_recording
from suho_mt5.protocol import PACKET_SIZE

from ._support import GatewayDb, gateway_process, stored_packets

pytestmark = pytest.mark.timeout(120)


async def _on_bus(nats_url: str) -> Counter[tuple[str, int]]:
    nc = await nats.connect(nats_url)
    try:
        counts, _ = await stored_packets(nc.jetstream())
        return counts
    finally:
        await nc.close()


def test_simulate_records_what_reaches_the_bus_and_replay_writes_it_once(
    gw_db: GatewayDb, nats_url: str, tmp_path: Path
) -> None:
    accounts = tmp_path / "accounts.json"
    mine = gw_db.accounts[50:53]
    accounts.write_text(json.dumps([{"account_id": str(a.account_id), "api_key": a.api_key}
                                    for a in mine]))
    record = tmp_path / "session.bin"
    with gateway_process(gw_db, nats_url, tmp_path) as proc:
        result = CliRunner().invoke(main, [
            "simulate", "--gateway", f"127.0.0.1:{proc.tcp_port}", "--transport", "tcp",
            "--accounts", str(accounts), "--duration", "2", "--speed", "20",
            "--record", str(record)])
    assert result.exit_code == 0, result.output
    assert "not acknowledged 0" in result.output

    recording = read_recording(record)
    assert recording.data_packets == recording.packets > 0
    assert recording.accounts == {a.account_id for a in mine}
    data = record.read_bytes()
    recorded = Counter((str(uuid.UUID(bytes=data[o + 24:o + 40])),
                        int.from_bytes(data[o + 8:o + 16], "little"))
                       for o in range(0, len(data), PACKET_SIZE))
    assert max(recorded.values()) == 1  # a resend after a reconnect is not recorded again
    assert recorded == asyncio.run(_on_bus(nats_url))

    first = CliRunner().invoke(main, ["ingest", "replay", str(record), "--url",
                                      gw_db.owner_url, "--json", "--direct"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.output)
    assert sum(summary["written"].values()) == recording.packets
    assert summary["dead_letters"] == 0
    second = json.loads(CliRunner().invoke(main, ["ingest", "replay", str(record), "--url",
                                                  gw_db.owner_url, "--json"]).output)
    assert sum(second["written"].values()) == 0
    assert second["duplicate_rows"] == recording.packets


def test_simulate_says_when_it_cannot_write_the_record(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps([{"account_id": str(uuid.uuid4()), "api_key": "k"}]))
    result = CliRunner().invoke(main, [
        "simulate", "--gateway", "ws://127.0.0.1:1", "--accounts", str(accounts),
        "--record", str(tmp_path / "no" / "such" / "dir.bin")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"error: cannot write {tmp_path / 'no' / 'such' / 'dir.bin'}: No such file or directory"]
