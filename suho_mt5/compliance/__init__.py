"""Compliance: the audit trail's verification and digests, compliance reports, GDPR
erasure, and the ML feedback export.

Most of the work is the database's (revision 0011: audit events written by triggers,
who may append, chain heads, retention checkpoints, pseudonyms, erasure); this package
reads, checks and exports. See ``docs/compliance.md``.

* :mod:`suho_mt5.compliance.audit` - :func:`verify`, :func:`take_digest`,
  :func:`read_digest`, :func:`write_checkpoints`, :func:`correct_event`
* :mod:`suho_mt5.compliance.reports` - :func:`generate_report`, :func:`best_execution`,
  :func:`export_transactions`
* :mod:`suho_mt5.compliance.gdpr` - :func:`erase_user`, :func:`record_consent`,
  :func:`withdraw_consent`
* :mod:`suho_mt5.compliance.feedback` - :func:`export_feedback`
"""

from __future__ import annotations

from suho_mt5.compliance.audit import (
    ChainHead,
    ChainProblem,
    ChainReport,
    Digest,
    VerifyResult,
    correct_event,
    read_digest,
    row_hash,
    take_digest,
    verify,
    write_checkpoints,
)
from suho_mt5.compliance.feedback import FeedbackExport, export_feedback
from suho_mt5.compliance.gdpr import Erasure, erase_user, record_consent, withdraw_consent
from suho_mt5.compliance.reports import (
    StoredReport,
    best_execution,
    export_transactions,
    generate_report,
)

__all__ = [
    "ChainHead",
    "ChainProblem",
    "ChainReport",
    "Digest",
    "Erasure",
    "FeedbackExport",
    "StoredReport",
    "VerifyResult",
    "best_execution",
    "correct_event",
    "erase_user",
    "export_feedback",
    "export_transactions",
    "generate_report",
    "read_digest",
    "record_consent",
    "row_hash",
    "take_digest",
    "verify",
    "withdraw_consent",
    "write_checkpoints",
]
