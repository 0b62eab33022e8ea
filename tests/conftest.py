"""Test lanes and their servers.

Four lanes, each a marker of the same name:

* ``unit``        no server (``tests/unit``);
* ``integration`` native PostgreSQL 15 and nats-server (``tests/integration``);
* ``timescale``   native TimescaleDB 2.28 (``tests/timescale``);
* ``pglite``      the PGlite TimescaleDB engine (``tests/pglite``).

Tests under ``tests/db`` are written once and run on every engine: their ``backend``
fixture is parametrised over the three servers, and each parameter carries its lane's
marker (``tests/db/conftest.py``); ``@pytest.mark.engines(...)`` narrows a test to some of
them. Elsewhere the marker comes from the directory. ``pytest -m timescale`` runs one lane;
the terminal summary ends with the outcome counts per lane.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["tests.support.fixtures"]

LANES = ("unit", "integration", "timescale", "pglite")
ENGINE_LANES = {"postgresql": "integration", "timescale": "timescale", "pglite": "pglite"}
_TESTS_DIR = Path(__file__).parent


def _directory_of(path: Path) -> str | None:
    try:
        return path.relative_to(_TESTS_DIR).parts[0]
    except (ValueError, IndexError):
        return None


def _engine_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("backend") if callspec is not None else None


def _lane_of_item(item: pytest.Item) -> str | None:
    directory = _directory_of(Path(str(item.path)))
    if directory == "db":
        engine = _engine_of(item)
        # A test here that needs no server at all (reads a file) counts as a unit test.
        return ENGINE_LANES.get(engine) if engine else "unit"
    return directory if directory in LANES else None


_item_lanes: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "engines(*names): run a tests/db test only on these backends "
        "(postgresql, timescale, pglite)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        lane = _lane_of_item(item)
        if lane is None:
            raise pytest.UsageError(
                f"{item.nodeid}: tests live under tests/unit, tests/integration, "
                "tests/timescale, tests/pglite, or tests/db (using the backend fixture)"
            )
        wanted = item.get_closest_marker("engines")
        if wanted is not None and _engine_of(item) not in wanted.args:
            dropped.append(item)
            continue
        item.add_marker(getattr(pytest.mark, lane))
        _item_lanes[item.nodeid] = lane
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


_outcomes: Counter[tuple[str, str]] = Counter()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A test whose captured output or failure report holds a registered secret (an API
    key, a gateway login's password: tests/support/secrets.py) fails, naming where."""
    from tests.support.secrets import find_secrets

    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    texts = [(name, content) for name, content in report.sections]
    if report.longrepr is not None:
        texts.append(("the failure report", str(report.longrepr)))
    leaks = [(name, found) for name, content in texts if (found := find_secrets(content))]
    if leaks and report.outcome != "failed":
        report.outcome = "failed"
        report.longrepr = f"a secret was written where the project writes: {leaks}"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    lane = _item_lanes.get(report.nodeid)
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
