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

import hashlib
import uuid
from dataclasses import dataclass, field

from sqlalchemy import Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from suho_mt5.errors import AuthenticationError, DatabaseError

__all__ = ["AccountIdentity", "account_digest", "account_digests", "authenticate",
           "key_fingerprints"]

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
    #: a digest of the stored key hash at the time the key verified (not of the key): it
    #: changes when the key is rotated, and :func:`key_fingerprints` reads it again
    key_fingerprint: str | None = field(default=None, compare=False)


# md5 of the stored bcrypt hash: the hash is public to this role anyway (it can read it);
# the digest only makes a change of it cheap to compare.
_FINGERPRINTS = text(
    "SELECT account_id, md5(api_key_hash) AS fingerprint FROM mt5_user_accounts"
    " WHERE account_id = ANY(:ids) AND is_active AND api_key_hash IS NOT NULL"
).bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


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

    def check(conn: Connection | Session) -> AccountIdentity:
        row = conn.execute(_AUTHENTICATE, params).first()
        if row is None:
            raise AuthenticationError(REFUSED)
        fingerprint = _read_fingerprints(conn, row.tenant_id, [row.account_id])
        return AccountIdentity(tenant_id=row.tenant_id, user_id=row.user_id,
                               account_id=row.account_id,
                               key_fingerprint=fingerprint.get(row.account_id))

    try:
        if isinstance(bind, Engine):
            # One snapshot for the check and the fingerprint: a key rotated between the two
            # would otherwise be remembered under the new key's fingerprint.
            with bind.connect().execution_options(
                    isolation_level="REPEATABLE READ") as conn, conn.begin():
                return check(conn)
        return check(bind)
    except DBAPIError as exc:
        raise DatabaseError(
            f"the database could not check the API key: {type(exc.orig).__name__}: "
            f"{_first_line(exc.orig)}") from None


def _first_line(exc: BaseException | None) -> str:
    # The driver's message and its first line only: never the statement or its parameters
    # (the API key is one of them).
    return str(exc).splitlines()[0] if exc is not None and str(exc) else "no detail"


def _read_fingerprints(conn: Connection | Session, tenant_id: str,
                       accounts: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    from suho_mt5.db.tenant import set_tenant

    if isinstance(conn, Session):
        conn = conn.connection()
    set_tenant(conn, tenant_id)
    return {row.account_id: row.fingerprint
            for row in conn.execute(_FINGERPRINTS, {"ids": accounts})}


def key_fingerprints(engine: Engine, tenant_id: str, accounts: list[uuid.UUID]
                     ) -> dict[uuid.UUID, str]:
    """For each of ``accounts`` (all of ``tenant_id``) that is active and has a key: the
    fingerprint :func:`authenticate` returned when its key verified, as it is now. An
    account left out was deactivated or lost its key; another fingerprint: its key was
    rotated. Read through the tenant's own view (a login in ``mt5_app`` may)."""
    if not accounts:
        return {}
    try:
        with engine.begin() as conn:
            return _read_fingerprints(conn, tenant_id, accounts)
    except DBAPIError as exc:
        raise DatabaseError(
            f"the database could not read the accounts' keys: {type(exc.orig).__name__}: "
            f"{_first_line(exc.orig)}") from None


def account_digest(account_id: uuid.UUID) -> int:
    """The 32-bit digest ``mt5_account_digests()`` gives ``account_id`` (revision 0014).

    >>> account_digest(uuid.UUID(int=1))
    -916092434
    """
    return int.from_bytes(hashlib.md5(str(account_id).encode()).digest()[:4], "big",
                          signed=True)


def account_digests(engine: Engine) -> frozenset[int]:
    """The digests of every account that may log in (``mt5_account_digests()``, revision
    0014): an account id whose :func:`account_digest` is not among them does not exist."""
    try:
        with engine.begin() as conn:
            return frozenset(conn.execute(text("SELECT * FROM mt5_account_digests()"))
                             .scalars())
    except DBAPIError as exc:
        raise DatabaseError(
            f"the database could not list the accounts' digests: {type(exc.orig).__name__}: "
            f"{_first_line(exc.orig)}") from None
