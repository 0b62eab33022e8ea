"""Who may append to the audit trail (issue #8, build 5), through real logins: a tenant
role only to the chain of the tenant it has set, never without a tenant; the actor is the
database's, not the caller's; nobody, the owner and superusers included, may change or
remove an event."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.db.compliance._support import Db, audit_rows, new_tenant, tenant_tx
from tests.db.schema._support import login_name

pytestmark = pytest.mark.engines("postgresql", "timescale")

INSERT_FOR = ("INSERT INTO mt5_audit_log (tenant_id, event_type, actor, payload)"
              " VALUES (:t, 'order.note', 'forged-actor', '{}')")
INSERT_OWN = ("INSERT INTO mt5_audit_log (event_type, actor, payload)"
              " VALUES ('order.note', 'forged-actor', '{}')")


def _refused(engine: Engine, tenant: str | None, sql: str, params: dict[str, str]) -> str:
    with pytest.raises(sa.exc.DBAPIError) as err, tenant_tx(engine, tenant) as conn:
        conn.execute(sa.text(sql), params)
    assert getattr(err.value.orig, "sqlstate", None) == "42501", err.value
    return str(err.value.orig)


@pytest.mark.parametrize("tenant", [None, ""], ids=["no tenant", "empty tenant"])
def test_a_tenant_role_without_a_tenant_cannot_append_to_any_chain(
    db: Db, login: Callable[[str], Engine], tenant: str | None
) -> None:
    victim = new_tenant("victim")
    with tenant_tx(db.engine, victim) as conn:  # the victim's chain exists
        conn.execute(sa.text(INSERT_OWN))
    app = login("mt5_app")
    message = _refused(app, tenant, INSERT_FOR, {"t": victim})
    assert "needs a tenant" in message
    assert len(audit_rows(db, victim)) == 1


def test_a_tenant_role_appends_only_to_the_chain_of_its_tenant(
    db: Db, login: Callable[[str], Engine]
) -> None:
    mine, other = new_tenant("mine"), new_tenant("other")
    app = login("mt5_app")
    _refused(app, mine, INSERT_FOR, {"t": other})
    with tenant_tx(app, mine) as conn:
        conn.execute(sa.text(INSERT_OWN))
        conn.execute(sa.text(INSERT_FOR), {"t": mine})
    assert len(audit_rows(db, mine)) == 2
    assert audit_rows(db, other) == []


def test_the_actor_is_the_database_role_and_the_app_user_a_pseudonym(
    db: Db, login: Callable[[str], Engine]
) -> None:
    tenant = new_tenant()
    app = login("mt5_app")
    with app.connect() as conn:
        role = conn.execute(sa.text("SELECT current_user")).scalar_one()
    with tenant_tx(app, tenant, user="alice@example.com") as conn:
        conn.execute(sa.text(
            "INSERT INTO mt5_audit_log (event_type, actor, app_user) VALUES"
            " ('order.note', 'forged-actor', 'forged-user')"))
    (row,) = audit_rows(db, tenant)
    assert row.actor == role
    assert row.app_user.startswith("psn_") and "alice" not in row.app_user
    with db.engine.connect() as conn:
        assert row.app_user == conn.execute(sa.text(
            "SELECT mt5_gdpr_pseudonym(:t, 'alice@example.com')"), {"t": tenant}).scalar_one()


def test_service_roles_name_the_tenant_without_setting_one(
    db: Db, login: Callable[[str], Engine]
) -> None:
    tenant = new_tenant()
    roles = ("mt5_ingest", "mt5_compliance")
    for role in roles:
        with tenant_tx(login(role), None) as conn:
            conn.execute(sa.text(INSERT_FOR), {"t": tenant})
    actors = [r.actor for r in audit_rows(db, tenant)]
    assert actors == [login_name(r) for r in roles]


@pytest.mark.parametrize("event_type", ["audit.checkpoint", "gdpr.erased"])
@pytest.mark.parametrize("role", ["mt5_app", "mt5_compliance"])
def test_reserved_event_types_are_written_only_by_the_schema(
    db: Db, login: Callable[[str], Engine], role: str, event_type: str
) -> None:
    tenant = new_tenant()
    _refused(login(role), tenant,
             "INSERT INTO mt5_audit_log (tenant_id, event_type) VALUES (:t, :e)",
             {"t": tenant, "e": event_type})


@pytest.mark.parametrize("statement", [
    "UPDATE public.mt5_audit_log SET payload = '{}'",
    "DELETE FROM public.mt5_audit_log",
    "TRUNCATE public.mt5_audit_log",
])
@pytest.mark.parametrize("role", [None, "mt5_owner", "mt5_maintenance", "mt5_app",
                                  "mt5_readonly", "mt5_ingest", "mt5_compliance"])
def test_no_role_changes_or_removes_an_event(
    db: Db, login: Callable[[str], Engine], role: str | None, statement: str
) -> None:
    tenant = new_tenant()
    with tenant_tx(db.engine, tenant) as conn:
        conn.execute(sa.text(INSERT_OWN))
    engine = db.engine if role is None else login(role)
    _refused(engine, tenant, statement, {})
    assert len(audit_rows(db, tenant)) == 1
