"""CRUD through the models as the application role on TimescaleDB hypertables; every enum
value round-trips; new rows take the session's tenant."""

from __future__ import annotations

from tests.integration.models.test_crud import (
    compliance,
    test_a_row_of_another_tenant_is_refused_before_the_database,
    test_an_unknown_enum_value_is_refused_in_python,
    test_compliance_reports_are_written_by_the_compliance_role,
    test_crud_through_the_models_as_the_application_role,
    test_every_enum_value_round_trips,
    test_new_rows_take_the_sessions_tenant,
    test_the_audit_log_is_written_without_reading_and_chained_by_the_database,
    test_the_catalog_kinds_read_back_as_enums,
    test_what_the_application_role_may_not_do_is_refused,
)

__all__ = [
    "compliance",
    "test_a_row_of_another_tenant_is_refused_before_the_database",
    "test_an_unknown_enum_value_is_refused_in_python",
    "test_compliance_reports_are_written_by_the_compliance_role",
    "test_crud_through_the_models_as_the_application_role",
    "test_every_enum_value_round_trips",
    "test_new_rows_take_the_sessions_tenant",
    "test_the_audit_log_is_written_without_reading_and_chained_by_the_database",
    "test_the_catalog_kinds_read_back_as_enums",
    "test_what_the_application_role_may_not_do_is_refused",
]
