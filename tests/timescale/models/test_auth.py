"""API-key authentication on TimescaleDB, where hashes use the PBKDF2 fallback."""

from __future__ import annotations

from tests.integration.models.test_auth import (
    accounts,
    counting,
    test_every_path_runs_exactly_one_verification,
    test_every_refusal_is_the_same_error,
    test_only_the_gateway_roles_may_call_it,
    test_the_data_bridge_may_call_it,
    test_the_definer_reads_only_the_columns_it_needs,
    test_the_dummy_hash_has_the_scheme_and_cost_of_real_ones,
    test_the_right_key_gives_the_accounts_identity,
)

__all__ = [
    "accounts",
    "counting",
    "test_every_path_runs_exactly_one_verification",
    "test_every_refusal_is_the_same_error",
    "test_only_the_gateway_roles_may_call_it",
    "test_the_data_bridge_may_call_it",
    "test_the_definer_reads_only_the_columns_it_needs",
    "test_the_dummy_hash_has_the_scheme_and_cost_of_real_ones",
    "test_the_right_key_gives_the_accounts_identity",
]
