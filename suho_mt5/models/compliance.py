"""Audit and compliance: the tamper-evident audit log and its chain heads, risk events,
GDPR consents and subject keys, compliance reports, and the audited account settings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    FetchedValue,
    ForeignKeyConstraint,
    Index,
    LargeBinary,
    PrimaryKeyConstraint,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from suho_mt5.models.base import (
    Base,
    BigInt,
    ColumnstoreSpec,
    Json,
    Price,
    TenantId,
    TextEnum,
    Time,
    Timestamp,
    Uuid,
    account_fk,
    hypertable_options,
    legacy_idempotency_key,
    tenant_time_indexes,
    time_index,
)
from suho_mt5.models.enums import ConsentType, ReportStatus, ReportType, RiskSeverity

if TYPE_CHECKING:
    from suho_mt5.models.accounts import UserAccount

__all__ = [
    "AccountSetting",
    "AuditChainHead",
    "AuditEvent",
    "ComplianceReport",
    "GdprSubjectKey",
    "RiskEvent",
    "UserConsent",
]

_AUDIT = "mt5_audit_log"
_RISK = "mt5_risk_events"
_EMPTY_JSON = text("'{}'::jsonb")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AuditEvent(Base):
    """One event of a tenant's append-only, hash-chained audit trail (kept 7 years).

    Write ``event_type`` (dotted lower case, e.g. ``"account.created"``), ``account_id``
    and ``payload``. The database sets ``actor`` (the inserting role) and ``app_user`` (a
    pseudonym of ``app.current_user_id``), whatever the writer sends. A tenant role may
    only write for the tenant it has set; most events are written by the database itself,
    by triggers on the audited tables (docs/compliance.md). A trigger numbers the event
    in its tenant's chain (``chain_seq``), links it to the previous one (``prev_hash``) and
    seals it (``row_hash`` = SHA-256 over the event and ``prev_hash``); UPDATE and DELETE
    are refused for every role. No row-level security: tenant roles may only INSERT, for
    the tenant they have set, and cannot read the log back (``mt5_compliance`` can).

    ``time`` and ``event_id`` get Python defaults so that an insert needs no
    ``RETURNING`` (which would need SELECT). The chain columns are expired after the
    flush; reading them needs a role that may SELECT.
    """

    __tablename__ = _AUDIT
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "event_id", "time", name="mt5_audit_log_pkey"),
        UniqueConstraint("tenant_id", "chain_seq", "time", name="mt5_audit_log_chain_key"),
        time_index(_AUDIT),
        *tenant_time_indexes(_AUDIT, by=None),
        Index("mt5_audit_log_account_idx", "tenant_id", "account_id", text("time DESC"),
              postgresql_where=text("account_id IS NOT NULL")),
        hypertable_options("90 days", 2, columnstore=ColumnstoreSpec(
            ("tenant_id",), "chain_seq DESC, time DESC", "90 days",
            "minmax(time), bloom(event_id)")),
    )
    __mapper_args__ = {"eager_defaults": False}  # noqa: RUF012  (INSERT without RETURNING)

    time: Mapped[Time] = mapped_column(default=_utcnow)
    event_id: Mapped[Uuid] = mapped_column(
        default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    tenant_id: Mapped[TenantId]
    event_type: Mapped[str]
    actor: Mapped[str] = mapped_column(server_default=text("current_user"))
    #: No foreign key: the trail must outlive what it describes.
    account_id: Mapped[Uuid | None]
    payload: Mapped[Json] = mapped_column(server_default=_EMPTY_JSON)
    recorded_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    chain_seq: Mapped[int] = mapped_column(BigInteger, server_default=FetchedValue())
    prev_hash: Mapped[str] = mapped_column(Text, server_default=FetchedValue())
    row_hash: Mapped[str] = mapped_column(Text, server_default=FetchedValue())
    #: Set by the chain trigger: ``psn_...`` pseudonym of ``app.current_user_id``, or NULL.
    app_user: Mapped[str | None] = mapped_column(Text, server_default=FetchedValue())


class AuditChainHead(Base):
    """The last position and hash of one tenant's audit chain, kept by a trigger and only
    ever moved forward: a chain whose rows end before its head was truncated."""

    __tablename__ = "mt5_audit_chain_heads"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", name="mt5_audit_chain_heads_pkey"),)

    tenant_id: Mapped[str] = mapped_column(Text)
    chain_seq: Mapped[int] = mapped_column(BigInteger)
    row_hash: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[Timestamp]


class RiskEvent(Base):
    """A risk condition detected on an account: a limit breached, a margin call, a drawdown.

    ``event_type`` is a lower-case identifier (``"drawdown_limit"``); ``threshold`` and
    ``observed_value`` say by how much; ``details`` holds the rest. Acknowledging sets
    ``acknowledged_at`` and ``acknowledged_by`` together. Kept 2 years. No primary key in
    the database; the ORM identity is ``(account_id, event_type, time)``.
    """

    __tablename__ = _RISK
    __table_args__ = (
        account_fk(_RISK),
        legacy_idempotency_key(_RISK),
        time_index(_RISK),
        *tenant_time_indexes(_RISK),
        hypertable_options("90 days", 2),
    )
    __mapper_args__ = {  # noqa: RUF012
        "primary_key": ["account_id", "event_type", "time"]
    }

    time: Mapped[Time]
    tenant_id: Mapped[TenantId]
    account_id: Mapped[Uuid]
    event_type: Mapped[str]
    severity: Mapped[RiskSeverity] = mapped_column(TextEnum(RiskSeverity))
    details: Mapped[Json] = mapped_column(server_default=_EMPTY_JSON)
    threshold: Mapped[Price | None]
    observed_value: Mapped[Price | None]
    acknowledged_at: Mapped[Timestamp | None]
    acknowledged_by: Mapped[str | None]
    sequence: Mapped[BigInt | None]

    account: Mapped[UserAccount] = relationship(back_populates="risk_events")

    def acknowledge(self, by: str, at: datetime | None = None) -> None:
        """Mark the event acknowledged by ``by`` (now, unless ``at`` is given)."""
        self.acknowledged_by = by
        self.acknowledged_at = at or _utcnow()


class UserConsent(Base):
    """A user's answer to one consent question (GDPR), optionally for one account.

    A new row records each grant or refusal; ``revoked_at`` closes a grant. The current
    consent of a user and type is the row with the latest ``granted_at``.
    """

    __tablename__ = "mt5_user_consents"
    __table_args__ = (
        PrimaryKeyConstraint("consent_id", name="mt5_user_consents_pkey"),
        account_fk("mt5_user_consents"),
        Index("mt5_user_consents_user_idx", "tenant_id", "user_id", "consent_type",
              text("granted_at DESC")),
    )

    consent_id: Mapped[Uuid] = mapped_column(
        default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    tenant_id: Mapped[TenantId]
    user_id: Mapped[str]
    account_id: Mapped[Uuid | None]
    consent_type: Mapped[ConsentType] = mapped_column(TextEnum(ConsentType))
    granted: Mapped[bool] = mapped_column(Boolean)
    granted_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    revoked_at: Mapped[Timestamp | None]
    policy_version: Mapped[str | None]
    source: Mapped[str | None]

    account: Mapped[UserAccount | None] = relationship(back_populates="consents")


class GdprSubjectKey(Base):
    """The random key behind one user's audit-trail pseudonyms; erasure deletes it.

    Readable and writable by ``mt5_owner`` only (the schema's own functions)."""

    __tablename__ = "mt5_gdpr_subject_keys"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "user_id", name="mt5_gdpr_subject_keys_pkey"),
    )

    tenant_id: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(Text)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class AccountSetting(Base):
    """One EA setting of an account as the backend last sent it (a CONFIG packet's name
    and value); every change is written to the audit trail as ``config.changed``."""

    __tablename__ = "mt5_account_settings"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "account_id", "name",
                             name="mt5_account_settings_pkey"),
        ForeignKeyConstraint(
            ["tenant_id", "account_id"],
            ["mt5_user_accounts.tenant_id", "mt5_user_accounts.account_id"],
            name="mt5_account_settings_account_fkey",
        ),
    )

    tenant_id: Mapped[TenantId]
    account_id: Mapped[Uuid]
    name: Mapped[str]
    value: Mapped[str]
    updated_at: Mapped[datetime] = mapped_column(
        server_default=text("now()"), server_onupdate=FetchedValue()
    )


