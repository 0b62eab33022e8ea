"""Tenant isolation (tests/integration/schema/test_isolation.py) on TimescaleDB."""

import pytest

from tests.integration.schema.test_isolation import *  # noqa: F403

pytestmark = pytest.mark.timescale
