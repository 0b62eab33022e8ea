"""Every validation rule of the spec, with the vectors that pin it: none is without one."""

from __future__ import annotations

from collections import defaultdict

import pytest

from suho_mt5.protocol import MessageType, decode
from suho_mt5.protocol._codec import reference_decode
from suho_mt5.protocol._rules import RULES, first_violation, violation

from .rule_vectors import rules_of
from .vector_files import VECTORS

pytestmark = pytest.mark.unit

RULE_IDS = {r.id for r in RULES}


def pinning() -> dict[str, list[str]]:
    """Rule id -> the invalid vectors that the rule, and no earlier one, rejects."""
    table: dict[str, list[str]] = defaultdict(list)
    for vector in VECTORS.invalid:
        if "rule" in vector:
            table[vector["rule"]].append(vector["name"])
    return table


def test_every_rule_of_the_spec_is_pinned_by_a_vector() -> None:
    table = pinning()
    listing = [f"{r.id}: {', '.join(table.get(r.id, [])) or 'NONE'}" for r in RULES]
    print("\n".join(listing))  # the list, with pytest -s
    unpinned = [r.id for r in RULES if not table.get(r.id)]
    assert unpinned == [], f"rules without a vector: {unpinned}"
    assert set(table) <= RULE_IDS, f"vectors name unknown rules: {set(table) - RULE_IDS}"


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS.invalid if "rule" in v], ids=lambda v: v["name"]
)
def test_the_named_rule_is_the_first_one_broken(vector: dict[str, object]) -> None:
    packet = bytes.fromhex(str(vector["hex"]))
    found = first_violation(packet)
    assert found is not None
    assert found[0].id == vector["rule"]
    assert (type(found[1]).__name__, found[1].offset) == (vector["error"], vector["offset"])
    if "also_violates" in vector:
        second = next(r for r in RULES if r.id == vector["also_violates"])
        if second.kind != "length":  # other rules need the whole packet
            assert violation(second, packet) is not None


def test_every_pair_of_rules_run_in_a_row_is_pinned_in_order() -> None:
    ordered = {(v["rule"], v["also_violates"]) for v in VECTORS.invalid if "also_violates" in v}
    missing = [
        (a.id, b.id)
        for mtype in MessageType
        for a, b in zip(rules_of(mtype), rules_of(mtype)[1:], strict=False)
        if (a.id, b.id) not in ordered
    ]
    assert missing == []


def test_the_reference_decoder_is_the_rule_list() -> None:
    # decode's fallback is the rules run in order; both agree on every vector.
    for vector in (*VECTORS.valid, *VECTORS.invalid):
        packet = bytes.fromhex(vector["hex"])
        outcomes = []
        for decoder in (decode, reference_decode):
            try:
                outcomes.append(decoder(packet))
            except Exception as exc:
                outcomes.append((type(exc), getattr(exc, "offset", None)))
        assert outcomes[0] == outcomes[1], vector["name"]
