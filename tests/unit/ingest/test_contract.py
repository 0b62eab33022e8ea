"""The bus contract: the YAML file and the shipped defaults agree; subjects and escapes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from suho_mt5._subjects import (
    SubjectError,
    account_subject,
    escape_tenant,
    outbound_subject,
    parse_account_subject,
)
from suho_mt5.errors import ConfigError
from suho_mt5.ingest.streams import DEFAULT_CONTRACT, load_contract

YAML = Path(__file__).resolve().parents[3] / "config" / "nats-subjects.yaml"


def test_config_file_equals_the_shipped_contract() -> None:
    assert load_contract(YAML) == DEFAULT_CONTRACT
    names = {s.name for s in DEFAULT_CONTRACT.streams}
    assert {"MT5_ACCOUNTS", "MT5_SIGNALS", "MT5_COMMANDS", "MT5_MARKET"} == names
    assert all(s.storage == "file" and s.duplicate_window_seconds > 0
               for s in DEFAULT_CONTRACT.streams)
    bridge = DEFAULT_CONTRACT.bridge
    assert bridge.ack_wait_seconds > 0 and bridge.max_deliver > 1 and bridge.max_ack_pending


def test_a_malformed_contract_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "c.yaml"
    bad.write_text("streams:\n  - name: X\n    subjectz: [a]\nconsumers: []\n")
    with pytest.raises(ConfigError, match="stream 0"):
        load_contract(bad)
    with pytest.raises(ConfigError):
        load_contract(tmp_path / "missing.yaml")


def test_tenant_with_a_dot_is_carried_escaped_and_comes_back() -> None:
    acc = uuid.UUID(int=5)
    subject = account_subject("globex.eu", acc, "quote")
    assert subject == f"mt5.account.globex%2Eeu.{acc}.quote"
    assert parse_account_subject(subject) == ("globex.eu", acc, "quote")
    assert outbound_subject("signal", "a.b.c", acc) == f"mt5.signal.a%2Eb%2Ec.{acc}"
    for bad in ("has space", "wild*", "a>b", ""):
        with pytest.raises(SubjectError):
            escape_tenant(bad)
    # An unescaped dot would add a token: not an account subject.
    with pytest.raises(SubjectError):
        parse_account_subject(f"mt5.account.globex.eu.{acc}.quote")
