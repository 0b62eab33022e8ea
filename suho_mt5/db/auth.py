"""API-key authentication of Expert Advisors.

The gateway learns an EA's tenant only by authenticating it: it has an account id and the
API key the EA presented. :func:`authenticate` asks the database's ``mt5_authenticate()``
(a narrow SECURITY DEFINER function; row-level security keeps tenant roles from looking
the account up themselves), which runs exactly one ``verify_api_key()`` whether or not the
account exists, so neither the answer nor its timing says which accounts exist.

>>> AccountIdentity("tenant_demo", "user_001", uuid.UUID(int=1)).tenant_id
'tenant_demo'
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Text, bindparam, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from suho_mt5.errors import AuthenticationError, DatabaseError

__all__ = ["AccountIdentity", "authenticate"]

#: The one message of every refusal: it must not say which part was wrong.
REFUSED = "invalid account id or API key"

_AUTHENTICATE = text(
    "SELECT tenant_id, user_id, account_id FROM mt5_authenticate(:account_id, :api_key)"
).bindparams(
    bindparam("account_id", type_=UUID(as_uuid=True)),
    bindparam("api_key", type_=Text()),
)


@dataclass(frozen=True, slots=True)
class AccountIdentity:
    """Who an authenticated EA is: open a :func:`~suho_mt5.db.tenant_session` for
    ``tenant_id`` next."""

    tenant_id: str
    user_id: str
    account_id: uuid.UUID


def _account_uuid(account_id: object) -> uuid.UUID:
    if isinstance(account_id, uuid.UUID):
        return account_id
    if isinstance(account_id, str):
        try:
            return uuid.UUID(account_id)
        except ValueError:
            pass
    # The format of an account id is no secret: refusing it early reveals nothing.
    raise AuthenticationError(REFUSED)


def authenticate(
    bind: Engine | Connection | Session, account_id: uuid.UUID | str, api_key: str
) -> AccountIdentity:
    """Verify ``api_key`` for ``account_id``; return the account's identity.

    Raises :class:`~suho_mt5.errors.AuthenticationError` (always with the same message)
    when the account is unknown or inactive, has no key, or the key does not verify, and
    :class:`~suho_mt5.errors.DatabaseError` when the database cannot answer (for example
    a role without EXECUTE on ``mt5_authenticate``: grant it ``mt5_app``).

    With an :class:`~sqlalchemy.engine.Engine` the check runs in its own transaction; a
    :class:`~sqlalchemy.engine.Connection` or :class:`~sqlalchemy.orm.Session` runs it
    in its current transaction and leaves committing to the caller.
    """
    account = _account_uuid(account_id)
    if not isinstance(api_key, str):
        raise AuthenticationError(REFUSED)
    params = {"account_id": account, "api_key": api_key}
    try:
        if isinstance(bind, Engine):
            with bind.begin() as conn:
                row = conn.execute(_AUTHENTICATE, params).first()
        else:
            row = bind.execute(_AUTHENTICATE, params).first()
    except DBAPIError as exc:
        raise DatabaseError(f"the database could not check the API key: {exc.orig}") from exc
    if row is None:
        raise AuthenticationError(REFUSED)
    return AccountIdentity(tenant_id=row.tenant_id, user_id=row.user_id,
                           account_id=row.account_id)
