"""``suho-mt5 demo`` through click's CliRunner: help, and one clear line for what cannot run.
(The full runs are process tests: tests/timescale/test_demo.py, test_demo_external.py.)"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from suho_mt5.cli import main
from suho_mt5.demo.servers import free_port


@pytest.fixture(autouse=True)
def _private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the demo makes its directories with tempfile, in this process
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error: ")]


def _run(*args: str, tmp_path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["demo", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result.exit_code, result.output


def test_help_names_the_engines_and_an_example() -> None:
    result = CliRunner().invoke(main, ["demo", "--help"])
    assert result.exit_code == 0
    assert "--engine [auto|native|pglite]" in result.output
    assert "suho-mt5 demo --engine pglite" in result.output


@pytest.mark.parametrize("url, expected", [
    (f"postgresql://nobody:x@127.0.0.1:{free_port()}/none", "connection"),
    ("mysql://root@localhost/db", "error: "),
])
def test_a_database_that_cannot_serve_is_one_line(url: str, expected: str,
                                                  tmp_path: Path) -> None:
    code, output = _run("--database-url", url, "--duration", "5", tmp_path=tmp_path)
    assert code == 1
    lines = _errors(output)
    assert len(lines) == 1 and expected in lines[0], output
    assert "Traceback" not in output
    # it stopped the nats-server it had started and removed its directory; the logs it
    # kept for the user are where the error line says
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 1 and left[0].startswith("suho-demo-logs-"), left
    assert (tmp_path / left[0] / "nats-server.log").is_file()
    assert str(tmp_path / left[0]) in lines[0]


def test_a_nats_server_that_is_down_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as closed:  # bound, never listening: refused, and no one else's
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        code, output = _run("--engine", "native", "--nats-url", f"nats://127.0.0.1:{port}",
                            "--duration", "5", tmp_path=tmp_path)
    assert code == 1
    lines = _errors(output)
    assert len(lines) == 1 and "cannot connect to NATS at nats://" in lines[0], output
    assert output.splitlines()[-1] == lines[0]  # nothing after it: no log noise of nats-py
    assert "demo: migrate" not in output  # it checked the bus before starting a database
