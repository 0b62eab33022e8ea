"""Build the MQL5 client (``clients/mql5``) with g++ for the tests, the way
``clients/mql5/test/Makefile`` does by hand.

The ``.mq5``/``.mqh`` files go through ``clients/mql5/test/mql5_to_cpp.py`` (a mechanical
transform that keeps every line where it is) into a build directory, and a C++ driver that
includes them is compiled against the compatibility layer ``clients/mql5/test/mql5.h``, with
every warning an error, and optionally AddressSanitizer and UBSan.
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import signal
import subprocess
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
MQL5_DIR = REPO_ROOT / "clients" / "mql5"
TEST_DIR = MQL5_DIR / "test"
FLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror"]
OPTIMISED = ["-O1"]
SANITIZERS = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


class NoSanitizerRuntime(Exception):
    """g++ has no AddressSanitizer/UBSan runtime on this machine."""


def transform_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mql5_to_cpp", TEST_DIR / "mql5_to_cpp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gxx() -> str:
    found = shutil.which("g++")
    assert found, "the MQL5 client is tested with g++: install it (apt-get install g++)"
    return found


def transform(out: Path, mql5_dir: Path = MQL5_DIR) -> Path:
    """The MQL5 sources (of ``mql5_dir``: the checkout's, or a copy with a planted mistake)
    and the test's stand-in standard library, rewritten for g++ under ``out``; returns
    ``out``."""
    transform_module().convert_tree([mql5_dir, TEST_DIR / "Include"], out)
    return out


def build(driver: str, out: Path, extra: list[str] = OPTIMISED,
          mql5_dir: Path = MQL5_DIR) -> Path:
    """Compile ``clients/mql5/test/<driver>.cpp`` into ``out/<driver>``."""
    sources = transform(out / "src", mql5_dir)
    binary = out / driver
    done = subprocess.run(
        [gxx(), *FLAGS, *extra, f"-I{TEST_DIR}", f"-I{sources / 'Include'}",
         f"-I{sources / 'Experts'}",
         "-o", str(binary), str(TEST_DIR / f"{driver}.cpp")],
        capture_output=True, text=True, timeout=600, check=False,
    )
    no_runtime = "cannot find" in done.stderr or "libasan" in done.stderr
    if done.returncode and "-fsanitize=address,undefined" in extra and no_runtime:
        raise NoSanitizerRuntime(done.stderr[-300:])
    assert done.returncode == 0, done.stderr[-6000:]
    return binary


def start_ea(binary: Path, files: Path, log: Path, inputs: dict[str, object]
             ) -> subprocess.Popen[bytes]:
    """The EA (``ea_host``) attached to a chart: its inputs as the terminal's dialog would set
    them, its files (the state) in ``files``, what it prints in ``log``."""
    files.mkdir(parents=True, exist_ok=True)
    argv = [str(binary)]
    for name, value in inputs.items():
        argv += ["--set", f"{name}={value}"]
    with log.open("ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                env={"MQL5_FILES": str(files)})


def stop_ea(ea: subprocess.Popen[bytes]) -> None:
    """Remove the EA from its chart (SIGTERM: OnDeinit runs); kill it if it hangs."""
    if ea.poll() is None:
        ea.send_signal(signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        ea.wait(20)
    if ea.poll() is None:
        ea.kill()
        ea.wait(10)
