"""docs/architecture.md names the code a packet and a signal pass through: every name it
gives must exist, so that a rename or a split that forgets the doc fails here.

Checked: dotted paths into the package (``suho_mt5.ingest.prepare.prepare``), methods of the
package's classes (``Worker._commit``, ``SessionBus.publish``) and source files
(``suho_mt5/gateway/_inbound.py``), wherever they stand in backticks or in the picture.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections import defaultdict
from functools import cache
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_DOTTED = re.compile(r"\bsuho_mt5(?:\.[A-Za-z_]\w*)+")
# ``Class.method``, not a file name such as ``Session.mqh`` (the MQL5 EA's include files)
_METHOD = re.compile(r"(?<![\w.])([A-Z][A-Za-z0-9]+)\.(?!(?:mqh|mq5|h|c|md|py)\b)(_{0,2}[a-z]\w*)")
_FILE = re.compile(r"\bsuho_mt5/[\w/]+\.py\b")


@cache
def class_members() -> dict[str, set[str]]:
    """Class name -> the names defined in its body, over the whole package."""
    members: dict[str, set[str]] = defaultdict(set)
    for path in (ROOT / "suho_mt5").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                        members[node.name].add(item.name)
                        members[node.name].update(  # self.x = ... in a method
                            t.attr for t in ast.walk(item)
                            if isinstance(t, ast.Attribute) and isinstance(t.ctx, ast.Store)
                            and isinstance(t.value, ast.Name) and t.value.id == "self")
                    elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        members[node.name].add(item.target.id)
                    elif isinstance(item, ast.Assign):
                        members[node.name].update(t.id for t in item.targets
                                                  if isinstance(t, ast.Name))
    return members


def resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def names_in(text: str) -> tuple[set[str], set[tuple[str, str]], set[str]]:
    spans = [m.group(1) for m in _CODE_SPAN.finditer(text)]
    pictures = re.findall(r"```\n(.*?)```", text, re.DOTALL)
    sources = spans + pictures
    dotted = {d for s in sources for d in _DOTTED.findall(s)}
    methods = {m for s in sources for m in _METHOD.findall(s)}
    files = {f for s in sources for f in _FILE.findall(s)}
    return dotted, methods, files


def test_the_checks_see_a_name_that_is_gone() -> None:
    dotted, methods, files = names_in("`Bridge._handle` in `suho_mt5/ingest/gone.py`, "
                                      "`suho_mt5.ingest.signals.publish_signal`")
    assert methods == {("Bridge", "_handle")} and "_handle" not in class_members()["Bridge"]
    assert files == {"suho_mt5/ingest/gone.py"}
    assert not resolves(next(iter(dotted)))


def test_every_name_the_architecture_doc_gives_exists() -> None:
    dotted, methods, files = names_in(DOC.read_text(encoding="utf-8"))
    assert len(methods) > 40 and len(dotted) > 20  # the walks are read
    members = class_members()
    missing = sorted(f"{cls}.{name}" for cls, name in methods
                     if cls in members and name not in members[cls])
    missing += sorted(d for d in dotted if not resolves(d))
    missing += sorted(f for f in files if not (ROOT / f).is_file())
    assert missing == []


def listed_modules(text: str) -> set[str]:
    """The files the module table ("What each module is for") names: ``dir/a.py``, then
    ``b.py`` in the same cell for ``dir/b.py``; ``dir/*`` or ``dir/`` for all of a
    directory."""
    table = text.split("What each module is for:", 1)[1].split("\n\n", 2)[1]
    top = {p.name for p in (ROOT / "suho_mt5").iterdir() if p.is_dir()}
    listed: set[str] = set()
    for line in table.splitlines()[2:]:
        directory = ""
        for item in _CODE_SPAN.findall(line.split("|")[1]):
            if item.split("/", 1)[0] in top:  # a path from the package's root
                directory = item.split("/", 1)[0] + "/"
                listed.add(item)
            else:  # beside the first one of the cell
                listed.add(directory + item)
    return listed


def test_the_module_table_names_every_module() -> None:
    listed = listed_modules(DOC.read_text(encoding="utf-8"))
    package = ROOT / "suho_mt5"
    missing = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package).as_posix()
        if path.name == "__init__.py" or rel.startswith("migrations/versions/"):
            continue
        whole = {d.removesuffix("*") for d in listed if d.endswith(("/*", "/"))}
        if rel not in listed and not any(rel.startswith(d) for d in whole):
            missing.append(rel)
    assert missing == []
