"""The database's loose ends of docs/security.md, through real logins: health_check() warns
about the login roles that anyone could log in as, and says what it cannot see."""

from __future__ import annotations

import sqlalchemy as sa

from suho_mt5.db import make_engine

from ._support import GatewayDb


def _health(url: str) -> dict[str, tuple[str, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {row.component: (row.status, row.detail) for row in
                    conn.execute(sa.text("SELECT * FROM health_check()"))}
    finally:
        engine.dispose()


def test_health_check_warns_about_passwords_and_trust_rules_of_the_login_roles(
    gw_db: GatewayDb,
) -> None:
    engine = make_engine(gw_db.owner_url)
    try:
        with engine.connect() as conn:
            trust = conn.execute(sa.text(
                "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'"
                " AND error IS NULL AND 'all' = ANY(user_name)")).scalar_one()
        status, detail = _health(gw_db.owner_url)["login_roles"]
        if trust:  # the test servers trust local connections: that is what it must see
            assert status == "warning" and "trust" in detail, detail
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER ROLE mt5_owner PASSWORD 'owner-pw-9d1c'")
        try:
            status, detail = _health(gw_db.owner_url)["login_roles"]
            assert status == "warning" and "mt5_owner has a password" in detail, detail
        finally:
            with engine.begin() as conn:
                conn.exec_driver_sql("ALTER ROLE mt5_owner PASSWORD NULL")
        status, detail = _health(gw_db.owner_url)["login_roles"]
        assert "has a password" not in detail
    finally:
        engine.dispose()
    # A login in mt5_app (the gateway's) cannot read pg_authid or pg_hba_file_rules.
    status, detail = _health(gw_db.gateway_url)["login_roles"]
    assert status == "ok" and "not visible" in detail
