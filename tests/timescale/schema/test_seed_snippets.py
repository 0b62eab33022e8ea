"""The seed's SQL snippets (tests/integration/schema/test_seed_snippets.py) on TimescaleDB."""

import pytest

from tests.integration.schema.test_seed_snippets import *  # noqa: F403

pytestmark = pytest.mark.timescale
