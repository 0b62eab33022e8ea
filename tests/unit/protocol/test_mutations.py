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
    for word in ("drop", "swap", "widen", "narrow", "padding", "frame:", "stream:", "encode:",
                 "first 32 of 64 bytes", "low byte only", "right after the first NUL"):
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


# Each vector class added for what outside implementations still got wrong, and the mistake
# it is there for: without the class's vectors the mistake passes, with them it fails.
NEW_CLASSES: list[tuple[str, str, list[str]]] = [
    ("text rules at every position", "text.", [
        "HELLO.api_key: text rules on its first 32 of 64 bytes only",
        "ERROR.detail: text rules on its first 32 of 64 bytes only",
        "GOODBYE.detail: text rules on its first 32 of 64 bytes only",
        "BROKER_QUOTE.symbol: text rules on its first 8 of 16 bytes only",
    ]),
    ("a stray byte after the NUL, not right after it", "text.", [
        "text: only the byte right after the first NUL must be NUL",
    ]),
    ("two-byte codes with a non-zero high byte", "two_byte.", [
        "ERROR.code: a two-byte code read as its low byte only",
        "GOODBYE.code: a two-byte code read as its low byte only",
    ]),
    ("encoder refusals", "encode.", [
        "encode: cut a text that is too long",
        "encode: report a text that is too long at the field's offset",
        "encode: write a character above 0xFF as its low byte",
        "encode: wrap a value to the field's width",
        "encode: do not check the packet with the decoder's rules",
    ]),
    ("a bad packet's tail and garbage in different feeds",
     "stream.bad_packet_tail_and_garbage_in_other_feeds", [
         "stream: add garbage of a later feed to the skip of the bad packet before it",
     ]),
    ("a magic and a bad version in fewer than 144 bytes at the end", "stream.bad_version_start", [
        "stream: skip a packet start held back at the end as soon as its version is wrong",
    ]),
]


@pytest.mark.parametrize(("what", "prefix", "names"), NEW_CLASSES, ids=[c[0] for c in NEW_CLASSES])
def test_each_new_vector_class_is_what_fails_its_mistake(what: str, prefix: str,
                                                         names: list[str]) -> None:
    from .vector_files import Vectors

    def keep(items: list[dict[str, object]]) -> list[dict[str, object]]:
        return [v for v in items if not str(v["name"]).startswith(prefix)]

    without = Vectors(keep(VECTORS.valid), keep(VECTORS.invalid), keep(VECTORS.frames),
                      keep(VECTORS.streams), keep(VECTORS.encode))
    by_name = {m.name: m for m in MUTANTS}
    for name in names:
        assert failures(by_name[name], VECTORS), f"{name}: not noticed ({what})"
        assert failures(by_name[name], without) == [], f"{name}: noticed without {prefix}*"
