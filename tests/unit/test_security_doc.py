"""docs/security.md names a test for each protection: every one it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def test_every_test_named_in_the_security_doc_exists() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    named = NAMED.findall(text)
    assert len(named) >= 20, "the threat model names fewer tests than it has protections"
    missing = []
    for path, name in named:
        source = ROOT / path
        if not source.exists() or not re.search(rf"^def {name}\(", source.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"


def test_every_table_row_of_the_threat_model_names_a_test() -> None:
    text = (ROOT / "docs" / "security.md").read_text().split("## Measured")[0]
    threat_rows = [line for line in text.splitlines()
                   if line.startswith("| ") and line.count("|") == 5
                   and not line.startswith(("| threat", "| fault", "|---"))]
    assert threat_rows
    for row in threat_rows:
        test_cell = row.rstrip(" |").rsplit("|", 1)[1]
        assert "tests/" in test_cell or "same test" in test_cell, row
