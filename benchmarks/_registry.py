"""The registry of benchmark sections and the timing helper they share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Settings:
    """How hard to measure: ``repeats`` timings of at least ``min_time`` seconds each."""

    repeats: int = 7
    min_time: float = 0.2


@dataclass(frozen=True)
class Rate:
    """Operations per second over several repeats."""

    best: float
    median: float


@dataclass(frozen=True)
class Row:
    """One line of a section's table. ``target``: the value ``median`` must reach."""

    name: str
    rate: Rate | None
    unit: str
    target: float | None = None
    target_text: str = ""
    note: str = ""
    value_text: str = ""

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.rate is None:
            return None
        return self.rate.median >= self.target


@dataclass
class Section:
    title: str
    intro: str = ""
    rows: list[Row] = field(default_factory=list)
    extra_markdown: str = ""


@dataclass(frozen=True)
class _Entry:
    title: str
    order: int
    run: Callable[[Settings], Section]


SECTIONS: list[_Entry] = []


def section(
    title: str, *, order: int = 100
) -> Callable[[Callable[[Settings], Section]], Callable[[Settings], Section]]:
    """Register a function ``(Settings) -> Section`` as a section of docs/benchmarks.md."""

    def register(run: Callable[[Settings], Section]) -> Callable[[Settings], Section]:
        SECTIONS.append(_Entry(title, order, run))
        return run

    return register


def measure(loop: Callable[[int], None], ops_per_call: int, settings: Settings) -> Rate:
    """Time ``loop(n)`` (which performs ``n * ops_per_call`` operations) and return rates.

    ``n`` is calibrated so that one timing lasts at least ``settings.min_time``; the garbage
    collector stays on, as in production.
    """
    n = 1
    while True:
        start = time.perf_counter()
        loop(n)
        elapsed = time.perf_counter() - start
        if elapsed >= settings.min_time / 4 or n >= 1 << 20:
            break
        n *= 2
    n = max(1, int(n * settings.min_time / max(elapsed, 1e-9)))
    rates = []
    for _ in range(settings.repeats):
        start = time.perf_counter()
        loop(n)
        elapsed = time.perf_counter() - start
        rates.append(n * ops_per_call / elapsed)
    return Rate(max(rates), statistics.median(rates))
