"""NATS subjects of the bus contract (``config/nats-subjects.yaml``, ``docs/ingest.md``).

EA -> backend:   ``mt5.account.<tenant>.<account_id>.<kind>``, kind in :data:`ACCOUNT_KINDS`
backend -> EA:   ``mt5.signal|command|config.<tenant>.<account_id>``
reference feed:  ``mt5.market.<symbol>``

A NATS subject token cannot hold ``.``, ``*``, ``>`` or white space, while a tenant id may hold
``.`` (:data:`suho_mt5._names.TENANT_ID_PATTERN`). Tenant ids are therefore carried escaped:
``.`` becomes ``%2E`` (``%`` itself is not allowed in a tenant id, so the escape is reversible).
Imports only :mod:`suho_mt5._names`, so the gateway and the bridge share one definition.
"""

from __future__ import annotations

import uuid
from typing import Final

from suho_mt5._names import TENANT_ID_PATTERN, TENANT_ID_RULE

__all__ = [
    "ACCOUNT_KINDS",
    "OUTBOUND_KINDS",
    "SubjectError",
    "account_subject",
    "escape_tenant",
    "market_subject",
    "message_id",
    "outbound_subject",
    "parse_account_subject",
    "unescape_tenant",
]

#: What an EA publishes, one subject each (the payload is a frame of 144-byte packets).
ACCOUNT_KINDS: Final = ("snapshot", "quote", "heartbeat", "order", "execution")
#: What the backend sends to one EA.
OUTBOUND_KINDS: Final = ("signal", "command", "config")

_DOT_ESCAPE: Final = "%2E"


class SubjectError(ValueError):
    """A subject, or a part of one, that the bus contract does not allow."""


def escape_tenant(tenant_id: str) -> str:
    """The subject token of ``tenant_id``.

    >>> escape_tenant("acme.eu")
    'acme%2Eeu'
    """
    if not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise SubjectError(f"malformed tenant_id {tenant_id!r}: {TENANT_ID_RULE}")
    return tenant_id.replace(".", _DOT_ESCAPE)


def unescape_tenant(token: str) -> str:
    """The tenant id a subject token carries; raises :class:`SubjectError` if malformed.

    >>> unescape_tenant("acme%2Eeu")
    'acme.eu'
    """
    tenant_id = token.replace(_DOT_ESCAPE, ".")
    if not TENANT_ID_PATTERN.fullmatch(tenant_id) or escape_tenant(tenant_id) != token:
        raise SubjectError(f"subject token {token!r} is not an escaped tenant id")
    return tenant_id


def account_subject(tenant_id: str, account_id: uuid.UUID, kind: str) -> str:
    """``mt5.account.<tenant>.<account_id>.<kind>``.

    >>> account_subject("t1", uuid.UUID(int=1), "quote")
    'mt5.account.t1.00000000-0000-0000-0000-000000000001.quote'
    """
    if kind not in ACCOUNT_KINDS:
        raise SubjectError(f"unknown account subject kind {kind!r}: one of {ACCOUNT_KINDS}")
    return f"mt5.account.{escape_tenant(tenant_id)}.{account_id}.{kind}"


def parse_account_subject(subject: str) -> tuple[str, uuid.UUID, str]:
    """``(tenant_id, account_id, kind)`` of an EA -> backend subject."""
    parts = subject.split(".")
    if len(parts) != 5 or parts[:2] != ["mt5", "account"] or parts[4] not in ACCOUNT_KINDS:
        raise SubjectError(f"not an account subject: {subject!r}")
    try:
        account = uuid.UUID(parts[3])
    except ValueError:
        raise SubjectError(f"subject {subject!r}: {parts[3]!r} is not an account UUID") from None
    return unescape_tenant(parts[2]), account, parts[4]


def outbound_subject(kind: str, tenant_id: str, account_id: uuid.UUID) -> str:
    """``mt5.<kind>.<tenant>.<account_id>`` for kind in :data:`OUTBOUND_KINDS`.

    >>> outbound_subject("signal", "t1", uuid.UUID(int=2))
    'mt5.signal.t1.00000000-0000-0000-0000-000000000002'
    """
    if kind not in OUTBOUND_KINDS:
        raise SubjectError(f"unknown outbound kind {kind!r}: one of {OUTBOUND_KINDS}")
    return f"mt5.{kind}.{escape_tenant(tenant_id)}.{account_id}"


def market_subject(symbol: str) -> str:
    """``mt5.market.<symbol>`` for a canonical symbol such as ``EURUSD``.

    >>> market_subject("EURUSD")
    'mt5.market.EURUSD'
    """
    if not symbol or any(c in symbol for c in ".*> \t\r\n"):
        raise SubjectError(f"symbol {symbol!r} cannot be a subject token")
    return f"mt5.market.{symbol}"


def message_id(account_id: uuid.UUID, first_sequence: int) -> str:
    """``Nats-Msg-Id`` of a frame: the account and its first packet's sequence, so a frame
    resent after a reconnect is a duplicate within the stream's window.

    >>> message_id(uuid.UUID(int=3), 42)
    '00000000-0000-0000-0000-000000000003:42'
    """
    return f"{account_id}:{first_sequence}"
