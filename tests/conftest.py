"""Test lanes and their servers.

Tests live in one of three directories, each a lane with a marker of the same name:

* ``tests/unit``        no server;
* ``tests/integration`` native PostgreSQL and nats-server;
* ``tests/timescale``   the TimescaleDB engine (PGlite + TimescaleDB 2.23).

The marker is applied from the directory, so ``pytest -m timescale`` runs one lane. The
terminal summary ends with the outcome counts per lane.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

pytest_plugins = ["tests.support.fixtures"]

LANES = ("unit", "integration", "timescale")
_TESTS_DIR = Path(__file__).parent


def _lane_of(path: Path) -> str | None:
    try:
        first = path.relative_to(_TESTS_DIR).parts[0]
    except (ValueError, IndexError):
        return None
    return first if first in LANES else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        lane = _lane_of(Path(str(item.path)))
        if lane is None:
            raise pytest.UsageError(
                f"{item.nodeid}: tests must live under tests/unit, tests/integration "
                "or tests/timescale"
            )
        item.add_marker(getattr(pytest.mark, lane))


_outcomes: Counter[tuple[str, str]] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    lane = _lane_of(Path(str(report.fspath)).resolve())
    if lane is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome == "skipped"):
        outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        _outcomes[(lane, outcome)] += 1
    elif report.when in ("setup", "teardown") and report.outcome == "failed":
        _outcomes[(lane, "error")] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _outcomes:
        return
    terminalreporter.section("tests per lane")
    for lane in LANES:
        counts = {o: n for (ln, o), n in sorted(_outcomes.items()) if ln == lane}
        text = ", ".join(f"{n} {o}" for o, n in counts.items()) or "not run"
        terminalreporter.write_line(f"{lane:<12} {text}")
