"""``mypy --strict`` accepts typed code that uses the models, and the models' types are
precise enough to catch mistakes (a deliberately wrong module must fail)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = REPO_ROOT / "tests" / "typing_example" / "models_usage.py"

MISTAKES = '''
from decimal import Decimal
from sqlalchemy import select
from sqlalchemy.orm import Session
from suho_mt5.models import OrderStatus, SignalExecution, TradeOrder, UserAccount

def mistakes(session: Session, account: UserAccount) -> None:
    order = session.scalars(select(TradeOrder)).one()
    status: str = order.status              # fine: a StrEnum is a str
    ticket: str = order.ticket              # error 1: int
    profit: int = order.profit              # error 2: Decimal
    order.status = "closed"                 # error 3: needs OrderStatus
    execution = session.scalars(select(SignalExecution)).one()
    execution.signal.symbol                 # error 4: the signal may be None
    for o in account.orders:                # error 5: write-only, not iterable
        pass
    # Not caught: declarative constructors take **kwargs (docs/models.md says so).
    UserAccount(no_such_column=1)
'''


def test_code_using_the_models_passes_mypy_strict(tmp_path: Path) -> None:
    mistakes = tmp_path / "mistakes.py"
    mistakes.write_text(MISTAKES)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", str(tmp_path / "cache"), "--config-file",
         str(REPO_ROOT / "pyproject.toml"), str(EXAMPLE), str(mistakes)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    lines = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert not [line for line in lines if "models_usage.py" in line], result.stdout
    wrong = sorted(int(line.split(":")[1]) for line in lines if "mistakes.py" in line)
    # One error per marked line of MISTAKES, nothing else.
    marked = [n for n, text in enumerate(MISTAKES.splitlines(), start=1) if "# error" in text]
    assert sorted(set(wrong)) == marked, result.stdout
