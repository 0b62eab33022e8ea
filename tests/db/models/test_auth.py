"""API-key authentication: the right key gives the account's identity; anything else gives
the same refusal after the same work (counted, not timed: timing tests are flaky).

Shared by both server lanes: bcrypt through pgcrypto on native PostgreSQL, the PBKDF2
fallback on the TimescaleDB engine (no pgcrypto there).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ProgrammingError

from suho_mt5.db import AccountIdentity, authenticate
from suho_mt5.db.auth import REFUSED
from suho_mt5.errors import AuthenticationError, DatabaseError
from tests.db.schema._support import (
    Schema,
    ensure_login,
    is_single_backend,
    login_url,
    schema_engine,
    session,
)

KEY = "k3y-of-the-active-account"


@dataclass(frozen=True)
class Accounts:
    active: uuid.UUID
    inactive: uuid.UUID
    keyless: uuid.UUID


@pytest.fixture(scope="module")
def accounts(db: Schema) -> Accounts:
    ids = Accounts(uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    rows = [
        (ids.active, "tenant_auth_a", "user_a", 1, KEY, True),
        (ids.inactive, "tenant_auth_b", "user_b", 2, KEY, False),
        (ids.keyless, "tenant_auth_b", "user_c", 3, None, True),
    ]
    with session(db.engine, commit=True) as conn:
        for account_id, tenant, user, login, key, active in rows:
            conn.execute(sa.text(
                "INSERT INTO mt5_user_accounts (account_id, tenant_id, user_id, broker_name,"
                " broker_server, mt5_login, mt5_account_number, account_type, api_key_hash,"
                " is_active) VALUES (:a, :t, :u, 'ICMarkets', 'ICMarkets-Demo', :l, '1', 'demo',"
                " CASE WHEN CAST(:k AS text) IS NULL THEN NULL ELSE hash_api_key(:k) END, :act)"),
                {"a": account_id, "t": tenant, "u": user, "l": login, "k": key, "act": active})
    return ids


def test_the_right_key_gives_the_accounts_identity(app: Engine, accounts: Accounts) -> None:
    identity = authenticate(app, accounts.active, KEY)
    assert identity == AccountIdentity("tenant_auth_a", "user_a", accounts.active)
    # A string id works too, and a Connection in the caller's transaction.
    with app.connect() as conn:
        assert authenticate(conn, str(accounts.active), KEY) == identity


def _refusals(accounts: Accounts) -> dict[str, tuple[uuid.UUID | str, str]]:
    return {
        "wrong key": (accounts.active, KEY + "x"),
        "empty key": (accounts.active, ""),
        "unknown account": (uuid.uuid4(), KEY),
        "inactive account": (accounts.inactive, KEY),
        "account without key": (accounts.keyless, KEY),
        "malformed account id": ("not-a-uuid", KEY),
    }


def test_every_refusal_is_the_same_error(app: Engine, accounts: Accounts) -> None:
    messages = {}
    for case, (account_id, key) in _refusals(accounts).items():
        with pytest.raises(AuthenticationError) as caught:
            authenticate(app, account_id, key)
        messages[case] = str(caught.value)
    assert set(messages.values()) == {REFUSED}, messages


@pytest.fixture
def counting(db: Schema) -> Iterator[Connection]:
    """A connection as ``mt5_app`` that counts function calls (``track_functions``, which
    only a superuser may set: for the login, as a role setting read when it logs in)."""
    if is_single_backend(db.url):
        with db.engine.connect() as conn:
            conn.exec_driver_sql("SET track_functions = 'all'")
            conn.exec_driver_sql("SET ROLE mt5_app")
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.exec_driver_sql("RESET ROLE")
                conn.exec_driver_sql("RESET track_functions")
                conn.commit()
        return
    login = ensure_login(db.engine, "mt5_app")
    with db.engine.connect() as admin:
        admin.exec_driver_sql(f"ALTER ROLE {login} SET track_functions = 'all'")
        admin.commit()
    engine = schema_engine(login_url(db.url, "mt5_app").render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()
        with db.engine.connect() as admin:
            admin.exec_driver_sql(f"ALTER ROLE {login} RESET track_functions")
            admin.commit()


def _hash_function(conn: Connection) -> str:
    """The function doing the expensive part of verify_api_key() on this server."""
    crypto = conn.exec_driver_sql(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pgcrypto'").scalar()
    if crypto is not None:
        return f"{crypto}.crypt(text, text)"
    return "public.mt5_pbkdf2_sha256(bytea, bytea, integer)"


def test_every_path_runs_exactly_one_verification(
    counting: Connection, accounts: Accounts
) -> None:
    """The structural timing test: per call, one verify_api_key() and one slow hash
    (bcrypt's crypt() or PBKDF2), whether the account exists, is inactive, has no key, or
    the key is right or wrong; hash_api_key() never."""
    conn = counting
    functions = ("public.verify_api_key(text, text)", _hash_function(conn),
                 "public.hash_api_key(text)")
    conn.rollback()
    cases = {
        "right key": (accounts.active, KEY),
        "wrong key": (accounts.active, KEY + "x"),
        "unknown account": (uuid.uuid4(), KEY),
        "inactive account": (accounts.inactive, KEY),
        "account without key": (accounts.keyless, KEY),
    }
    def calls() -> list[int]:
        # This backend's not yet reported counts: they only grow inside one transaction.
        return [
            conn.execute(sa.text("SELECT coalesce(pg_stat_get_xact_function_calls("
                                 "CAST(:f AS regprocedure)), 0)"), {"f": f}).scalar_one()
            for f in functions
        ]

    counts = {}
    for case, (account_id, key) in cases.items():
        with conn.begin() as trans:
            before = calls()
            rows = conn.execute(sa.text("SELECT * FROM mt5_authenticate(:a, :k)"),
                                {"a": account_id, "k": key}).all()
            after = calls()
            counts[case] = (len(rows), *(b - a for a, b in zip(before, after, strict=True)))
            trans.rollback()
    expected = {case: (1 if case == "right key" else 0, 1, 1, 0) for case in cases}
    assert counts == expected


def test_the_dummy_hash_has_the_scheme_and_cost_of_real_ones(db: Schema) -> None:
    with session(db.engine) as conn:
        source = conn.exec_driver_sql(
            "SELECT prosrc FROM pg_proc WHERE oid = 'mt5_authenticate(uuid, text)'::regprocedure"
        ).scalar_one()
        real = conn.exec_driver_sql("SELECT hash_api_key('whatever')").scalar_one()
        has_pgcrypto = conn.exec_driver_sql(
            "SELECT count(*) > 0 FROM pg_extension WHERE extname = 'pgcrypto'").scalar_one()
        dummies = re.findall(r"'(\$[^']+)'", source)
        assert len(dummies) == 2
        dummy = dummies[0] if has_pgcrypto else dummies[1]
        # Same algorithm and parameters: bcrypt "$2a$12$", PBKDF2 "$pbkdf2-sha256$25000$".
        params = r"^(\$2[aby]\$\d\d\$|\$pbkdf2-sha256\$\d+\$)"
        assert re.match(params, dummy)[0] == re.match(params, real)[0]  # type: ignore[index]
        # ... and well-formed enough that verify_api_key() does the full work on it (the
        # account CHECK constraint accepts exactly the formats verify_api_key() hashes).
        assert conn.execute(
            sa.text("SELECT :d ~ substring(pg_get_constraintdef(oid) FROM '~ ''(.*)''::text')"
                    " FROM pg_constraint WHERE conname = 'mt5_user_accounts_api_key_hash_check'"),
            {"d": dummy}).scalar_one()


@pytest.mark.parametrize("role", ["mt5_readonly", "mt5_compliance", "mt5_owner"])
def test_only_the_gateway_roles_may_call_it(
    db: Schema, accounts: Accounts, role: str
) -> None:
    with session(db.engine, role) as conn, pytest.raises(DatabaseError, match="permission"):
        authenticate(conn, accounts.active, KEY)


def test_the_data_bridge_may_call_it(db: Schema, accounts: Accounts) -> None:
    with session(db.engine, "mt5_ingest") as conn:
        assert authenticate(conn, accounts.active, KEY).tenant_id == "tenant_auth_a"


def test_the_definer_reads_only_the_columns_it_needs(db: Schema) -> None:
    with session(db.engine, "mt5_maintenance") as conn:
        conn.exec_driver_sql("SELECT account_id, tenant_id, user_id, api_key_hash, is_active "
                             "FROM mt5_user_accounts")
    with session(db.engine, "mt5_maintenance") as conn, pytest.raises(ProgrammingError):
        conn.exec_driver_sql("SELECT broker_server FROM mt5_user_accounts")
