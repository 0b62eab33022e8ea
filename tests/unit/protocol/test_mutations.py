"""The mutation test: every planted mistake in the reference decoder fails some vector."""

from __future__ import annotations

import pytest

from .mutants import Mutant, describe, failures, mutants
from .vector_files import VECTORS

pytestmark = pytest.mark.unit

MUTANTS = mutants()


def test_the_unmutated_reference_passes_every_vector() -> None:
    assert failures(Mutant("none"), VECTORS) == []


def test_every_planted_mistake_fails_at_least_one_vector() -> None:
    survivors = [m.name for m in MUTANTS if not failures(m, VECTORS)]
    assert survivors == [], (
        f"{len(survivors)} of {len(MUTANTS)} planted mistakes pass every vector; add vectors "
        f"(tests/unit/protocol/rule_vectors.py) that pin them:\n{describe(survivors)}"
    )


def test_the_mutants_cover_every_rule_and_every_kind_of_mistake() -> None:
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names))
    for word in ("drop", "swap", "widen", "narrow", "padding", "frame:", "stream:"):
        assert any(n.startswith(word) or word in n for n in names), word
    assert any("0x7E of" in n or "end 126 of" in n for n in names) or any(
        n.startswith("widen high end 126") for n in names
    )


def test_a_rule_without_its_vectors_is_a_surviving_mistake() -> None:
    # What makes the test above fail when a rule is added without vectors: take away the
    # vectors that name a rule, and dropping that rule goes unnoticed.
    from suho_mt5.protocol._rules import RULES

    from .vector_files import Vectors

    by_name = {m.name: m for m in MUTANTS}
    for rule in RULES:
        kept = [  # untagged vectors (another file's) may pin anything: left out
            v
            for v in VECTORS.invalid
            if "rule" in v and rule.id not in (v["rule"], v.get("also_violates"))
        ]
        without = Vectors(VECTORS.valid, kept)  # frames and streams repeat some header rules
        assert failures(by_name[f"drop {rule.id}"], without) == [], rule.id
