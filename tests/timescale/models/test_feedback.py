"""The seed's ML feedback query with the models on TimescaleDB hypertables."""

from __future__ import annotations

from tests.integration.models.test_feedback import (
    feedback,
    test_marking_feedback_processed_empties_the_query,
    test_the_ml_feedback_query_matches_the_raw_sql,
)

__all__ = [
    "feedback",
    "test_marking_feedback_processed_empties_the_query",
    "test_the_ml_feedback_query_matches_the_raw_sql",
]
