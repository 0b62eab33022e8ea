"""The constraints tests (tests/integration/schema/test_constraints.py) on TimescaleDB."""

import pytest

from tests.integration.schema.test_constraints import *  # noqa: F403

pytestmark = pytest.mark.timescale
