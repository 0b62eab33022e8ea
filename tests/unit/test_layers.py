"""Who may import whom, read from the source (every import statement, in functions and
``TYPE_CHECKING`` blocks too), and what ``import suho_mt5`` costs.

Layers are the first component under ``suho_mt5`` (``db``, ``models``, ``protocol``, ...).
Imports go downward only: protocol knows no database, nothing imports the command line,
revisions and custom operations never import the ORM.

:data:`LAYERS` is the layer table of ``docs/architecture.md`` as data: the code must import
exactly what it says, and the doc must show exactly it, with the picture drawn from the same
graph. After a change of either, ``python -m tests.unit.test_layers`` rewrites both in the
doc from the code, and the diff shows what to put in :data:`LAYERS`.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "suho_mt5"
ARCHITECTURE = PACKAGE_DIR.parent / "docs" / "architecture.md"
HEAVY = ("sqlalchemy", "psycopg", "alembic")
ROOT = "suho_mt5"  # the package's own __init__ as a layer: what `import suho_mt5` gives

#: docs/architecture.md's layer table: each layer, every layer it imports, and how.
LAYERS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("errors", (), "the one exception tree"),
    ("_names", (), "names every layer shares (tenant setting, roles, the tenant-id rule)"),
    ("_subjects", ("_names",), "every NATS subject of the bus contract"),
    ("_nats", ("errors",), "a NATS URL or a cluster's comma-separated node URLs, checked"),
    ("protocol", ("errors",), "codec and framer; no database"),
    ("db", ("_names", "errors"), "engines, editions, tenant sessions, key checks"),
    ("models", ("_names", "db", "errors"),
     "`db` for the TimescaleDB dialect and the tenant session hook"),
    ("migrations", ("_names", "db", "errors", "models"),
     "`models` only in `env.py` and `drift.py`, inside functions"),
    ("compliance", ("db", "errors"), "audit chain, reports, GDPR, ML export"),
    ("cache", ("_names", "db", "errors", "ingest"),
     "above `ingest`: its values are ingest's rows; `db` and `ingest` lazily, only where the "
     "database is read or rows are converted; nothing below imports it"),
    ("gateway", ("_nats", "_subjects", "db", "errors", "protocol"),
     "never `models`; `db` checks keys; `protocol._crc` to restamp outbound packets"),
    ("ingest", ("_names", "_nats", "_subjects", "db", "errors", "models", "protocol"),
     "`models.enums` in `rows` and `risk`, `models.metadata` for the staging tables; "
     "`db.psycopg_conninfo`"),
    ("commands", ("_names", "_nats", "_subjects", "cache", "compliance", "db", "errors",
                  "gateway", "ingest", "migrations", "models", "protocol"),
     "plain typed functions, one module per layer; `models.enums` for signal actions"),
    ("demo", ("_nats", "cache", "commands", "db", "errors", "gateway", "ingest", "protocol",
              ROOT),
     "a scripted user of `commands`; the root for `suho_mt5.__file__`"),
    ("cli", ("_nats", "cache", "commands", "compliance", "db", "demo", "errors", "gateway",
             "ingest", ROOT),
     "parse, call `commands`, format; the settings classes `GatewayConfig` and "
     "`BridgeSettings`; the root's `__version__`"),
    ("__main__", ("cli",), "`python -m suho_mt5`, the console script's twin"),
    (ROOT, ("db", "errors", "migrations"),
     "`db` and `migrations.drift` on first use of their names"),
)


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


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of ``graph`` with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                part.append(top)
                if top == node:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_back_but_the_models_relationships() -> None:
    """Module by module, ``TYPE_CHECKING`` imports included: the one cycle allowed is the
    SQLAlchemy relationship annotations between mapped classes (``models``)."""
    assert cycles({"a": {"b"}, "b": {"a", "c"}, "c": set()}) == [["a", "b"]]
    found = cycles(imports())
    assert all(m.startswith("suho_mt5.models.") for part in found for m in part), found


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
    # the ingest modules the cache uses: rows and reconcile (and a batch's types)
    used = {t for m, ts in imports().items() if layer(m) == "cache" for t in ts
            if layer(t) == "ingest"}
    assert used <= {"suho_mt5.ingest.rows", "suho_mt5.ingest.reconcile",
                    "suho_mt5.ingest.batch"}, used


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


# --------------------------------------------------------------------------- the documented table

def documented_graph() -> dict[str, set[str]]:
    """Layer -> the layers it imports, the root package included (``from suho_mt5 import
    __version__`` imports the root; ``from suho_mt5 import models`` imports ``models``)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        name = _module_name(path)
        own = layer(name) or ROOT
        graph.setdefault(own, set())  # every layer is a key, importing something or not
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                modules = {f"{base}.{a.name}" for a in node.names
                           if _is_module(f"{base}.{a.name}")}
                targets = modules or {base}
                if modules and len(modules) < len(node.names):
                    targets.add(base)  # names of the package itself too
            else:
                continue
            for target in targets:
                if target == ROOT or target.startswith(ROOT + "."):
                    other = layer(target) or ROOT
                    if other != own:
                        graph[own].add(other)
    return dict(graph)


