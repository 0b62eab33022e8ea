"""Running ``suho-mt5 demo`` as a user would, and checking it left nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DemoProcess", "alive", "descendants"]


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after ``(comm)``: state, ppid, ..., starttime at 19."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # comm may hold spaces and parentheses


def _ppids() -> dict[int, int]:
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(entry.name)
        if fields is not None:
            table[int(entry.name)] = int(fields[1])
    return table


def descendants(pid: int) -> set[tuple[int, str]]:
    """Every process below ``pid`` now (children, their children, ...), as (pid, start
    time), so that a pid the kernel reuses later is not mistaken for one of them."""
    table = _ppids()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in table.items() if parent in frontier} - found
        found |= frontier
    out = set()
    for p in found:
        fields = _stat(p)
        if fields is not None:
            out.add((p, fields[19]))
    return out


def alive(process: tuple[int, str]) -> bool:
    """Whether the process is still running (a zombie counts as gone)."""
    fields = _stat(process[0])
    return fields is not None and fields[19] == process[1] and fields[0] != "Z"


@dataclass
class DemoProcess:
    """``python -m suho_mt5 demo ARGS`` with its own TMPDIR; records every process that
    appears below it while it runs."""

    args: list[str]
    tmpdir: Path
    seen: set[tuple[int, str]] = field(default_factory=set)
    stderr_lines: list[str] = field(default_factory=list)
    stdout_lines: list[str] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    _readers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> DemoProcess:
        env = {**os.environ, "TMPDIR": str(self.tmpdir)}
        env.pop("SUHO_DATABASE_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "suho_mt5", "demo", *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for stream, lines in ((self.proc.stdout, self.stdout_lines),
                              (self.proc.stderr, self.stderr_lines)):
            reader = threading.Thread(target=lambda s=stream, out=lines: out.extend(s),
                                      daemon=True)
            reader.start()
            self._readers.append(reader)
        return self

    def wait_for_step(self, text: str, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.seen |= descendants(self.proc.pid)
            if any(text in line for line in self.stderr_lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"the demo never reported {text!r}:\n" +
                             "".join(self.stderr_lines[-30:]))

    def finish(self, timeout: float) -> tuple[int, str]:
        """Wait for the exit, watching its children; exit code and stdout."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                for stream in (self.proc.stdout, self.proc.stderr):
                    if stream is not None:
                        stream.close()
                raise AssertionError("the demo did not finish in time:\n" +
                                     "".join(self.stderr_lines[-30:]))
            self.seen |= descendants(self.proc.pid)
            time.sleep(0.1)
        for reader in self._readers:  # they drain the pipes to their end
            reader.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode, "".join(self.stdout_lines)

    def interrupt(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)

    def report(self, stdout: str) -> dict[str, Any]:
        return dict(json.loads(stdout))

    def stderr(self) -> str:
        return "".join(self.stderr_lines[-40:])

    def leftovers(self) -> list[str]:
        """Processes it started that still run, and files it left in its TMPDIR."""
        time.sleep(0.2)
        left = [f"pid {p[0]} still running" for p in sorted(self.seen) if alive(p)]
        left += [f"left behind: {p}" for p in self.tmpdir.iterdir()]
        return left
