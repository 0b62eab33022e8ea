"""What one batch is on its way from the bus to the tables: where each message came from,
the rows per table (each with its origin), the dead letters, and what the write did.

:func:`suho_mt5.ingest.prepare.prepare` builds a :class:`Batch`, the
:class:`~suho_mt5.ingest.writer.Writer` writes it and returns a :class:`WriteResult`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from suho_mt5.ingest.rows import Row
from suho_mt5.protocol import PACKET_SIZE

__all__ = ["Batch", "DeadLetterRecord", "MessageContext", "Origin", "WriteResult"]


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Where a message came from: enough to dead-letter it or any packet of it."""

    stream: str
    stream_seq: int
    subject: str
    data: bytes
    deliveries: int
    tenant_id: str | None = None
    account_id: uuid.UUID | None = None


#: A row's message and the byte offset of its packet in that message.
Origin = tuple[MessageContext, int]


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    """One row of ``mt5_ingest_dead_letters``.

    ``(stream, stream_seq, byte_offset)`` is its unique key: a redelivered bad message is
    recorded once.

    >>> ctx = MessageContext("MT5_ACCOUNTS", 7, "mt5.account.t.x.quote", bytes(288), 1)
    >>> d = DeadLetterRecord.of(ctx, "undecodable", "bad CRC", 144, 144)
    >>> (d.stream_seq, d.byte_offset, len(d.raw), d.packet_count)
    (7, 144, 144, 1)
    """

    stream: str
    stream_seq: int
    byte_offset: int
    subject: str
    tenant_id: str | None
    account_id: uuid.UUID | None
    reason: str
    detail: str
    raw: bytes
    packet_count: int
    deliveries: int

    @classmethod
    def of(cls, ctx: MessageContext, reason: str, detail: str, offset: int = 0,
           size: int | None = None) -> DeadLetterRecord:
        """The dead letter of ``ctx``'s bytes ``[offset, offset + size)`` (None: to the end)."""
        raw = ctx.data[offset:] if size is None else ctx.data[offset : offset + size]
        return cls(ctx.stream, ctx.stream_seq, offset, ctx.subject, ctx.tenant_id,
                   ctx.account_id, reason, detail, raw, -(-len(raw) // PACKET_SIZE),
                   ctx.deliveries)

    def values(self) -> tuple[object, ...]:
        return (self.stream, self.stream_seq, self.byte_offset, self.subject, self.tenant_id,
                self.account_id, self.reason, self.detail, self.raw, self.packet_count,
                self.deliveries)


@dataclass
class Batch:
    """Rows per table (each with its origin) and the dead letters found before writing."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    origins: dict[str, list[Origin]] = field(default_factory=dict)
    dead: list[DeadLetterRecord] = field(default_factory=list)

    def add(self, table: str, row: Row, origin: Origin) -> None:
        rows = self.rows.get(table)
        if rows is None:
            rows = self.rows[table] = []
            self.origins[table] = []
        rows.append(row)
        self.origins[table].append(origin)

    @property
    def row_count(self) -> int:
        return sum(len(r) for r in self.rows.values())


@dataclass
class WriteResult:
    """What one committed batch did."""

    written: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    dead: list[DeadLetterRecord] = field(default_factory=list)
    #: New balance rows (not duplicates), as ``writer.SNAPSHOT_COLUMNS`` tuples.
    new_snapshots: list[tuple[Any, ...]] = field(default_factory=list)
