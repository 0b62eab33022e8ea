"""Account commands: create EA accounts, list them, rotate their API keys, deactivate them.

Plain typed functions under ``suho-mt5 account ...``. They are **administration**: they run
as the user of the URL they are given, the DBA who migrated the database (a superuser, or a
role that bypasses row-level security and may write ``public.mt5_user_accounts``), never as a
tenant role. They still set the tenant of the transaction where they know it, so a table
owner subject to the tenant policy (``FORCE ROW LEVEL SECURITY``) can run them too.

An API key is made by the database's ``generate_api_key()`` (256 bits from the server's
CSPRNG) and stored only as ``hash_api_key(key)`` (bcrypt, or PBKDF2 without pgcrypto). The
key itself is returned once, in :attr:`NewKey.api_key`, and is never stored or shown again:
losing it means rotating it.

Every failure is a :class:`~suho_mt5.errors.SuhoError` with a one-line message: a malformed
or unknown tenant (:class:`TenantError`), an unknown account or a row the database refuses
(:class:`DatabaseError`), a server that cannot be reached (:class:`DatabaseError`).

>>> ACCOUNT_TYPES
('demo', 'real', 'contest')
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.engine import Connection

from suho_mt5._names import TENANT_SETTING
from suho_mt5.commands._connect import connection
from suho_mt5.db import validate_tenant_id
from suho_mt5.errors import ConfigError, DatabaseError, TenantError

if TYPE_CHECKING:
    from suho_mt5.gateway.simulator import SimAccount

__all__ = [
    "ACCOUNT_TYPES",
    "Account",
    "NewKey",
    "create",
    "deactivate",
    "list_accounts",
    "parse_account_id",
    "provision_accounts",
    "rotate_key",
]

#: The values ``mt5_user_accounts.account_type`` accepts (its CHECK constraint).
ACCOUNT_TYPES = ("demo", "real", "contest")

# Every column but api_key_hash: no command reads a hash back, let alone prints it.
_COLUMNS = (
    "account_id, tenant_id, user_id, broker_name, broker_server, mt5_login, "
    "mt5_account_number, account_type, currency, leverage, is_active, "
    "api_key_hash IS NOT NULL AS has_api_key, created_at, updated_at"
)
_SET_TENANT = text(f"SELECT set_config('{TENANT_SETTING}', :tenant, true)")


@dataclass(frozen=True, slots=True)
class Account:
    """One row of ``mt5_user_accounts``, without its key hash."""

    account_id: uuid.UUID
    tenant_id: str
    user_id: str
    broker_name: str
    broker_server: str
    mt5_login: int
    mt5_account_number: str
    account_type: str
    currency: str
    leverage: int | None
    is_active: bool
    has_api_key: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def _from_row(cls, row: Row[Any]) -> Account:
        return cls(**row._asdict())


@dataclass(frozen=True, slots=True)
class NewKey:
    """An account and its new API key: the only time the key exists outside the EA."""

    account: Account
    #: Kept out of ``repr`` so that a logged or printed result does not leak it.
    api_key: str = field(repr=False)


def _tenant(conn: Connection, tenant_id: str) -> str:
    tenant_id = validate_tenant_id(tenant_id)
    conn.execute(_SET_TENANT, {"tenant": tenant_id})
    return tenant_id


def parse_account_id(account_id: uuid.UUID | str) -> uuid.UUID:
    """``account_id`` as a UUID, or a :class:`ConfigError` naming what it is not."""
    if isinstance(account_id, uuid.UUID):
        return account_id
    try:
        return uuid.UUID(account_id)
    except ValueError:
        raise ConfigError(f"not an account id (a UUID): {account_id!r}") from None


def create(
    url: str,
    *,
    tenant_id: str,
    user_id: str,
    broker_name: str,
    broker_server: str,
    mt5_login: int,
    mt5_account_number: str,
    account_type: str = "demo",
    currency: str = "USD",
    leverage: int | None = None,
) -> NewKey:
    """Create an account of ``tenant_id`` (a new tenant id creates the tenant) with a new
    API key; return both. The database stores only the key's hash."""
    if account_type not in ACCOUNT_TYPES:
        raise ConfigError(f"account type must be one of {', '.join(ACCOUNT_TYPES)}, "
                          f"not {account_type!r}")
    validate_tenant_id(tenant_id)  # before connecting: a typo is named as such
    with connection(url, prefix="cannot create the account: ") as conn:
        tenant_id = _tenant(conn, tenant_id)
        key = conn.execute(text("SELECT generate_api_key()")).scalar_one()
        row = conn.execute(
            text(
                "INSERT INTO public.mt5_user_accounts (tenant_id, user_id, broker_name, "
                "broker_server, mt5_login, mt5_account_number, account_type, currency, "
                "leverage, api_key_hash) VALUES (:tenant, :user_id, :broker_name, "
                ":broker_server, :mt5_login, :number, :account_type, :currency, :leverage, "
                f"hash_api_key(:key)) RETURNING {_COLUMNS}"
            ),
            {"tenant": tenant_id, "user_id": user_id, "broker_name": broker_name,
             "broker_server": broker_server, "mt5_login": mt5_login,
             "number": mt5_account_number, "account_type": account_type,
             "currency": currency, "leverage": leverage, "key": key},
        ).one()
        conn.commit()
    return NewKey(Account._from_row(row), str(key))


