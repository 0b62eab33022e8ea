"""The protocol layer is light: it needs the standard library and ``suho_mt5.errors`` only.

(Whether ``import suho_mt5.protocol`` as a whole stays light also depends on the top-level
``suho_mt5/__init__.py``, which these tests bypass on purpose: they pin this layer's part.)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[3] / "suho_mt5"
HEAVY = ("sqlalchemy", "psycopg", "alembic", "nats", "redis")
ALLOWED_OWN = {"suho_mt5.errors", "suho_mt5._names"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_protocol_modules_import_only_the_stdlib_errors_and_names() -> None:
    stdlib = sys.stdlib_module_names
    for path in [*sorted((PACKAGE / "protocol").glob("*.py")), PACKAGE / "errors.py"]:
        for name in _imports(path):
            top = name.split(".")[0]
            ok = top in stdlib or top == "__future__" or name in ALLOWED_OWN
            ok = ok or (top == "zlib_ng")  # optional, loaded by _crc only if installed
            assert ok, f"{path.name} imports {name}"


def test_loading_the_protocol_layer_loads_no_database_stack() -> None:
    # Load suho_mt5.protocol with a bare parent package, as a lazy suho_mt5/__init__ would.
    code = f"""
import sys, types
parent = types.ModuleType("suho_mt5")
parent.__path__ = [{str(PACKAGE)!r}]
sys.modules["suho_mt5"] = parent
import suho_mt5.protocol
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print(heavy)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"
