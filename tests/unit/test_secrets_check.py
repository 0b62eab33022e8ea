"""The suite-wide check of tests/conftest.py: a test whose captured output holds a
registered secret fails (docs/security.md, "Secrets")."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from suho_mt5.errors import redact
from tests import conftest
from tests.support.secrets import find_secrets, register


def _report(text: str) -> pytest.TestReport:
    return pytest.TestReport("t.py::t", ("t.py", 1, "t"), {}, "passed", None, "call",
                             sections=[("Captured stdout call", text)])


def _check(report: pytest.TestReport) -> None:
    class Outcome:
        def get_result(self) -> Any:
            return report

    hook = conftest.pytest_runtest_makereport(None, None)  # type: ignore[arg-type]
    next(hook)
    with contextlib.suppress(StopIteration):
        hook.send(Outcome())


def test_a_test_that_prints_a_registered_secret_fails() -> None:
    register("s3cret-of-the-check-0001")
    leaked, clean = _report("key: s3cret-of-the-check-0001"), _report("nothing here")
    _check(leaked)
    _check(clean)
    assert leaked.outcome == "failed" and "s3cr..." in str(leaked.longrepr)
    assert clean.outcome == "passed"


def test_redacted_urls_hold_no_password() -> None:
    register("pw-of-the-redaction-01")
    text = redact("cannot reach postgresql://gw:pw-of-the-redaction-01@db/mt5 and "
                  "nats://u:pw-of-the-redaction-01@n1:4222")
    assert not find_secrets(text) and "postgresql://gw:***@db/mt5" in text
