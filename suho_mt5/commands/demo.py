"""The demo command: run the pipeline, return its report."""

from __future__ import annotations

from typing import Any

from suho_mt5.demo import DemoOptions, run_demo

__all__ = ["DemoOptions", "demo"]


def demo(options: DemoOptions, progress: Any = None) -> dict[str, Any]:
    """Run ``suho-mt5 demo`` with ``options``; ``progress(step)`` is told each step."""
    return run_demo(options, progress or (lambda _: None))
