"""GDPR: consents and erasure by pseudonymisation.

A consent is one row of ``mt5_user_consents`` per answer: the type, granted or refused,
when (``granted_at``, the database's time), the source (``"web"``, ``"ea"`` ...) and the
version of the consent text (``policy_version``); withdrawing sets ``revoked_at``. Every
change is written to the audit trail by the database (``consent.granted``,
``consent.refused``, ``consent.withdrawn``).

Erasure (``mt5_gdpr_erase()``, run as ``mt5_compliance``) replaces the user's personal
values (user id, MT5 login, account number, API key) in accounts and consents with a
pseudonym, keeps every financial row, report and audit event as it is, records
``gdpr.erased``, and destroys the key behind the user's pseudonyms in the audit trail: the
chain still verifies, and nothing in it can be linked back to the person.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from suho_mt5.db.tenant import set_tenant, validate_tenant_id
from suho_mt5.errors import ErasureError, TenantError

__all__ = ["Erasure", "erase_user", "record_consent", "withdraw_consent"]


@dataclass(frozen=True)
class Erasure:
    """What one erasure changed: the pseudonym left in place of the user id, and how many
    accounts and consents now carry it."""

    tenant_id: str
    subject: str
    accounts: int
    consents: int

    def as_json(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "subject": self.subject,
                "accounts": self.accounts, "consents": self.consents}


def erase_user(bind: Connection | Engine, tenant_id: str, user_id: str) -> Erasure:
    """Erase ``user_id`` of ``tenant_id`` by pseudonymisation (one transaction). Raises
    :class:`~suho_mt5.errors.ErasureError` when the tenant holds nothing of the user or
    the role may not erase (``mt5_compliance`` may)."""
    try:
        tenant_id = validate_tenant_id(tenant_id)
    except TenantError as exc:
        raise ErasureError(str(exc)) from exc
    if not user_id or not user_id.strip():
        raise ErasureError("erasure needs a user id")
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return erase_user(conn, tenant_id, user_id)
    try:
        with bind.begin_nested():
            result = bind.execute(sa.text("SELECT mt5_gdpr_erase(:t, :u)"),
                                  {"t": tenant_id, "u": user_id}).scalar_one()
    except sa.exc.DBAPIError as exc:
        first = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
        raise ErasureError(f"erasure of a user of {tenant_id} refused: {first}") from exc
    return Erasure(tenant_id, str(result["subject"]), int(result["accounts"]),
                   int(result["consents"]))


def record_consent(conn: Connection, tenant_id: str, user_id: str, consent_type: str, *,
                   granted: bool, source: str, policy_version: str,
                   account_id: uuid.UUID | None = None) -> uuid.UUID:
    """Record one consent answer (in the caller's transaction, as the tenant): returns its
    ``consent_id``. ``policy_version`` names the text the user saw."""
    set_tenant(conn, tenant_id)
    return uuid.UUID(str(conn.execute(sa.text(
        "INSERT INTO mt5_user_consents (user_id, account_id, consent_type, granted, source,"
        " policy_version) VALUES (:u, :a, :c, :g, :s, :v) RETURNING consent_id"),
        {"u": user_id, "a": account_id, "c": consent_type, "g": granted, "s": source,
         "v": policy_version}).scalar_one()))


def withdraw_consent(conn: Connection, tenant_id: str, user_id: str, consent_type: str) -> int:
    """Withdraw the user's open grants of ``consent_type`` (sets ``revoked_at`` to the
    database's time); returns how many were open."""
    set_tenant(conn, tenant_id)
    return conn.execute(sa.text(
        "UPDATE mt5_user_consents SET revoked_at = now() WHERE user_id = :u"
        " AND consent_type = :c AND granted AND revoked_at IS NULL"),
        {"u": user_id, "c": consent_type}).rowcount
