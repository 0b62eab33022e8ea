"""The audit log (tests/integration/schema/test_audit_log.py) on TimescaleDB."""

import pytest

from tests.integration.schema.test_audit_log import *  # noqa: F403

pytestmark = pytest.mark.timescale
