"""The api_keys tests (tests/integration/schema/test_api_keys.py) on TimescaleDB."""

import pytest

from tests.integration.schema.test_api_keys import *  # noqa: F403

pytestmark = pytest.mark.timescale
