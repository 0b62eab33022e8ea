"""Every Python example in docs/models.md runs, in order, against a migrated database, as a
login role that is a member of ``mt5_app`` (what the page tells developers to use)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from suho_mt5.db import DATABASE_URL_ENV
from tests.db.schema._support import Schema

DOC = Path(__file__).resolve().parents[3] / "docs" / "models.md"


def _examples() -> list[tuple[int, str]]:
    text = DOC.read_text()
    return [
        (text[: m.start()].count("\n") + 2, m.group(1))
        for m in re.finditer(r"```python\n(.*?)```", text, re.DOTALL)
    ]


def test_the_models_page_has_examples() -> None:
    assert len(_examples()) >= 8


def test_every_example_in_the_models_page_runs(
    db: Schema, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    role = f"suho_docs_{uuid.uuid4().hex[:8]}"
    with db.engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'docs' IN ROLE mt5_app")
    url = make_url(db.url).set(username=role, password="docs")
    monkeypatch.setenv(DATABASE_URL_ENV, url.render_as_string(hide_password=False))
    namespace: dict[str, Any] = {"__name__": "docs_models"}
    try:
        for line, code in _examples():
            exec(compile(code, f"{DOC}:{line}", "exec"), namespace)
    finally:
        engine = namespace.get("engine")
        if isinstance(engine, sa.Engine):
            engine.dispose()
        with db.engine.begin() as conn:
            conn.exec_driver_sql(f"DROP ROLE {role}")
    printed = capsys.readouterr().out
    assert "empty tenant_id" in printed
    assert "is read-only" in printed
    assert "invalid account id or API key" in printed
