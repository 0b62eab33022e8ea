"""The compliance layer without a server: docstring examples, digest files, months."""

from __future__ import annotations

import doctest
import importlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from suho_mt5.compliance import audit, reports
from suho_mt5.errors import ComplianceError, DigestError, ReportError, SuhoError

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("module", ["suho_mt5.compliance.audit", "suho_mt5.compliance.reports"])
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), raise_on_error=False)
    assert result.failed == 0 and result.attempted > 0


def test_the_hash_covers_the_application_user_only_when_set() -> None:
    fields = dict(tenant_id="t", chain_seq=2, prev_hash="a" * 64, event_id="e",
                  time=datetime(2026, 1, 1, tzinfo=UTC),
                  recorded_at=datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
                  event_type="x.y", actor="r", account_id=None, payload_text='{"a": "é"}')
    plain = audit.row_hash(**fields)
    assert audit.row_hash(**fields, app_user=None) == plain
    assert audit.row_hash(**fields, app_user="psn_1") != plain
    assert audit.row_hash(**{**fields, "recorded_at": datetime(2026, 1, 1, tzinfo=UTC)}) != plain


def test_a_digest_round_trips_and_an_edit_shows(tmp_path: Path) -> None:
    head = audit.ChainHead("t", 7, "f" * 64, datetime(2026, 11, 30, 12, tzinfo=UTC))
    digest = audit.Digest(datetime(2026, 11, 30, 12, 5, tzinfo=UTC), "db", (head,))
    path = tmp_path / "d.json"
    path.write_text(digest.dumps())
    assert audit.read_digest(path) == digest
    data = json.loads(path.read_text())
    data["heads"][0]["row_hash"] = "0" * 64
    path.write_text(json.dumps(data))
    with pytest.raises(DigestError, match="altered"):
        audit.read_digest(path)
    path.write_text("{}")
    with pytest.raises(DigestError, match="not a suho-mt5-audit-digest/1"):
        audit.read_digest(path)
    with pytest.raises(DigestError, match="cannot read"):
        audit.read_digest(tmp_path / "missing.json")


def test_months_are_utc_calendar_months() -> None:
    assert reports.month_bounds("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC),
                                               datetime(2027, 1, 1, tzinfo=UTC))
    with pytest.raises(ReportError):
        reports.month_bounds("2026-13")


def test_compliance_errors_are_suho_errors() -> None:
    assert issubclass(DigestError, ComplianceError) and issubclass(ComplianceError, SuhoError)
