"""clients/mql5/README.md's walkthrough runs as written: from copying the files to the first
quote in ``mt5_broker_quotes`` and an executed signal.

Every ```bash block marked ``<!-- walkthrough -->`` runs, in order, as one bash session
(``-e -u -o pipefail``) from the repository root, with what an operator has:
``SUHO_DATABASE_URL`` a migrated database on native TimescaleDB (its superuser),
``SUHO_NATS_URL`` a nats-server with JetStream, ``suho-mt5`` on ``PATH``; and what the MT5
user has: ``MT5_DATA``, the terminal's data folder (empty here). At the
``<!-- walkthrough: terminal -->`` marker the test does the user's steps in the terminal:
it compiles the EA **from the files the walkthrough copied into MT5_DATA** (g++, the
stand-in terminal of clients/mql5/test) and attaches it with the inputs the walkthrough
printed. The README must have no other ```bash block, so that every command in it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from suho_mt5.commands import db as db_commands
from tests.support.mql5 import MQL5_DIR, build, start_ea, stop_ea
from tests.support.servers import NatsServer, free_port
from tests.timescale.gateway._support import delete_streams

README = MQL5_DIR / "README.md"
REPO_ROOT = MQL5_DIR.parents[1]
_BLOCK = re.compile(r"(?:<!--(?P<comment>[^>]*)-->\s*\n)?^```(?P<language>[a-z]*)[ \t]*\n"
                    r"(?P<code>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
TERMINAL = "<!-- walkthrough: terminal -->"


def walkthrough(text: str) -> tuple[list[str], list[str]]:
    """The bash blocks before and after the terminal steps."""
    before, after = text.split(TERMINAL)
    parts: list[list[str]] = []
    for part in (before, after):
        blocks = []
        for match in _BLOCK.finditer(part):
            if match["language"] != "bash":
                continue
            assert (match["comment"] or "").strip() == "walkthrough", (
                f"a bash block not in the walkthrough: {match['code'][:60]!r}")
            blocks.append(match["code"])
        parts.append(blocks)
    return parts[0], parts[1]


def test_the_readme_has_a_walkthrough_with_the_terminal_steps_in_it() -> None:
    text = README.read_text("utf-8")
    assert text.count(TERMINAL) == 1
    before, after = walkthrough(text)
    assert len(before) >= 3 and len(after) >= 2
    assert "mt5_broker_quotes" in "".join(after)


def _bash(script: str, env: dict[str, str], log: Path, timeout: float) -> None:
    with log.open("ab") as out:
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=REPO_ROOT,
                              env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                              check=False)
    assert done.returncode == 0, f"exit status {done.returncode}:\n{log.read_text()[-4000:]}"


@pytest.mark.timeout(300)
def test_the_walkthrough_runs_from_copying_the_files_to_the_first_quote(
    make_ts_database: Callable[[], str], nats_server: NatsServer, tmp_path: Path
) -> None:
    url = make_ts_database().replace("postgresql+psycopg://", "postgresql://", 1)
    db_commands.upgrade(url)
    asyncio.run(delete_streams(nats_server.url))  # a bus of its own: no other test's packets
    terminal = tmp_path / "terminal"
    state = tmp_path / "walkthrough.env"
    log = tmp_path / "walkthrough.log"
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "SUHO_DATABASE_URL": url, "SUHO_NATS_URL": nats_server.url,
           "MT5_DATA": str(terminal), "GATEWAY_PORT": str(free_port()),
           "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    before, after = walkthrough(README.read_text("utf-8"))
    variables = {}
    ea = None
    try:
        # The operator's and the user's commands up to the terminal, and what they defined.
        _bash("\n".join(before) + f"\ndeclare -p ACCOUNT_ID API_KEY GATEWAY_PORT WORK "
              f"GATEWAY_PID BRIDGE_PID > {shlex.quote(str(state))}\n", env, log, 120)
        for line in state.read_text().splitlines():
            name, value = line.split(" ", 2)[2].split("=", 1)  # declare -- NAME="value"
            variables[name] = shlex.split(value)[0]
        # The terminal: compile what was copied into MT5_DATA, attach it with those inputs.
        copied = terminal / "MQL5"
        assert (copied / "Experts" / "SuhoBridge.mq5").is_file()
        assert {p.name for p in (copied / "Include" / "Suho").iterdir()} == {
            "Protocol.mqh", "Layout.mqh", "Session.mqh"}
        binary = build("ea_host", tmp_path / "build", mql5_dir=copied)
        ea = start_ea(binary, copied / "Files", tmp_path / "ea.log", {
            "API_GATEWAY_URL": f"tcp://127.0.0.1:{variables['GATEWAY_PORT']}",
            "ACCOUNT_ID": variables["ACCOUNT_ID"], "API_KEY": variables["API_KEY"],
            "SYMBOLS": "EURUSD,GBPUSD"})
        # The operator again: the first quote, the monitor, a signal executed.
        _bash(f"source {shlex.quote(str(state))}\n" + "\n".join(after), env, log, 180)
        text = log.read_text()
        assert re.search(r"EURUSD|GBPUSD", text), text[-2000:]
        assert "signal: executed" in text, text[-2000:]
        ea_log = (tmp_path / "ea.log").read_text()
        assert "session open" in ea_log and "done at" in ea_log, ea_log[-2000:]
    finally:
        if ea is not None:
            stop_ea(ea)
        for name in ("GATEWAY_PID", "BRIDGE_PID"):  # if the walkthrough stopped half-way
            if name in variables:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(variables[name]), signal.SIGTERM)
        asyncio.run(delete_streams(nats_server.url))