class ComplianceReport(Base):
    """A generated regulatory report (monthly trading, best execution, GDPR export, ...)
    for one tenant and period, its figures in ``report_data``.

    Written by ``mt5_compliance``; tenant roles may read their own. At most one report per
    tenant, type and period is live (not ``superseded``): regenerating replaces it.
    """

    __tablename__ = "mt5_compliance_reports"
    __table_args__ = (
        PrimaryKeyConstraint("report_id", name="mt5_compliance_reports_pkey"),
        Index("mt5_compliance_reports_period_idx", "tenant_id", "report_type",
              text("report_period_start DESC")),
        Index("mt5_compliance_reports_period_key", "tenant_id", "report_type",
              "report_period_start", "report_period_end", unique=True,
              postgresql_where=text("status <> 'superseded'")),
    )

    report_id: Mapped[Uuid] = mapped_column(
        default=uuid.uuid4, server_default=text("gen_random_uuid()")
    )
    tenant_id: Mapped[TenantId]
    report_type: Mapped[ReportType] = mapped_column(TextEnum(ReportType))
    report_period_start: Mapped[datetime]
    report_period_end: Mapped[datetime]
    report_data: Mapped[dict[str, Any]]
    status: Mapped[ReportStatus] = mapped_column(TextEnum(ReportStatus), server_default="final")
    generated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    generated_by: Mapped[str] = mapped_column(server_default=text("current_user"))
