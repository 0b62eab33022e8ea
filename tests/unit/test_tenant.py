"""Tenant ids are checked before any database work."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, event

from suho_mt5.db.tenant import TenantSession, tenant_session, validate_tenant_id
from suho_mt5.errors import TenantError


@pytest.mark.parametrize("good", ["tenant_demo", "t", "4f1c2a9e-0b1d-4c55-9f00-2b3c4d5e6f70",
                                  "acme.eu:desk-1", "ops@acme"])
def test_well_formed_tenant_ids_pass(good: str) -> None:
    assert validate_tenant_id(good) == good


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (None, "no tenant"),
        ("", "empty"),
        ("   ", "empty"),
        (42, "must be a string"),
        ("x" * 129, "malformed"),
        ("tenant'; DROP TABLE x; --", "malformed"),
        ("-leading-dash", "malformed"),
        ("tab\there", "malformed"),
    ],
)
def test_malformed_tenant_ids_raise_tenant_error(bad: object, message: str) -> None:
    with pytest.raises(TenantError, match=message):
        validate_tenant_id(bad)


def test_a_session_without_a_tenant_never_touches_the_database() -> None:
    # An engine whose every connection attempt is recorded: none may happen.
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    attempts: list[object] = []
    event.listen(engine, "do_connect", lambda *args: attempts.append(args))
    try:
        for bad in (None, ""):
            with pytest.raises(TenantError):
                tenant_session(engine, bad)  # type: ignore[arg-type]
            with pytest.raises(TenantError):
                TenantSession(engine, tenant_id=bad)  # type: ignore[arg-type]
    finally:
        engine.dispose()
    assert attempts == []


def test_timescaledb_psycopg_dialect_is_registered() -> None:
    from sqlalchemy.engine import make_url

    from suho_mt5.db._timescaledb_dialect import TimescaledbPsycopgDialect, register

    register()
    dialect_cls = make_url("timescaledb+psycopg://u@h/db").get_dialect()
    assert dialect_cls is TimescaledbPsycopgDialect
    assert dialect_cls.name == "timescaledb"
