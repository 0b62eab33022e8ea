"""What the CLI tests share: the rule for a failing command's output."""

from __future__ import annotations

from click.testing import Result

__all__ = ["one_error_line"]


def one_error_line(result: Result, text: str) -> None:
    """The command failed with exit status 1 and printed exactly one ``error: ...`` line
    holding ``text``, and no traceback."""
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 1, (result.exit_code, result.output)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], lines
