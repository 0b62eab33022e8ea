"""Every ```bash and ```python block of README.md runs, so the README cannot rot.

Each block runs from the repository root in a fresh process (bash with ``-e -u -o
pipefail``; the Python of this virtualenv, whose ``bin/`` is first on ``PATH`` so that
``suho-mt5`` is the checkout's), with ``SUHO_DATABASE_URL`` naming a fresh empty database on
native TimescaleDB as its superuser: what a DBA following the README has. An HTML comment
right before a block changes that:

* ``<!-- not run: REASON -->``: the block is skipped; the reason is required and shown;
* ``<!-- database: migrated -->``: the database is migrated first;
* ``<!-- database: migrated, login ROLE -->``: ... and ``SUHO_DATABASE_URL`` is a login in
  ROLE instead of the superuser (what an application connects as);
* ``..., nats`` at the end: ``SUHO_NATS_URL`` names a nats-server with JetStream, and
  ``ACCOUNT_ID`` an account of ``tenant_demo`` (created by the DBA, as the README says).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from suho_mt5.commands import account as account_commands
from suho_mt5.commands import db as db_commands
from suho_mt5.db import make_engine
from tests.db.schema._support import ensure_login, login_url

README = Path(__file__).resolve().parents[2] / "README.md"
LANGUAGES = ("bash", "python")

_BLOCK = re.compile(
    r"(?:<!--(?P<comment>[^>]*)-->\s*\n)?^```(?P<language>[a-z]*)[ \t]*\n(?P<code>.*?)^```[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_LOGIN = re.compile(r"database: migrated, login (\w+)")


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    code: str
    comment: str

    @property
    def id(self) -> str:
        return f"README.md:{self.line}-{self.language}"

    @property
    def skip_reason(self) -> str | None:
        if not self.comment.startswith("not run"):
            return None
        return self.comment.removeprefix("not run").lstrip(":").strip()


def blocks(text: str) -> list[Block]:
    found = []
    for match in _BLOCK.finditer(text):
        if match["language"] in LANGUAGES:
            line = text.count("\n", 0, match.start("code"))
            found.append(Block(line, match["language"], match["code"],
                               (match["comment"] or "").strip()))
    return found


BLOCKS = blocks(README.read_text())


def marker_problems(found: list[Block]) -> list[str]:
    """Markers that are not understood, and skips without a reason."""
    problems = []
    for block in found:
        if block.skip_reason is not None:
            if len(block.skip_reason) < 10:
                problems.append(f"{block.id}: a skipped block needs a reason")
        elif block.comment and not block.comment.startswith("database: migrated"):
            problems.append(f"{block.id}: unknown marker {block.comment!r}")
    return problems


def test_the_readme_has_blocks_and_every_skip_says_why() -> None:
    assert {b.language for b in BLOCKS} == set(LANGUAGES)
    assert marker_problems(BLOCKS) == []
    # Most blocks run; a README whose every block is skipped tests nothing.
    assert sum(b.skip_reason is None for b in BLOCKS) > len(BLOCKS) // 2


def test_a_skip_without_a_reason_or_an_unknown_marker_is_caught() -> None:
    fence = "```"
    text = (f"<!-- not run: -->\n{fence}bash\nfalse\n{fence}\n\n"
            f"<!-- run it twice -->\n{fence}python\nraise SystemExit(1)\n{fence}\n\n"
            f"<!-- not run: needs a broker account -->\n\n{fence}bash\nfalse\n{fence}\n"
            f"{fence}\nlayout, not code\n{fence}\n")
    found = blocks(text)
    assert [(b.line, b.language) for b in found] == [(2, "bash"), (7, "python"), (13, "bash")]
    assert marker_problems(found) == ["README.md:2-bash: a skipped block needs a reason",
                                      "README.md:7-python: unknown marker 'run it twice'"]


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_readme_block_runs(block: Block, make_ts_database: Callable[[], str],
                           request: pytest.FixtureRequest) -> None:
    if block.skip_reason is not None:
        pytest.skip(f"not run: {block.skip_reason}")
    # The URL a DBA has (psql takes it too), not SQLAlchemy's "postgresql+psycopg://".
    url = make_ts_database().replace("postgresql+psycopg://", "postgresql://", 1)
    if block.comment.startswith("database: migrated"):
        db_commands.upgrade(url)
    account_id = None
    if block.comment.endswith(", nats"):
        account_id = account_commands.create(
            url, tenant_id="tenant_demo", user_id="user_001", broker_name="IC Markets",
            broker_server="ICMarkets-Demo", mt5_login=5012345, mt5_account_number="5012345",
        ).account.account_id
    role = _LOGIN.search(block.comment)
    if role is not None:
        admin = make_engine(url)
        try:
            ensure_login(admin, role[1])
        finally:
            admin.dispose()
        url = login_url(url, role[1]).render_as_string(hide_password=False)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "SUHO_DATABASE_URL": url,
           "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    if account_id is not None:
        env["SUHO_NATS_URL"] = request.getfixturevalue("nats_server").url
        env["ACCOUNT_ID"] = str(account_id)
    command = (["bash", "-euo", "pipefail", "-c", block.code] if block.language == "bash"
               else [sys.executable, "-c", block.code])
    result = subprocess.run(command, cwd=README.parent, env=env, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, (
        f"{block.id} failed with exit status {result.returncode}\n--- code\n{block.code}"
        f"--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}")
