"""docs/protocol.md stays generated from the code; docstring examples run."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import suho_mt5.protocol
from suho_mt5.protocol import _spec

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def test_protocol_md_holds_the_generated_tables() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    assert _spec.render() in text, "run: python -m suho_mt5.protocol._spec"
    assert _spec.rules_table() in text, "run: python -m suho_mt5.protocol._spec"


@pytest.mark.parametrize(
    "module",
    ["__init__", "_codec", "_enums", "_framer", "_messages"],
)
def test_docstring_examples_run(module: str) -> None:
    name = "suho_mt5.protocol" + ("" if module == "__init__" else f".{module}")
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_public_api_is_exported() -> None:
    for name in suho_mt5.protocol.__all__:
        assert hasattr(suho_mt5.protocol, name), name
    assert sorted(suho_mt5.protocol.__all__) == sorted(set(suho_mt5.protocol.__all__))
