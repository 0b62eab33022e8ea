"""Benchmarks of suho-mt5, run with ``python -m benchmarks`` (``make bench``).

Each area registers a section with :func:`benchmarks._registry.section`; ``__main__`` runs
every registered section in one process and writes ``docs/benchmarks.md``. To add one (DB
writes, NATS, ...), create ``benchmarks/<area>.py`` with a function decorated
``@section("Title", order=N)`` returning a :class:`~benchmarks._registry.Section`, and add the
module name to ``SECTION_MODULES`` in ``benchmarks/__main__.py``.
"""
