"""The MQL5 library (clients/mql5/Include/Suho/Protocol.mqh) passes every golden vector, valid,
invalid, encoder refusal, frame and stream (the session's included), in both directions:
compiled by g++ through the compatibility layer with every warning an error, and once more
with AddressSanitizer and UBSan. Also: the generated Layout.mqh is current, and the source
transform keeps lines and refuses what it cannot translate."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from suho_mt5.protocol import _mqlgen
from tests.support.mql5 import MQL5_DIR, SANITIZERS, NoSanitizerRuntime, build, transform_module

from . import c_fixture

pytestmark = pytest.mark.unit


def _run(binary: Path, fixture: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), str(fixture)], capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture(scope="module")
def fixture_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("mql5-vectors") / "vectors.txt"
    c_fixture.write(path)
    return path


def test_the_layout_include_is_generated_from_the_declarations() -> None:
    assert (MQL5_DIR / "Include" / "Suho" / "Layout.mqh").read_text("utf-8") == _mqlgen.render(), (
        "run: python -m suho_mt5.protocol._mqlgen"
    )


@pytest.mark.parametrize("extra", [["-O1"], SANITIZERS], ids=["O1", "sanitizers"])
def test_mql5_library_passes_every_vector(tmp_path: Path, fixture_file: Path,
                                          extra: list[str]) -> None:
    try:
        binary = build("vectors_test", tmp_path, extra)
    except NoSanitizerRuntime as exc:
        pytest.skip(f"no sanitizer runtime: {exc}")
    done = _run(binary, fixture_file)
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout
    vectors = c_fixture.VECTORS
    assert done.stdout.splitlines() == [
        f"{len(vectors.valid)} valid, {len(vectors.invalid)} invalid, "
        f"{len(vectors.encode)} encode, {len(vectors.frames)} frame, "
        f"{len(vectors.streams)} stream vectors: 0 failed"
    ]


def test_the_mql5_driver_notices_a_wrong_vector(tmp_path: Path, fixture_file: Path) -> None:
    # The driver compares: an invalid vector whose offset is off by one, a valid one whose
    # bytes are changed, a stream with one skip too many must each fail it.
    binary = build("vectors_test", tmp_path)
    lines = fixture_file.read_text("ascii").splitlines()
    invalid = next(x for x in lines if x.startswith("I "))
    head, offset = invalid.rsplit(" ", 1)
    valid = next(x for x in lines if x.startswith("V "))
    parts = valid.split(" ")
    parts[4] = parts[4][:-2] + ("00" if parts[4][-2:] != "00" else "01")
    for wrong in (f"{head} {int(offset) + 1}", " ".join(parts)):
        path = tmp_path / "wrong.txt"
        path.write_text(wrong + "\n", encoding="ascii")
        done = _run(binary, path)
        assert done.returncode == 1 and "1 failed" in done.stdout, wrong


def test_the_transform_keeps_lines_and_refuses_what_it_cannot_translate() -> None:
    mod = transform_module()
    types = mod.declared_types([])
    source = (MQL5_DIR / "Include" / "Suho" / "Session.mqh").read_text("utf-8")
    assert mod.transform(source, types).count("\n") == source.count("\n")
    text = 'int a[2], b[2];\n'
    with pytest.raises(mod.TransformError, match="one declarator"):
        mod.transform(text, types)
    with pytest.raises(mod.TransformError, match="multi-dimensional"):
        mod.transform("double m[2][3];\n", types)
    out = mod.transform('#property strict\nuint t[4];\nvoid f(const uchar &b[]) '
                        '{ Print("x[1]" + 1); } // uchar c[2];\n', types)
    assert out.splitlines() == [
        "// #property strict",
        "mql_array<uint> t = mql_array<uint>(4);",
        'void f(const mql_array<uchar> &b) { Print(_S("x[1]") + 1); } // uchar c[2];',
    ]
