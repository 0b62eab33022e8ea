"""Compliance commands: verify and digest the audit trail, write retention checkpoints,
generate and export reports, erase a user (GDPR), export the ML feedback.

Each takes a database URL, opens and disposes its own engine, and raises a
:class:`~suho_mt5.errors.SuhoError` (a :class:`~suho_mt5.errors.ComplianceError` for the
compliance layer's own refusals, a :class:`~suho_mt5.errors.DatabaseError` when the
database cannot be reached) on failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from suho_mt5.commands._connect import cause
from suho_mt5.compliance.audit import (
    Digest,
    VerifyResult,
    correct_event,
    read_digest,
    take_digest,
    verify,
    write_checkpoints,
)
from suho_mt5.compliance.feedback import FeedbackExport, export_feedback
from suho_mt5.compliance.gdpr import Erasure, erase_user
from suho_mt5.compliance.reports import (
    StoredReport,
    export_transactions,
    generate_report,
    month_bounds,
)
from suho_mt5.db import make_engine, tenant_connection
from suho_mt5.errors import ComplianceError, DatabaseError, TenantError

__all__ = [
    "audit_checkpoint",
    "audit_correct",
    "audit_digest",
    "audit_verify",
    "feedback_export",
    "gdpr_erase",
    "report_compliance",
    "report_transactions",
]

T = TypeVar("T")


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _run(url: str, what: str, action: Callable[[Engine], T]) -> T:
    """``action(engine)``, with database failures (no server, no privilege) as one
    :class:`DatabaseError` line instead of a driver traceback."""
    with _engine(url) as engine:
        try:
            return action(engine)
        except (ComplianceError, TenantError):
            raise
        except sa.exc.DBAPIError as exc:
            raise DatabaseError(f"{what} failed: {cause(exc)}") from exc


def _known_tenant(engine: Engine, tenant_id: str) -> None:
    """Refuse a tenant with no account (tenants exist through their accounts), before a
    report or an export of nothing is stored or marked. Run as the command's own login: a
    tenant role reads its accounts through the tenant view, a service role the table."""
    with tenant_connection(engine, tenant_id) as conn:
        known = conn.execute(
            sa.text("SELECT EXISTS (SELECT 1 FROM mt5_user_accounts WHERE tenant_id = :t)"),
            {"t": tenant_id}).scalar_one()
    if not known:
        raise TenantError(f"unknown tenant {tenant_id!r}: it has no accounts")


def _no_chain(tenant_id: str) -> TenantError:
    return TenantError(f"unknown tenant {tenant_id!r}: it has no audit events")


def audit_verify(url: str, *, tenant_id: str | None = None,
                 since: Path | str | None = None) -> VerifyResult:
    """Verify the audit chains (optionally against a digest file taken earlier). A
    ``tenant_id`` with no chain is unknown (:class:`TenantError`), not a chain that verifies."""
    digest = read_digest(since) if since is not None else None
    result = _run(url, "audit verify", lambda e: verify(e, tenant_id=tenant_id, since=digest))
    if tenant_id is not None and not result.chains:
        raise _no_chain(tenant_id)
    return result


def audit_digest(url: str, *, tenant_id: str | None = None) -> Digest:
    """The chain heads now, to be written outside the database."""
    digest = _run(url, "audit digest", lambda e: take_digest(e, tenant_id=tenant_id))
    if tenant_id is not None and not digest.heads:
        raise _no_chain(tenant_id)
    return digest


def audit_checkpoint(url: str) -> int:
    """Write retention checkpoints; returns how many chains got one."""
    return _run(url, "audit checkpoint", write_checkpoints)


def audit_correct(url: str, *, tenant_id: str, event_id: str, reason: str,
                  correction: dict[str, object]) -> int:
    """Append a correction of one event; returns the correction's position."""
    try:
        original = uuid.UUID(event_id)
    except ValueError as exc:
        raise ComplianceError(f"not an event id (a UUID): {event_id!r}") from exc
    return _run(url, "audit correct",
                lambda e: correct_event(e, tenant_id, original, reason, correction))


def report_compliance(url: str, *, tenant_id: str, month: str,
                      report_type: str = "monthly_trading") -> StoredReport:
    """Generate (or regenerate) and store one compliance report."""
    month_bounds(month)  # a malformed month is named before the database is asked

    def run(engine: Engine) -> StoredReport:
        _known_tenant(engine, tenant_id)
        return generate_report(engine, tenant_id, month, report_type)

    return _run(url, "report", run)


def report_transactions(url: str, *, tenant_id: str, month: str, out: IO[str]) -> int:
    """Write the month's transaction report (CSV) to ``out``; returns the row count."""
    month_bounds(month)

    def run(engine: Engine) -> int:
        _known_tenant(engine, tenant_id)
        return export_transactions(engine, tenant_id, month, out)

    return _run(url, "transaction report", run)


def gdpr_erase(url: str, *, tenant_id: str, user_id: str) -> Erasure:
    """Erase one user of one tenant by pseudonymisation."""
    return _run(url, "erasure", lambda e: erase_user(e, tenant_id, user_id))


def feedback_export(url: str, *, tenant_id: str, destination: str, fmt: str = "csv"
                    ) -> FeedbackExport:
    """Export and mark the tenant's pending closed trades."""
    def run(engine: Engine) -> FeedbackExport:
        _known_tenant(engine, tenant_id)
        return export_feedback(engine, tenant_id, destination, fmt=fmt)

    return _run(url, "feedback export", run)
