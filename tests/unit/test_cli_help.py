"""Every command of ``suho-mt5``, found by walking the ``main`` group, answers ``--help``
with its usage, a description and, for commands that do something, an example."""

from __future__ import annotations

import re
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from suho_mt5.cli import main


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from walk(command.commands[name], (*path, name))


COMMANDS = list(walk(main))
#: Every command that does something (not a group) carries an "Example:" in its help.


def command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


WITH_EXAMPLES = {p for p in COMMANDS if not isinstance(command_at(p), click.Group)}
#: The whole tree: a command added or removed shows here.
EXPECTED = {
    ("db", "upgrade"), ("db", "downgrade"), ("db", "current"), ("db", "history"),
    ("db", "sql"), ("db", "check"), ("db", "maintain"), ("db", "health"), ("db", "info"),
    ("account", "create"), ("account", "list"), ("account", "rotate-key"),
    ("account", "deactivate"), ("streams", "setup"), ("ingest", "run"), ("ingest", "replay"),
    ("gateway", "run"), ("simulate",), ("signal", "send"), ("audit", "verify"),
    ("audit", "digest"), ("audit", "checkpoint"), ("audit", "correct"),
    ("report", "compliance"), ("report", "transactions"), ("gdpr", "erase"),
    ("feedback", "export"), ("monitor",), ("cache", "grant-tenant"), ("cache", "grant-writer"),
    ("cache", "revoke-tenant"), ("cache", "users"), ("cache", "rebuild"), ("cache", "stats"),
    ("cache", "get"),
}


def test_the_walk_finds_the_commands() -> None:
    assert EXPECTED <= WITH_EXAMPLES
    assert {("db",), ("account",), ("signal",), ("audit",)} <= set(COMMANDS) - WITH_EXAMPLES


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "main")
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: main" + "".join(f" {p}" for p in path))
    description = result.output.split("\n\n")[1].strip()
    assert description and not description.startswith("Options:"), result.output
    short = CliRunner().invoke(main, [*path, "-h"])
    assert short.exit_code == 0 and short.output == result.output
    if path in WITH_EXAMPLES:
        example = re.search(r"Example:\n\s+(suho-mt5 .*)", result.output)
        assert example and example[1].startswith("suho-mt5 " + " ".join(path)), result.output
