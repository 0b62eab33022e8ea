"""Who may import whom, read from the source (every import statement, in functions and
``TYPE_CHECKING`` blocks too), and what ``import suho_mt5`` costs.

Layers are the first component under ``suho_mt5`` (``db``, ``models``, ``protocol``, ...).
Imports go downward only: protocol knows no database, nothing imports the command line,
revisions and custom operations never import the ORM.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "suho_mt5"
HEAVY = ("sqlalchemy", "psycopg", "alembic")


def _module_name(path: Path) -> str:
    parts = ["suho_mt5", *path.relative_to(PACKAGE_DIR).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE_DIR / rel).with_suffix(".py").is_file() or (PACKAGE_DIR / rel).is_dir()


@cache
def imports() -> dict[str, set[str]]:
    """suho_mt5 module -> the suho_mt5 modules it imports."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets.add(base)
                # `from suho_mt5 import models` imports the module suho_mt5.models.
                targets.update(f"{base}.{a.name}" for a in node.names
                               if _is_module(f"{base}.{a.name}"))
        graph[name] = {t for t in targets if t.startswith("suho_mt5.")}
    return graph


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def importers_of(target_layer: str) -> dict[str, set[str]]:
    """Modules outside ``target_layer`` that import it, with what they import."""
    out: dict[str, set[str]] = defaultdict(set)
    for module, targets in imports().items():
        for target in targets:
            if layer(target) == target_layer and layer(module) != target_layer:
                out[module].add(target)
    return dict(out)


def layer_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module, targets in imports().items():
        if layer(module):  # the root package only re-exports, lazily
            graph[layer(module)].update(layer(t) for t in targets if layer(t) != layer(module))
    return graph


def test_the_graph_is_read() -> None:
    graph = imports()
    assert "suho_mt5.errors" in graph["suho_mt5.db.engine"]
    assert "suho_mt5.models.base" in graph["suho_mt5.models.accounts"]
    assert "suho_mt5.models" in graph["suho_mt5.migrations.env"]  # inside a function
    assert "suho_mt5.protocol._layout" in graph["suho_mt5.protocol._codec"]  # relative


def test_the_layers_form_no_cycle() -> None:
    graph = layer_graph()
    assert "models" in graph["migrations"] and "db" in graph["models"]
    assert "models" not in graph["db"], importers_of("models")
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            assert seen.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in seen:
                visit(nxt, [*path, node])
        seen[node] = 2

    for node in sorted(graph):
        if node not in seen:
            visit(node, [])


def test_protocol_imports_only_names_and_errors() -> None:
    outside = {t for m, ts in imports().items() if layer(m) == "protocol"
               for t in ts if layer(t) not in ("protocol", "_names", "errors")}
    assert outside == set()


def test_the_shared_names_and_errors_import_nothing_of_the_package() -> None:
    assert imports()["suho_mt5._names"] == set()
    assert imports()["suho_mt5.errors"] == set()


def test_nothing_imports_the_command_line() -> None:
    # but ``python -m suho_mt5``, the console script's twin (the demo starts its services so)
    assert importers_of("cli") == {"suho_mt5.__main__": {"suho_mt5.cli"}}


def test_the_gateway_and_ingest_import_neither_migrations_nor_cli() -> None:
    for module, targets in imports().items():
        if layer(module) in ("gateway", "ingest"):
            assert {layer(t) for t in targets}.isdisjoint({"migrations", "cli"}), module
        if layer(module) == "gateway":
            assert "models" not in {layer(t) for t in targets}, module


def test_the_cache_sits_above_ingest_and_nothing_below_knows_it() -> None:
    """The cache derives its values from ingest's rows and symbol mapping, and reads the
    database (its fallback, its rebuild); ingest and the gateway know it only through the
    small protocols they define (``ingest/hooks.py``, ``gateway.SessionListener``)."""
    allowed = {"_names", "errors", "db", "ingest", "cache"}
    for module, targets in imports().items():
        if layer(module) == "cache":
            assert {layer(t) for t in targets} <= allowed, module
    assert set(importers_of("cache")) <= {m for m in imports()
                                          if layer(m) in ("commands", "cli", "demo")}
    # the ingest modules the cache uses: rows and reconcile (and writer's types)
    used = {t for m, ts in imports().items() if layer(m) == "cache" for t in ts
            if layer(t) == "ingest"}
    assert used <= {"suho_mt5.ingest.rows", "suho_mt5.ingest.reconcile",
                    "suho_mt5.ingest.writer"}, used


def test_the_cache_core_loads_no_database_stack() -> None:
    """An application that reads the cache (or a gateway that writes it) does not load
    SQLAlchemy, psycopg or Alembic: only the database fallback, the conversion of ingest's
    rows and the rebuild do, when they run."""
    loaded = json.loads(_fresh_python(
        "import suho_mt5.cache, suho_mt5.cache.reader, suho_mt5.cache.writer\n"
        "from suho_mt5.cache import CacheReader, CacheWriter, Quote\n"
        "import json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"))
    assert loaded == []


def test_migrations_never_import_the_models_but_for_env_and_the_drift_check() -> None:
    """Revisions and custom operations must not change when a model does."""
    users = {m for m, ts in imports().items()
             if layer(m) == "migrations" and any(layer(t) == "models" for t in ts)}
    assert users == {"suho_mt5.migrations.env", "suho_mt5.migrations.drift"}


def _fresh_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True, cwd=PACKAGE_DIR.parent)
    return result.stdout


@pytest.mark.parametrize("statement", ["import suho_mt5", "import suho_mt5.protocol",
                                       "import suho_mt5.errors, suho_mt5._names"])
def test_light_imports_load_no_database_stack(statement: str) -> None:
    loaded = json.loads(_fresh_python(
        f"{statement}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"))
    assert loaded == []


def test_the_database_names_load_on_first_use() -> None:
    out = _fresh_python(
        "import sys, suho_mt5\n"
        "before = 'sqlalchemy' in sys.modules\n"
        "print(before, suho_mt5.Edition.APACHE.value, 'sqlalchemy' in sys.modules,\n"
        "      suho_mt5.check_drift.__module__)")
    assert out.split() == ["False", "apache", "True", "suho_mt5.migrations.drift"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import suho_mt5

        suho_mt5.nope  # noqa: B018
