"""The mechanical source transform that lets g++ compile the MQL5 files unchanged in content.

    python clients/mql5/test/mql5_to_cpp.py SOURCE_ROOT OUTPUT_ROOT [EXTRA_ROOT ...]

copies every ``*.mqh`` and ``*.mq5`` under SOURCE_ROOT to the same relative path under
OUTPUT_ROOT (and those under each EXTRA_ROOT, the test's stand-ins for the terminal's standard
library such as ``Trade/Trade.mqh``, under OUTPUT_ROOT/Include, where MQL5 finds them),
rewritten by the rules below and nothing else. Each rule keeps the line count, so
g++'s line numbers are the MQL5 file's. Everything the rules do not touch must be valid in both
languages; the compatibility layer (``mql5.h``) supplies MQL5's types and functions.

Rules, applied to code only (never inside comments, strings or character constants):

1. ``#property ...`` becomes a comment (g++ has no such directive).
2. ``#include <Dir\\File.mqh>`` gets forward slashes.
3. A string constant ``"..."`` becomes ``_S("...")``: in MQL5 it is a ``string``, so that
   ``"n=" + 5`` is ``"n=5"``, not a pointer moved by 5 bytes. Not in ``#include`` lines.
4. An array parameter ``[const] T &name[]`` becomes ``[const] mql_array<T> &name``.
5. An array declaration ``T name[N]``, ``T name[]`` or ``T name[] = {...}`` (``T`` one of MQL5's
   types, a struct or class declared in the files, or an Mql* structure) becomes
   ``mql_array<T> name = mql_array<T>(N)``, ``mql_array<T> name`` or ``mql_array<T> name =
   {...}``: a bounds-checked array that aborts where MQL5 stops the program with "array out
   of range". One declarator per statement, one dimension: anything else is refused, so that
   no construct is silently mistranslated.

The transform refuses (exit status 1, with the file) what it cannot translate safely:
several array declarators in one statement, multi-dimensional arrays, and string constants
written next to each other (``"a" "b"``, which C++ joins before rule 3 could see them).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BASIC_TYPES = ("bool", "char", "uchar", "short", "ushort", "int", "uint", "long", "ulong",
               "float", "double", "string", "datetime", "color")
MQL_STRUCTS = ("MqlTick", "MqlTradeRequest", "MqlTradeResult", "MqlTradeCheckResult",
               "MqlTradeTransaction", "MqlDateTime", "MqlRates", "MqlBookInfo")
SUFFIXES = (".mqh", ".mq5")
INCLUDE_QUOTE = "\x01"


class TransformError(Exception):
    pass


def _segments(text: str) -> list[tuple[str, str]]:
    """Split MQL5 source into ("code" | "comment" | "string" | "char", text) pieces."""
    out: list[tuple[str, str]] = []
    i, n, start = 0, len(text), 0

    def flush(end: int) -> None:
        if end > start:
            out.append(("code", text[start:end]))

    while i < n:
        c = text[i]
        two = text[i : i + 2]
        if two in ("//", "/*"):
            flush(i)
            end = text.find("\n", i) if two == "//" else text.find("*/", i + 2) + 2
            if end < i + 2:
                end = n
            out.append(("comment", text[i:end]))
            i = start = end
            continue
        if c in "\"'":
            flush(i)
            j = i + 1
            while j < n and text[j] != c:
                if text[j] == "\\":
                    j += 1
                if text[j] == "\n":
                    raise TransformError(f"unterminated {c} constant")
                j += 1
            out.append(("string" if c == '"' else "char", text[i : j + 1]))
            i = start = j + 1
            continue
        i += 1
    flush(n)
    return out


def _array_rules(code: str, types: set[str]) -> str:
    names = "|".join(sorted(types, key=len, reverse=True))
    param = re.compile(rf"\b(const\s+)?({names})\s*&\s*(\w+)\s*\[\s*\]")
    code = param.sub(lambda m: f"{m[1] or ''}mql_array<{m[2]}> &{m[3]}", code)
    multi = re.search(rf"\b({names})\s+(\w+)\s*\[[^\]\[]*\]\s*\[", code)
    if multi:
        raise TransformError(f"multi-dimensional array {multi[2]}: not supported")
    decl = re.compile(rf"\b({names})(\s+)(\w+)\s*\[([^\]\[]*)\](\s*)(?=([;=,]))")

    def declaration(m: re.Match[str]) -> str:
        if m[6] == ",":
            raise TransformError(f"array {m[3]}: one declarator per statement")
        size = m[4].strip()
        typ = f"mql_array<{m[1]}>"
        if m[6] == "=" or not size:
            return f"{typ}{m[2]}{m[3]}{m[5]}"
        return f"{typ}{m[2]}{m[3]} = {typ}({size}){m[5]}"

    return decl.sub(declaration, code)


def transform(text: str, types: set[str]) -> str:
    """The C++ text of one MQL5 file (same number of lines)."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        stripped = line.lstrip()
        if stripped.startswith("#property"):
            lines[index] = "// " + line  # rule 1
        elif stripped.startswith("#include"):
            # rule 2; a quoted name is hidden from rule 3 until the end
            lines[index] = line.replace("\\", "/").replace('"', INCLUDE_QUOTE)
    out = []
    pieces = _segments("\n".join(lines))
    for index, (kind, part) in enumerate(pieces):
        following = [k for k, p in pieces[index + 1 : index + 3] if k != "code" or p.strip()]
        if kind == "string" and following[:1] == ["string"]:
            raise TransformError(f"adjacent string constants {part} ...: join them, or use +")
        if kind == "code":
            out.append(_array_rules(part, types))  # rules 4 and 5
        elif kind == "string":
            out.append(f"_S({part})")  # rule 3
        else:
            out.append(part)
    return "".join(out).replace(INCLUDE_QUOTE, '"')


def declared_types(texts: list[str]) -> set[str]:
    found = set(BASIC_TYPES) | set(MQL_STRUCTS)
    for text in texts:
        code = "".join(p for k, p in _segments(text) if k == "code")
        found.update(re.findall(r"\b(?:struct|class)\s+(\w+)", code))
    return found


def convert_tree(roots: list[Path], output: Path) -> list[Path]:
    """Convert the files of ``roots[0]`` into ``output``, those of the other roots (stand-ins
    for the terminal's standard library) into ``output / "Include"``."""
    files = [(output if n == 0 else output / "Include", root, path)
             for n, root in enumerate(roots) for path in sorted(root.rglob("*"))
             if path.suffix in SUFFIXES and "test" not in path.relative_to(root).parts[:1]]
    texts = [path.read_text(encoding="utf-8") for _, _, path in files]
    types = declared_types(texts)
    written = []
    for (base, root, path), text in zip(files, texts, strict=True):
        try:
            converted = transform(text, types)
        except TransformError as exc:
            raise TransformError(f"{path}: {exc}") from exc
        target = base / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(converted, encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        convert_tree([Path(argv[1]), *map(Path, argv[3:])], Path(argv[2]))
    except TransformError as exc:
        print(f"mql5_to_cpp: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
