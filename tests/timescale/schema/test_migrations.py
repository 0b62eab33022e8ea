"""The shared migration tests (tests/integration/schema/test_migrations.py) on TimescaleDB."""

import pytest

from tests.integration.schema.test_migrations import *  # noqa: F403

pytestmark = pytest.mark.timescale
