"""Every ``>>>`` example in the package runs and holds.

The modules are found by reading the source, not listed by hand: a module that gains an
example is tested from then on, and one that cannot be imported or runs none fails here.
"""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "suho_mt5"
_EXAMPLE = re.compile(r"^\s*>>> ", re.MULTILINE)


def _module_name(path: Path) -> str:
    parts = ["suho_mt5", *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules_with_examples() -> list[str]:
    return sorted(_module_name(path) for path in PACKAGE_DIR.rglob("*.py")
                  if _EXAMPLE.search(path.read_text(encoding="utf-8")))


def test_the_examples_are_found() -> None:
    found = modules_with_examples()
    # one of each kind: a package's __init__, a private module, a deep one
    assert {"suho_mt5.protocol", "suho_mt5.protocol._codec",
            "suho_mt5.migrations.operations._sql"} <= set(found)
    assert len(found) >= 30, found


@pytest.mark.parametrize("module", modules_with_examples())
def test_the_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module} has '>>> ' in its source but no example ran"
    assert result.failed == 0


def test_no_example_is_only_a_comment() -> None:
    """``>>> # f(x)`` looks like an example and never runs: code that needs a server goes
    in a literal block (``::``) instead."""
    commented = [f"{path.relative_to(PACKAGE_DIR)}:{n}"
                 for path in sorted(PACKAGE_DIR.rglob("*.py"))
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if line.strip().startswith(">>> #")]
    assert commented == []
