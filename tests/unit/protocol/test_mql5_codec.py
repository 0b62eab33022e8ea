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
    with pytest.raises(mod.TransformError, match="adjacent string constants"):
        mod.transform('Print("a"\n      "b");\n', types)
    out = mod.transform('#property strict\nuint t[4];\nvoid f(const uchar &b[]) '
                        '{ Print("x[1]" + 1); } // uchar c[2];\n', types)
    assert out.splitlines() == [
        "// #property strict",
        "mql_array<uint> t = mql_array<uint>(4);",
        'void f(const mql_array<uchar> &b) { Print(_S("x[1]") + 1); } // uchar c[2];',
    ]


def test_the_ea_compiles_with_sanitizers_and_checks_its_inputs(tmp_path: Path) -> None:
    """The EA (Experts/SuhoBridge.mq5) in the stand-in terminal, with ASan and UBSan, without
    a gateway: it starts, retries the connection, and stops cleanly; bad inputs stop it in
    OnInit with a message that says what to fix."""
    try:
        binary = build("ea_host", tmp_path, SANITIZERS)
    except NoSanitizerRuntime as exc:
        pytest.skip(f"no sanitizer runtime: {exc}")
    good = {"API_GATEWAY_URL": "tcp://127.0.0.1:9", "API_KEY": "k",
            "ACCOUNT_ID": "6f1c2a7e-9b1d-4c2e-8a53-2f7b9d0e4c11", "SYMBOLS": "EURUSD"}

    def run(**inputs: str) -> subprocess.CompletedProcess[str]:
        argv = [str(binary), "--seconds", "2.5"]
        for name, value in {**good, **inputs}.items():
            argv += ["--set", f"{name}={value}"]
        (tmp_path / "Files").mkdir(exist_ok=True)
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False,
                              env={"MQL5_FILES": str(tmp_path / "Files")})

    done = run()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cannot connect to 127.0.0.1:9" in done.stdout
    assert "Allow WebRequest for listed URL" in done.stdout
    assert "stopped (reason 1)" in done.stdout
    for inputs, message in (
        ({"ACCOUNT_ID": "not-a-uuid"}, "is not a UUID"),
        ({"API_GATEWAY_URL": "ws://127.0.0.1:8000"}, "use tcp://host:port or tls://host:port"),
        ({"API_GATEWAY_URL": "tcp://127.0.0.1"}, "no port"),
        ({"API_KEY": "with space"}, "API_KEY must be"),
        ({"SYMBOLS": "GER40.cash.pro.x1, EUR\u00dcSD"}, "no symbol to stream"),
    ):
        done = run(**inputs)
        assert done.returncode == 3, (inputs, done.stdout + done.stderr)
        assert message in done.stdout, (inputs, done.stdout)
    done = run(SYMBOLS="GER40.cash.pro.x1, EURUSD")
    assert 'symbol "GER40.cash.pro.x1" cannot be sent' in done.stdout
    assert "streaming 1 symbol(s)" in done.stdout
