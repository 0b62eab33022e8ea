"""``python -m benchmarks --only X`` replaces X's sections of docs/benchmarks.md and keeps
every other section, with its figures, as the last full run wrote it."""

from __future__ import annotations

from benchmarks.__main__ import splice
from benchmarks._registry import Section

EXISTING = """# Benchmarks

- Date: yesterday

## Protocol

old protocol figures

## Data layer

old data figures
"""


def _rendered(*titles: str) -> str:
    body = "\n\n".join(f"## {t}\n\nnew {t} figures" for t in titles)
    return f"# Benchmarks\n\n- Date: today\n\n{body}\n"


def test_only_the_sections_measured_are_replaced() -> None:
    out = splice(EXISTING, [Section("Data layer", "", [])], _rendered("Data layer"))
    assert "old protocol figures" in out
    assert "new Data layer figures" in out
    assert "old data figures" not in out
    # the others' run header stays: their figures were measured then
    assert "- Date: yesterday" in out
    assert out.index("## Protocol") < out.index("## Data layer")


def test_a_section_the_file_lacks_is_added_at_the_end() -> None:
    out = splice(EXISTING, [Section("Gateway", "", [])], _rendered("Gateway"))
    assert out.count("## ") == 3
    assert out.rstrip().endswith("new Gateway figures")
    assert "old data figures" in out and "old protocol figures" in out
