"""The mutation test on the MQL5 library itself: each mistake the new vector classes are for,
planted in ``clients/mql5/Include/Suho/Protocol.mqh``, compiled with g++, fails the vectors.

(``test_mutations.py`` plants mistakes of every kind in the reference model and shows which
vectors notice them; this checks that the same vectors notice them in real MQL5 code.)
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.mql5 import MQL5_DIR, TEST_DIR, build

from . import c_fixture

pytestmark = pytest.mark.unit

PROTOCOL = MQL5_DIR / "Include" / "Suho" / "Protocol.mqh"

# (the names of the vector class that must notice it, mistake, text of Protocol.mqh, what
# replaces it); the first mistake also gets PREFIX_CHECKS planted.
PREFIX_CHECKS = ("\n   int size = g_suho_fields[f].size;\n",
                 "\n   int size = g_suho_fields[f].size;\n"
                 "   if(g_suho_fields[f].kind == SUHO_KIND_TEXT && size > 16)\n"
                 "      size = 16;\n")
MISTAKES: list[tuple[str, str, str, str]] = [
    (
        "text.",
        "text rules checked on the first 16 bytes of a field only",
        # the checks stop at 16 bytes; the text itself is read to its NUL as before
        "      rec.text[index] = (end == 0) ? \"\" : CharArrayToString(buf, at, end, CP_UTF8);",
        "      rec.text[index] = CharArrayToString(buf, at, g_suho_fields[f].size, CP_UTF8);",
    ),
    (
        "text.",
        "only the byte right after the first NUL is checked",
        "      for(int i = end; i < size; i++)",
        "      for(int i = end; i < size && i <= end + 1; i++)",
    ),
    (
        "two_byte.",
        "an enum compared on its low byte only",
        "         if((ulong)g_suho_enum_value[g_suho_fields[f].enum_first + k] == v)",
        "         if(((ulong)g_suho_enum_value[g_suho_fields[f].enum_first + k] & 0xFF) =="
        " (v & 0xFF))",
    ),
    (
        "encode.",
        "a text that is too long is cut",
        "         if(n > size)\n            return SuhoFail(err_offset, SUHO_INVALID_SYMBOL, "
        "offset + size);",
        "         if(n > size)\n            n = size;",
    ),
    (
        "encode.",
        "a character above 0xFF is written as its low byte",
        "            if(c > 0x7E || c < g_suho_fields[f].text_low)",
        "            if((uchar)c > 0x7E || (uchar)c < g_suho_fields[f].text_low)",
    ),
    (
        "encode.",
        "a value that does not fit is cut to the field's width",
        "         if(size < 8 && (v >> (8 * size)) != 0)",
        "         if(false)",
    ),
    (
        "stream.bad_packet_tail_and_garbage_in_other_feeds",
        "garbage is added to the skip of the bad packet before it",
        "   if(last >= 0 && reason == SUHO_SKIP_NO_MAGIC && skips[last].reason == reason &&",
        "   if(last >= 0 && reason == SUHO_SKIP_NO_MAGIC &&",
    ),
    (
        "stream.bad_version_start",
        "a packet start held back is skipped as soon as its version is wrong",
        "         if(IsMagicStart(i, end))\n            break;",
        "         if(IsMagicStart(i, end) && (end - i < 5 || m_buf[i + 4] == SUHO_VERSION))\n"
        "            break;",
    ),
]


@pytest.fixture(scope="module")
def fixture_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mql5-mutants") / "vectors.txt"
    c_fixture.write(path)
    return path


def _mutated_tree(root: Path, old: str, new: str, *, prefix_checks: bool = False) -> Path:
    """A copy of clients/mql5 with one mistake planted in Protocol.mqh."""
    text = PROTOCOL.read_text("utf-8")
    for target in (old, PREFIX_CHECKS[0]):
        assert text.count(target) == 1, f"a mutation's target is not in Protocol.mqh once: "\
            f"{target!r}"
    if prefix_checks:
        text = text.replace(*PREFIX_CHECKS)
    for src in MQL5_DIR.rglob("*"):
        if src.is_file() and TEST_DIR not in src.parents:
            dst = root / src.relative_to(MQL5_DIR)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(src.read_bytes())
    (root / "Include" / "Suho" / "Protocol.mqh").write_text(text.replace(old, new), "utf-8")
    return root


def test_every_planted_mistake_in_the_mql5_library_fails_the_vectors(
    tmp_path: Path, fixture_file: Path
) -> None:
    def run(index: int) -> str:
        prefix, mistake, old, new = MISTAKES[index]
        out = tmp_path / f"m{index}"
        tree = _mutated_tree(out / "tree", old, new, prefix_checks=index == 0)
        binary = build("vectors_test", out, ["-O0"], mql5_dir=tree)
        done = subprocess.run([str(binary), str(fixture_file)], capture_output=True, text=True,
                              timeout=300, check=False)
        failed = {line.split()[1].rstrip(":") for line in done.stderr.splitlines()
                  if line.startswith("FAIL ")}
        if done.returncode == 0 or not failed:
            return f"{mistake}: passes every vector"
        others = sorted(n for n in failed if not n.startswith(prefix))
        if others:  # the class is what notices it, not older vectors
            return f"{mistake}: also fails {others[:3]}"
        return ""

    with ThreadPoolExecutor(max_workers=2) as pool:
        problems = [p for p in pool.map(run, range(len(MISTAKES))) if p]
    assert problems == []
