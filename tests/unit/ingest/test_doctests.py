"""The examples in the ingest modules' docstrings run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["suho_mt5._subjects", "suho_mt5.ingest.rows", "suho_mt5.ingest.reconcile",
           "suho_mt5.ingest.risk", "suho_mt5.ingest.writer", "suho_mt5.ingest.streams",
           "suho_mt5.ingest.status", "suho_mt5.ingest.bridge"]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
