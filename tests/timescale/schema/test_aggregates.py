"""Aggregate views against raw GROUP BYs (tests/integration/schema/test_aggregates.py)."""

import pytest

from tests.integration.schema.test_aggregates import *  # noqa: F403

pytestmark = pytest.mark.timescale