def render_table(rows: tuple[tuple[str, tuple[str, ...], str], ...] = LAYERS) -> str:
    lines = ["| layer | imports (besides itself) | how |", "|---|---|---|"]
    for name, deps, how in rows:
        shown = ", ".join(f"`{d}`" for d in deps) or "nothing of suho-mt5"
        lines.append(f"| `{name}` | {shown} | {how} |")
    return "\n".join(lines)


def _reduced(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph without the arrows a longer way implies (the picture stays readable)."""

    def reachable(start: str, skip: str) -> set[str]:
        seen: set[str] = set()
        todo = [n for n in graph[start] if n != skip]
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo.extend(graph.get(node, ()))
        return seen

    return {node: {d for d in deps if d not in reachable(node, d)}
            for node, deps in graph.items()}


def render_picture(graph: dict[str, set[str]]) -> str:
    """A Mermaid flowchart of ``graph``, importers above what they import."""
    ident = {name: "root" if name == ROOT else name.strip("_") + ("_" if name[0] == "_" else "")
             for name in graph}
    lines = ["```mermaid", "flowchart TD"]
    for name in sorted(graph):
        label = "suho_mt5 (root)" if name == ROOT else name
        lines.append(f'    {ident[name]}["{label}"]')
    for name, deps in sorted(_reduced(graph).items()):
        lines.extend(f"    {ident[name]} --> {ident[d]}" for d in sorted(deps))
    lines.append("```")
    return "\n".join(lines)


_TABLE = re.compile(r"\| layer \| imports \(besides itself\) \| how \|\n(?:\|.*\|\n)+")
_PICTURE = re.compile(r"```mermaid\nflowchart TD\n(?:.*\n)*?```")


def test_the_code_imports_exactly_what_the_table_says() -> None:
    expected = {name: set(deps) for name, deps, _ in LAYERS}
    actual = documented_graph()
    assert set(actual) == set(expected), "add or remove a row of LAYERS"
    wrong = {name: {"missing from LAYERS": sorted(actual[name] - expected[name]),
                    "not imported": sorted(expected[name] - actual[name])}
             for name in expected if actual[name] != expected[name]}
    assert wrong == {}


def test_the_doc_shows_the_table_and_the_picture_of_the_code() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    tables = _TABLE.findall(text)
    assert tables == [render_table() + "\n"], "run: python -m tests.unit.test_layers"
    assert _PICTURE.findall(text) == [render_picture(documented_graph())], \
        "run: python -m tests.unit.test_layers"


def test_the_picture_leaves_out_only_arrows_a_longer_way_implies() -> None:
    graph = {"a": {"b", "c"}, "b": {"c"}, "c": set()}
    assert _reduced(graph) == {"a": {"b"}, "b": {"c"}, "c": set()}
    assert "a --> b" in render_picture(graph) and "a --> c" not in render_picture(graph)


if __name__ == "__main__":  # rewrite the doc's table and picture from the code
    doc = ARCHITECTURE.read_text(encoding="utf-8")
    rows = tuple((name, tuple(sorted(deps)), dict((n, h) for n, _, h in LAYERS).get(name, "?"))
                 for name, deps in documented_graph().items())
    order = [n for n, _, _ in LAYERS]
    rows = tuple(sorted(rows, key=lambda r: order.index(r[0]) if r[0] in order else len(order)))
    doc = _TABLE.sub(lambda _: render_table(rows) + "\n", doc, count=1)
    doc = _PICTURE.sub(lambda _: render_picture(documented_graph()), doc, count=1)
    ARCHITECTURE.write_text(doc, encoding="utf-8")
