"""The one exception tree of suho-mt5.

Every error the package raises on purpose derives from :class:`SuhoError`, with one
sub-root per layer so callers can catch exactly the layer they handle::

    SuhoError
    ├── ConfigError            bad URL, missing setting
    ├── DatabaseError          the database layer
    │   ├── EditionError       the server cannot do what was asked (e.g. no TimescaleDB)
    │   └── EngineLimitError   a request the single-backend TimescaleDB engine cannot survive
    ├── TenantError            no tenant, an empty tenant, an unknown tenant
    ├── ReadOnlyModelError     a write through a read-only model (an aggregate view)
    ├── AuthenticationError    an API key that does not verify
    ├── MigrationError         a migration or custom Alembic operation refused
    ├── ProtocolError          Suho Binary Protocol input that is not a valid packet
    │   ├── TruncatedPacketError, BadMagicError, UnsupportedVersionError,
    │   ├── UnknownMessageTypeError, ChecksumMismatchError, FieldRangeError,
    │   └── InvalidSymbolError, TrailingDataError
    ├── IngestError            the Data Bridge could not store or acknowledge data
    │   ├── StreamSetupError   a stream or consumer of the bus contract cannot be declared
    │   ├── BatchWriteError    the database refused a batch for a reason other than its rows
    │   ├── DatabaseUnavailableError  the database cannot be reached (retried, never acked)
    │   ├── SignalError        a signal could not be stored or published
    │   ├── ReconcileError     no canonical symbol or pip size for a broker symbol
    │   └── ReplayError        a recorded packet stream that cannot be replayed
    ├── GatewayError           the EA gateway or its simulator
    │   ├── SessionRefusedError    the gateway answered HELLO with anything but ACCEPTED
    │   ├── SessionClosedError     the connection was closed (carries the close code)
    │   └── BusUnavailableError    NATS JetStream did not answer or refused a request
    ├── CacheError             the latest-state cache (Redis protocol: redis-server, DragonflyDB)
    │   ├── CacheUnavailableError  the cache server did not answer in time or went away
    │   └── CachePermissionError   the server refused a command (NOPERM, WRONGPASS): ACL users
    ├── ComplianceError        audit trail, reports, GDPR, ML feedback export
    │   ├── AuditChainError    ``audit verify`` found a chain broken (first broken position)
    │   ├── DigestError        a chain-head digest file that cannot be read or used
    │   ├── ReportError        a compliance report that cannot be generated or exported
    │   ├── ErasureError       a GDPR erasure that was refused
    │   └── ExportError        an ML feedback export that failed (nothing was marked)
    └── DemoError              ``suho-mt5 demo`` could not run the pipeline
        └── ServerError        a server it starts (database, nats-server) did not start or died

Low-level errors are wrapped with ``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations

import re

__all__ = [
    "AuditChainError",
    "AuthenticationError",
    "BadMagicError",
    "BatchWriteError",
    "BusUnavailableError",
    "CacheError",
    "CachePermissionError",
    "CacheUnavailableError",
    "ChecksumMismatchError",
    "ComplianceError",
    "ConfigError",
    "DatabaseError",
    "DatabaseUnavailableError",
    "DemoError",
    "DigestError",
    "EditionError",
    "EngineLimitError",
    "ErasureError",
    "ExportError",
    "FieldRangeError",
    "GatewayError",
    "IngestError",
    "InvalidSymbolError",
    "MigrationError",
    "ProtocolError",
    "ReadOnlyModelError",
    "ReconcileError",
    "ReplayError",
    "ReportError",
    "ServerError",
    "SessionClosedError",
    "SessionRefusedError",
    "SignalError",
    "StreamSetupError",
    "SuhoError",
    "TenantError",
    "TimescaleNotPreloadedError",
    "TrailingDataError",
    "TruncatedPacketError",
    "UnknownMessageTypeError",
    "UnsupportedVersionError",
]


class SuhoError(Exception):
    """Root of every error suho-mt5 raises on purpose."""


class ConfigError(SuhoError):
    """A setting is missing or malformed (database URL, edition name, ...)."""


class DatabaseError(SuhoError):
    """The database layer failed or refused a request."""


class EditionError(DatabaseError):
    """The connected server lacks a feature the request needs (TimescaleDB, TSL license)."""


class EngineLimitError(DatabaseError):
    """A request would crash or hang the single-backend TimescaleDB engine (PGlite).

    Raised *before* anything is sent: a second concurrent connection, ``COPY``, or a
    protocol message larger than the engine survives.
    """


class TenantError(SuhoError):
    """No tenant, an empty tenant id, or a tenant the database does not know."""


class ReadOnlyModelError(SuhoError, TypeError):
    """An attempt to write through a read-only model class (an aggregate view).

    Also a ``TypeError``: like assigning to a tuple, it is a mistake in the calling code.
    """


class AuthenticationError(SuhoError):
    """An API key did not verify (the message never says whether the account exists)."""


class MigrationError(SuhoError):
    """A migration or a custom Alembic operation was refused or failed."""


class TimescaleNotPreloadedError(EditionError, MigrationError):
    """TimescaleDB is installed on the server but not in ``shared_preload_libraries``, so
    ``CREATE EXTENSION timescaledb`` would fail ("must be preloaded")."""


class IngestError(SuhoError):
    """The ingest layer could not store or acknowledge a batch; nothing acknowledged is lost."""


class StreamSetupError(IngestError):
    """A stream or consumer of the bus contract could not be created or updated."""


class BatchWriteError(IngestError):
    """The database refused a batch for a reason other than its rows (permissions, schema).

    A database outage is not this error: the bridge retries it with backoff.
    """


class DatabaseUnavailableError(IngestError):
    """The database cannot be reached or went away mid-batch; the batch is retried, not acked."""


class SignalError(IngestError):
    """A trading signal could not be stored or published to its account's subject."""


