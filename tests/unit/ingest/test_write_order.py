"""The order a batch takes its locks in: tables in one order, audited ones last, rows sorted
by tenant and account, the audit-chain lock key the same as the trigger's. Two bridge workers
that lock in one order cannot deadlock."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from suho_mt5.ingest._worker import _delivery
from suho_mt5.ingest.rows import TABLE_COLUMNS
from suho_mt5.ingest.writer import AUDIT_CHAIN_LOCK, AUDITED_TABLES, WRITE_ORDER, sort_rows

MIGRATION = (Path(__file__).resolve().parents[3] / "suho_mt5" / "migrations" / "versions"
             / "0011_compliance.py")


def test_rows_sort_by_tenant_account_time_sequence_with_their_origins() -> None:
    accounts = sorted((uuid.uuid4() for _ in range(4)), key=lambda a: a.int)
    t0 = datetime(2026, 11, 30, tzinfo=UTC)
    rows = [(t0 + timedelta(seconds=s), tenant, acc, seq)
            for tenant in ("acme", "globex.eu", "initech") for acc in accounts
            for s, seq in ((1, 5), (1, 6), (2, 7))]
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    origins = [rows.index(r) for r in shuffled]  # each row's origin travels with it
    got, got_origins = sort_rows(shuffled, origins)
    assert got == rows
    assert got_origins == list(range(len(rows)))


def test_every_table_is_written_in_one_order_audited_last() -> None:
    assert set(WRITE_ORDER) == set(TABLE_COLUMNS)
    audited = [t for t in WRITE_ORDER if t in AUDITED_TABLES]
    assert audited == list(WRITE_ORDER[-len(audited):])


def test_the_chain_lock_key_is_the_audit_triggers() -> None:
    text = MIGRATION.read_text()
    assert f"pg_advisory_xact_lock(hashtextextended('{AUDIT_CHAIN_LOCK}' || NEW.tenant_id, 0))" \
        in text


def test_delivery_is_read_from_the_reply_subject() -> None:
    v1 = SimpleNamespace(reply="$JS.ACK.MT5_ACCOUNTS.suho-bridge.3.1234.99.1700000000000.5")
    v2 = SimpleNamespace(reply="$JS.ACK.hub.ACCHASH.MT5_ACCOUNTS.suho-bridge.2.77.70."
                               "1700000000000.0.token")
    assert _delivery(v1) == ("MT5_ACCOUNTS", 1234, 3)
    assert _delivery(v2) == ("MT5_ACCOUNTS", 77, 2)
