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
    """One line of a section's table.

    ``target``: what the median (or ``measured``) must reach: ``>=`` unless ``target_text``
    starts with a bare ``>``.
    """

    name: str
    rate: Rate | None
    unit: str
    target: float | None = None
    target_text: str = ""
    note: str = ""
    measured: float | None = None
    """A single figure (e.g. a ratio) for rows without a ``rate``."""

    @property
    def value(self) -> float | None:
        return self.rate.median if self.rate is not None else self.measured

    @property
    def passed(self) -> bool | None:
        value = self.value
        if self.target is None or value is None:
            return None
        return (
            value > self.target
            if self.target_text.startswith(">") and not (self.target_text.startswith(">="))
            else value >= self.target
        )


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


def measure_pair(
    first: Callable[[int], None],
    first_ops: int,
    second: Callable[[int], None],
    second_ops: int,
    settings: Settings,
) -> tuple[Rate, Rate, float]:
    """Time two loops alternately and return both rates and the median of the per-repeat
    ratios ``first / second``.

    On a shared machine the load changes during a run; timing the two sides in alternation
    exposes both to the same conditions, so their ratio is steadier than the ratio of two
    medians taken one after the other.
    """
    sizes = []
    for loop in (first, second):
        n = 1
        while True:
            start = time.perf_counter()
            loop(n)
            elapsed = time.perf_counter() - start
            if elapsed >= settings.min_time / 4 or n >= 1 << 20:
                break
            n *= 2
        sizes.append(max(1, int(n * settings.min_time / max(elapsed, 1e-9))))
    rates: tuple[list[float], list[float]] = ([], [])
    for _ in range(settings.repeats):
        for side, (loop, ops, n) in enumerate(
            ((first, first_ops, sizes[0]), (second, second_ops, sizes[1]))
        ):
            start = time.perf_counter()
            loop(n)
            rates[side].append(n * ops / (time.perf_counter() - start))
    ratios = [a / b for a, b in zip(*rates, strict=True)]
    return (
        Rate(max(rates[0]), statistics.median(rates[0])),
        Rate(max(rates[1]), statistics.median(rates[1])),
        statistics.median(ratios),
    )
