"""What the clustered servers share: finding executables, waiting, HTTP probes, killing a
process tree."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from suho_mt5.errors import ServerError

__all__ = ["alive", "find_executable", "http_json", "kill_tree", "port_open", "start_retrying",
           "wait_until"]

T = TypeVar("T")


def find_executable(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        raise ServerError(f"{name} is not installed: run `make setup` as root, or install the "
                          f"Debian package `{package}`")
    return found


def wait_until(what: str, probe: Callable[[], T | None], timeout: float,
               check: Callable[[], None] | None = None, every: float = 0.1) -> T:
    """Call ``probe`` until it returns something other than None (or False); that value.

    ``check`` runs before each attempt (a server's :meth:`check`: a dead server fails at
    once, with its log, instead of at the timeout); :class:`ServerError` after ``timeout``.
    """
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise ServerError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def http_json(url: str, timeout: float = 2.0) -> tuple[int, Any]:
    """(status, decoded JSON body) of a GET; (0, None) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"null")
        except ValueError:
            return exc.code, None
    except (OSError, ValueError):
        return 0, None


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _children_of(pid: int) -> list[int]:
    """Every process whose parent is ``pid`` (from ``/proc``; Linux)."""
    found: list[int] = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``pid`` and every descendant of it (children first collected)."""
    stack, seen = [pid], []
    while stack:
        current = stack.pop()
        seen.append(current)
        stack.extend(_children_of(current))
    for each in seen:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(each, sig)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError, IndexError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def start_retrying(attempt: Callable[[], None], stop: Callable[[], None],
                   attempts: int = 3) -> None:
    """Run ``attempt`` (pick free ports, spawn, wait until ready) until it does not raise
    :class:`ServerError`, calling ``stop`` after each failure; the last failure is raised.
    A port that was free when it was picked may be taken by the time the server binds it."""
    for n in range(attempts):
        try:
            attempt()
            return
        except ServerError:
            stop()
            if n == attempts - 1:
                raise