class ReconcileError(IngestError):
    """A broker symbol has no canonical symbol or pip size."""


class ReplayError(IngestError):
    """A recorded packet stream that cannot be replayed: unreadable, not whole packets, a
    packet that does not decode (the message names its byte offset), an unknown account."""


class CacheError(SuhoError):
    """The latest-state cache (:mod:`suho_mt5.cache`) failed or refused a request. Ingest
    never sees it: a cache that is down costs the bridge a counter and a log line, not data."""


class CacheUnavailableError(CacheError):
    """The cache server did not answer within the timeout, refused the connection or went
    away mid-request; readers fall back to the database when they have one."""


class CachePermissionError(CacheError):
    """The cache server refused a command of this ACL user (``NOPERM``) or its credentials
    (``WRONGPASS``): the user lacks what the operation needs (``suho-mt5 cache grant-*``)."""


class ComplianceError(SuhoError):
    """The compliance layer (audit trail, reports, GDPR, ML feedback export) failed or
    refused a request."""


class AuditChainError(ComplianceError):
    """An audit chain failed verification; ``problems`` says where each chain first broke."""

    def __init__(self, message: str, problems: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class DigestError(ComplianceError):
    """A chain-head digest file is unreadable, malformed or altered."""


class ReportError(ComplianceError):
    """A compliance report could not be generated or exported."""


class ErasureError(ComplianceError):
    """A GDPR erasure was refused (unknown user, missing privilege, ...)."""


class ExportError(ComplianceError):
    """The ML feedback export failed; no row was marked as exported."""


class ProtocolError(SuhoError):
    """Input that is not a valid Suho Binary Protocol packet.

    ``offset`` is the byte offset in the caller's buffer where the problem was found and
    ``reason`` says what was wrong, in words fit for a log line.
    """

    def __init__(self, reason: str, offset: int = 0) -> None:
        super().__init__(f"{reason} (at byte offset {offset})")
        self.reason = reason
        self.offset = offset

    def __reduce__(self) -> tuple[type[ProtocolError], tuple[str, int]]:
        # Keep pickling (multiprocessing, logging handlers) working with two arguments.
        return (type(self), (self.reason, self.offset))


class TruncatedPacketError(ProtocolError):
    """Fewer bytes than one packet (144) were available."""


class BadMagicError(ProtocolError):
    """The packet does not start with the protocol's magic bytes."""


class UnsupportedVersionError(ProtocolError):
    """The packet's protocol version is not one this decoder understands."""


class UnknownMessageTypeError(ProtocolError):
    """The packet's message type is not defined for its protocol version."""


class ChecksumMismatchError(ProtocolError):
    """The packet's integrity trailer does not match its contents."""


class FieldRangeError(ProtocolError):
    """A field holds a value outside its documented range (enum, flag bits, bounds)."""


class InvalidSymbolError(ProtocolError):
    """A symbol field is not NUL-padded printable ASCII."""


class TrailingDataError(ProtocolError):
    """More bytes than one packet were given where exactly one packet was expected."""


class GatewayError(SuhoError):
    """The EA gateway (``suho_mt5.gateway``) or its EA simulator failed or refused."""


class SessionRefusedError(GatewayError):
    """The gateway answered a HELLO with a WELCOME whose result is not ``ACCEPTED``.

    ``result`` is the :class:`~suho_mt5.protocol.SessionResult` name and ``retry_after_ms``
    how long the gateway asks the EA to wait before it tries again.
    """

    def __init__(self, result: str, retry_after_ms: int = 0) -> None:
        super().__init__(f"session refused: {result} (retry after {retry_after_ms} ms)")
        self.result = result
        self.retry_after_ms = retry_after_ms


class SessionClosedError(GatewayError):
    """The connection to or from an EA was closed; ``code`` is the close code
    (:class:`~suho_mt5.protocol.CloseCode` value, or a WebSocket code), 0 when unknown."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"connection closed with code {code}: {reason or 'no reason given'}")
        self.code = code
        self.reason = reason


class BusUnavailableError(GatewayError):
    """NATS JetStream did not answer, or refused a publish or a consumer."""


class DemoError(SuhoError):
    """``suho-mt5 demo`` could not set up or run the pipeline."""


class ServerError(DemoError):
    """A server the demo (or the test fixtures) start did not get ready, or died; the message
    names the server and ends with the last lines of its log."""


_URL_SECRET = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)([^/@\s,:'\"]*:)?([^/@\s'\"]+)@")
_KEYWORD_SECRET = re.compile(r"(?i)\b(password|passwd|token|api_key)(\s*=\s*)('[^']*'|\S+)")


def redact(text: str) -> str:
    """``text`` with the secrets of any URLs in it masked (``user:password@``, a NATS
    token ``token@``, ``password=...`` keywords): error messages name the server that
    failed, never its credentials.

    >>> redact("cannot connect to postgresql://gw:s3cret@db:5432/mt5, nats://tok@n1:4222")
    'cannot connect to postgresql://gw:***@db:5432/mt5, nats://***@n1:4222'
    >>> redact("host=db user=gw password='a b' dbname=mt5")
    'host=db user=gw password=*** dbname=mt5'
    """

    def url(match: re.Match[str]) -> str:
        scheme, user, _secret = match.groups()
        if user is None and scheme.lower().startswith(("postgres", "redis")):
            return match.group(0)  # a user name alone is no secret
        return f"{scheme}{user or ''}***@"

    return _KEYWORD_SECRET.sub(r"\1\2***", _URL_SECRET.sub(url, text))
