"""Secrets the suite uses, and the check that none of them shows up where the project
writes: every test's captured output (stdout, stderr, logs) and failure report, and the
logs of the gateway processes the tests start (docs/security.md, "Secrets").

A secret is registered by the code that makes it (:func:`register`); ``tests/conftest.py``
fails a test whose captured output holds one. The API key a test itself prints on purpose
(``account create`` shows a new key once) is not registered.
"""

from __future__ import annotations

__all__ = ["SECRETS", "find_secrets", "register"]

SECRETS: set[str] = set()


def register(*secrets: str) -> None:
    """Remember ``secrets`` (at least 8 characters: shorter ones would match by chance)."""
    SECRETS.update(s for s in secrets if len(s) >= 8)


def find_secrets(text: str) -> list[str]:
    """The registered secrets in ``text``, each shown by its first 4 characters only."""
    return sorted(f"{s[:4]}..." for s in SECRETS if s in text)
