"""Compliance: the audit trail's verification and digests, compliance reports, GDPR
erasure, and the ML feedback export.

Most of the work is the database's (revision 0011: audit events written by triggers,
chain heads, checkpoints, pseudonyms, erasure); this package reads, checks and exports.
See ``docs/compliance.md``.
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

__all__ = [
    "ChainHead",
    "ChainProblem",
    "ChainReport",
    "Digest",
    "VerifyResult",
    "correct_event",
    "read_digest",
    "row_hash",
    "take_digest",
    "verify",
    "write_checkpoints",
]
