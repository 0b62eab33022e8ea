"""Schema tests: the fixtures (``backend``, ``fresh_url``, ``schema``, ``seeded``) come from
``tests/db/conftest.py`` and run every test here on each engine."""