def list_accounts(url: str, tenant_id: str, *, active_only: bool = False) -> list[Account]:
    """The accounts of ``tenant_id``, oldest first. A tenant with no account at all is
    unknown (:class:`TenantError`): tenants exist through their accounts."""
    validate_tenant_id(tenant_id)
    with connection(url, prefix="cannot list the accounts: ") as conn:
        tenant_id = _tenant(conn, tenant_id)
        rows = conn.execute(
            text(f"SELECT {_COLUMNS} FROM public.mt5_user_accounts WHERE tenant_id = :tenant "
                 "ORDER BY created_at, account_id"),
            {"tenant": tenant_id},
        ).all()
    if not rows:
        raise TenantError(f"unknown tenant {tenant_id!r}: it has no accounts")
    accounts = [Account._from_row(r) for r in rows]
    return [a for a in accounts if a.is_active] if active_only else accounts


def _update(url: str, account_id: uuid.UUID | str, tenant_id: str | None, assignments: str,
            action: str, *, new_key: bool = False) -> tuple[Row[Any], str | None]:
    """UPDATE one account (``:key`` in ``assignments`` is a new key, made in the same
    transaction); an account that is not there, or not of ``tenant_id``, is unknown."""
    account = parse_account_id(account_id)
    if tenant_id is not None:
        validate_tenant_id(tenant_id)
    with connection(url, prefix=f"cannot {action}: ") as conn:
        where = "account_id = :account_id"
        params: dict[str, Any] = {"account_id": account}
        if tenant_id is not None:
            params["tenant"] = _tenant(conn, tenant_id)
            where += " AND tenant_id = :tenant"
        key = str(conn.execute(text("SELECT generate_api_key()")).scalar_one()) \
            if new_key else None
        if key is not None:
            params["key"] = key
        row = conn.execute(
            text(f"UPDATE public.mt5_user_accounts SET {assignments}, updated_at = now() "
                 f"WHERE {where} RETURNING {_COLUMNS}").bindparams(
                bindparam("account_id", type_=UUID(as_uuid=True))),
            params,
        ).first()
        if row is None:
            of = f" of tenant {tenant_id!r}" if tenant_id is not None else ""
            raise DatabaseError(f"unknown account{of}: {account}")
        conn.commit()
    return row, key


def rotate_key(url: str, account_id: uuid.UUID | str, *, tenant_id: str | None = None) -> NewKey:
    """Give the account a new API key and return it; the old key stops verifying at once.
    With ``tenant_id``, an account of another tenant is unknown."""
    row, key = _update(url, account_id, tenant_id, "api_key_hash = hash_api_key(:key)",
                       "rotate the key", new_key=True)
    assert key is not None
    return NewKey(Account._from_row(row), key)


def deactivate(url: str, account_id: uuid.UUID | str, *, tenant_id: str | None = None) -> Account:
    """Mark the account inactive: its EA no longer authenticates (``mt5_authenticate()``
    refuses inactive accounts); its rows stay. Deactivating twice is harmless."""
    row, _ = _update(url, account_id, tenant_id, "is_active = false", "deactivate the account")
    return Account._from_row(row)


def provision_accounts(url: str, count: int, tenant_id: str = "tenant_sim") -> list[SimAccount]:
    """Create ``count`` demo accounts in ``tenant_id`` sharing one new random API key (one
    slow hash for all), for ``suho-mt5 simulate --accounts N``. Needs a login that may
    insert into ``mt5_user_accounts`` (the owner, for a demo database)."""
    from suho_mt5.gateway.simulator import SimAccount

    validate_tenant_id(tenant_id)
    key = secrets.token_hex(32)
    base = 100_000_000 + secrets.randbelow(10**9)  # logins unique per broker server
    accounts = [SimAccount(uuid.uuid4(), key) for _ in range(count)]
    with connection(url, prefix="cannot create the simulator accounts: ") as conn:
        digest = conn.execute(text("SELECT hash_api_key(:k)"), {"k": key}).scalar_one()
        conn.execute(
            text("INSERT INTO public.mt5_user_accounts (account_id, tenant_id, user_id,"
                 " broker_name, broker_server, mt5_login, mt5_account_number, account_type,"
                 " api_key_hash) VALUES (:a, :t, :u, 'SimBroker', 'SimBroker-Demo', :l, :n,"
                 " 'demo', :h)"),
            [{"a": a.account_id, "t": tenant_id, "u": f"sim_{i}", "l": base + i,
              "n": str(base + i), "h": digest} for i, a in enumerate(accounts)],
        )
        conn.commit()
    return accounts
