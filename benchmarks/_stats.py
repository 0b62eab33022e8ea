"""The one quantile every benchmark section reports with."""

from __future__ import annotations

__all__ = ["quantile"]


def quantile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of ``values`` (``nan`` when there are none)."""
    if not values:
        return float("nan")
    data = sorted(values)
    return data[min(len(data) - 1, int(q * len(data)))]
