"""The feedback loop (tests/integration/schema/test_feedback_loop.py) on TimescaleDB."""

import pytest

from tests.integration.schema.test_feedback_loop import *  # noqa: F403

pytestmark = pytest.mark.timescale
