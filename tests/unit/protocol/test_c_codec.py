"""The C reference codec (clients/c/) passes every golden vector, valid, invalid, encoder
refusal, frame and stream, in both directions, compiled as C99 with every warning an error."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from suho_mt5.protocol import _cgen

from . import c_fixture

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
C_DIR = ROOT / "clients" / "c"
FLAGS = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror"]
SOURCES = [str(C_DIR / "suho_test.c"), str(C_DIR / "suho.c")]


def _gcc() -> str:
    gcc = shutil.which("gcc")
    assert gcc, "the C reference codec is tested with gcc: install it (apt-get install gcc)"
    return gcc


def _run(binary: Path, fixture: Path) -> str:
    done = subprocess.run(
        [str(binary), str(fixture)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:] + done.stdout
    return done.stdout


def test_the_layout_header_is_generated_from_the_declarations() -> None:
    assert (C_DIR / "suho_layout.h").read_text("utf-8") == _cgen.render(), (
        "run: python -m suho_mt5.protocol._cgen"
    )


@pytest.mark.parametrize(
    "extra",
    [["-O2"], ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]],
    ids=["O2", "sanitizers"],
)
def test_c_codec_passes_every_vector(tmp_path: Path, extra: list[str]) -> None:
    binary = tmp_path / "suho_test"
    compiled = subprocess.run(
        [_gcc(), *FLAGS, *extra, "-o", str(binary), *SOURCES],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    no_runtime = "cannot find" in compiled.stderr or "libasan" in compiled.stderr
    if compiled.returncode and "sanitize" in " ".join(extra) and no_runtime:
        pytest.skip(f"no sanitizer runtime: {compiled.stderr[-300:]}")
    assert compiled.returncode == 0, compiled.stderr
    fixture = tmp_path / "vectors.txt"
    c_fixture.write(fixture)
    out = _run(binary, fixture)
    vectors = c_fixture.VECTORS
    counts = (
        f"{len(vectors.valid)} valid, {len(vectors.invalid)} invalid, {len(vectors.encode)} "
        f"encode, {len(vectors.frames)} frame, {len(vectors.streams)} stream vectors: 0 failed"
    )
    assert out.splitlines() == [f"slicing-by-8 CRC: {counts}", f"plain-table CRC: {counts}"]


def test_the_c_driver_notices_a_wrong_vector(tmp_path: Path) -> None:
    # The driver compares: a vector whose expected offset is off by one must fail it.
    binary = tmp_path / "suho_test"
    subprocess.run([_gcc(), *FLAGS, "-o", str(binary), *SOURCES], check=True, timeout=300)
    line = next(x for x in c_fixture.lines() if x.startswith("I "))
    head, offset = line.rsplit(" ", 1)
    fixture = tmp_path / "wrong.txt"
    fixture.write_text(f"{head} {int(offset) + 1}\n", encoding="ascii")
    done = subprocess.run([str(binary), str(fixture)], capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "1 failed" in done.stdout
