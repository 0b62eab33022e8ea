"""Tenant sessions on the single-backend TimescaleDB engine, and the read-only classes over
the continuous aggregates' tenant views (real-time aggregation: no refresh needed)."""

from __future__ import annotations

from tests.integration.models.test_tenancy import (
    pool_of_one,
    seeded,
    test_a_failed_tenant_transaction_leaves_no_tenant_behind,
    test_a_tenant_cannot_write_into_another_tenants_account,
    test_aggregates_refuse_writes_in_the_database,
    test_aggregates_refuse_writes_in_the_orm,
    test_aggregates_show_the_sessions_tenant_only,
    test_one_pooled_connection_serves_two_tenants_without_leaking,
)

__all__ = [
    "pool_of_one",
    "seeded",
    "test_a_failed_tenant_transaction_leaves_no_tenant_behind",
    "test_a_tenant_cannot_write_into_another_tenants_account",
    "test_aggregates_refuse_writes_in_the_database",
    "test_aggregates_refuse_writes_in_the_orm",
    "test_aggregates_show_the_sessions_tenant_only",
    "test_one_pooled_connection_serves_two_tenants_without_leaking",
]
