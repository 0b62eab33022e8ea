"""A batch of bus messages -> rows and dead letters, with no I/O: what the bridge does
between fetching a batch and writing it, and what ``suho-mt5 ingest replay`` does to a
recording on its way straight into the tables.

For each message: its subject must parse and name an account that is registered, active and
of the subject's tenant (else the whole message is an ``unauthorized`` dead letter); its
bytes must be whole packets; the frame is decoded strictly, and if that fails packet by
packet so that the good ones survive (``undecodable`` dead letters for the rest). Each packet
must carry the subject's account (``account_mismatch``) and be of the subject's kind
(``kind_mismatch``); its row must pass the table's CHECKs (``check_violation``). Broker
quotes get their reference prices from the :class:`~suho_mt5.ingest.reconcile.Reconciler`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from suho_mt5._subjects import SubjectError, parse_account_subject
from suho_mt5.errors import ProtocolError
from suho_mt5.ingest.accounts import AccountInfo
from suho_mt5.ingest.batch import Batch, DeadLetterRecord, MessageContext
from suho_mt5.ingest.reconcile import Reconciler
from suho_mt5.ingest.rows import (
    KIND_OF_TYPE,
    TABLE_OF_KIND,
    packet_row,
    row_problem_of_valid_tenant,
    snapshot_margin_mode,
)
from suho_mt5.protocol import PACKET_SIZE, AccountSnapshotPacket, Packet, decode, decode_frame

__all__ = ["BusMessage", "Prepared", "SubjectCache", "prepare"]

_SUBJECT_CACHE: Final = 100_000  # parsed subjects kept (one per account and kind)


class BusMessage(NamedTuple):
    """One message as :func:`prepare` reads it: its position in a stream (the key of its
    dead letters), how often it was delivered, its subject and its bytes."""

    stream: str
    stream_seq: int
    deliveries: int
    subject: str
    data: bytes


@dataclass
class Prepared:
    """What :func:`prepare` made of a batch of messages."""

    batch: Batch
    #: Indexes of the messages dead-lettered whole (the bridge terminates them).
    dead_whole: set[int] = field(default_factory=set)
    #: Margin modes the batch's account snapshots reported.
    margin_modes: dict[uuid.UUID, str] = field(default_factory=dict)


class SubjectCache:
    """Parsed account subjects (one per account and kind), or why one is refused.

    >>> subjects = SubjectCache()
    >>> subjects.parse("mt5.account.acme.00000000-0000-0000-0000-000000000001.quote")
    ('acme', UUID('00000000-0000-0000-0000-000000000001'), 'quote')
    >>> subjects.parse("mt5.account.acme")
    "not an account subject: 'mt5.account.acme'"
    """

    def __init__(self, size: int = _SUBJECT_CACHE) -> None:
        self.size = size
        self._parsed: dict[str, tuple[str, uuid.UUID, str] | str] = {}

    def parse(self, subject: str) -> tuple[str, uuid.UUID, str] | str:
        got = self._parsed.get(subject)
        if got is None:
            try:
                got = parse_account_subject(subject)
            except SubjectError as exc:
                got = str(exc)
            if len(self._parsed) >= self.size:
                self._parsed.clear()
            self._parsed[subject] = got
        return got

    def accounts(self, messages: Sequence[BusMessage]) -> set[uuid.UUID]:
        """The accounts the subjects of ``messages`` name."""
        parsed, found = self._parsed, set()
        for m in messages:
            p = parsed.get(m.subject) or self.parse(m.subject)
            if p.__class__ is tuple:
                found.add(p[1])
        return found


def _refusal(info: AccountInfo | None, tenant_id: str) -> str:
    if info is None:
        return "no such account"
    if not info.is_active:
        return "account is not active"
    return f"account belongs to another tenant than {tenant_id!r}"


def _one_by_one(ctx: MessageContext, dead: list[DeadLetterRecord]) -> list[tuple[int, Packet]]:
    """``(byte offset, packet)`` of each packet of a frame that does not decode whole: the
    good ones survive, the others are ``undecodable`` dead letters."""
    data = ctx.data
    packets = []
    for off in range(0, len(data), PACKET_SIZE):
        try:
            packets.append((off, decode(data[off : off + PACKET_SIZE])))
        except ProtocolError as exc:
            dead.append(DeadLetterRecord.of(ctx, "undecodable", exc.reason, off, PACKET_SIZE))
    return packets


def prepare(messages: Sequence[BusMessage], accounts: Mapping[uuid.UUID, AccountInfo | None],
            reconciler: Reconciler | None = None,
            subjects: SubjectCache | None = None) -> Prepared:
    """Check ``messages`` and map their packets to rows (see the module doc).

    ``accounts`` holds every account the subjects name (None: not registered);
    ``reconciler`` gives broker quotes their reference prices (none without it).
    """
    subjects = subjects if subjects is not None else SubjectCache()
    out = Prepared(Batch())
    batch, dead = out.batch, out.batch.dead
    reconcile = reconciler is not None and bool(reconciler.book)
    for i, msg in enumerate(messages):
        sub = subjects.parse(msg.subject)
        if isinstance(sub, str):
            ctx = MessageContext(msg.stream, msg.stream_seq, msg.subject, msg.data,
                                 msg.deliveries)
            dead.append(DeadLetterRecord.of(ctx, "unauthorized", sub))
            out.dead_whole.add(i)
            continue
        tenant_id, account_id, kind = sub
        ctx = MessageContext(msg.stream, msg.stream_seq, msg.subject, msg.data, msg.deliveries,
                             tenant_id, account_id)
        info = accounts.get(account_id)
        if info is None or not info.is_active or info.tenant_id != tenant_id:
            dead.append(DeadLetterRecord.of(ctx, "unauthorized", _refusal(info, tenant_id)))
            out.dead_whole.add(i)
            continue
        data = msg.data
        if not data or len(data) % PACKET_SIZE:
            dead.append(DeadLetterRecord.of(
                ctx, "undecodable",
                f"{len(data)} bytes is not a whole number of {PACKET_SIZE}-byte packets"))
            out.dead_whole.add(i)
            continue
        try:
            if len(data) == PACKET_SIZE:  # one packet per message: skip the frame setup
                packets = [(0, decode(data))]
            else:
                packets = [(k * PACKET_SIZE, p) for k, p in enumerate(decode_frame(data))]
        except ProtocolError:
            packets = _one_by_one(ctx, dead)
        acc_bytes = account_id.bytes
        table = TABLE_OF_KIND[kind]
        check = row_problem_of_valid_tenant(table)  # the subject's tenant is valid
        reference = None
        if kind == "quote" and reconcile:
            assert reconciler is not None

            def reference(symbol: str, t: Any, bid: Any, ask: Any,
                          broker: str = info.broker_name,
                          reconciler: Reconciler = reconciler) -> Any:
                return reconciler.reference(symbol, t, bid, ask, broker)

        for off, packet in packets:
            if packet.account_id != acc_bytes:
                dead.append(DeadLetterRecord.of(
                    ctx, "account_mismatch",
                    f"packet account {uuid.UUID(bytes=packet.account_id)} is not the "
                    f"subject's {account_id}", off, PACKET_SIZE))
                continue
            if KIND_OF_TYPE.get(packet.MESSAGE_TYPE) != kind:
                dead.append(DeadLetterRecord.of(
                    ctx, "kind_mismatch",
                    f"{packet.MESSAGE_TYPE.name} packet on a {kind!r} subject",
                    off, PACKET_SIZE))
                continue
            if (packet.__class__ is AccountSnapshotPacket
                    and (mode := snapshot_margin_mode(packet)) is not None):
                out.margin_modes[account_id] = mode
            _, row = packet_row(packet, tenant_id, account_id, reference)
            problem = check(row)
            if problem is not None:
                dead.append(DeadLetterRecord.of(ctx, "check_violation", problem, off,
                                                PACKET_SIZE))
                continue
            batch.add(table, row, (ctx, off))
    return out
