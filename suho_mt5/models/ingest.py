"""``mt5_ingest_dead_letters``: what the Data Bridge received and could not store."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import BYTEA
from sqlalchemy.orm import Mapped, mapped_column

from suho_mt5.models.base import Base, TextEnum, Uuid
from suho_mt5.models.enums import DeadLetterReason

__all__ = ["DeadLetter"]

_TABLE = "mt5_ingest_dead_letters"


class DeadLetter(Base):
    """One message, or one packet of a message, the bridge could not store, and why.

    ``reason`` is a code (``undecodable``, ``unauthorized``, ``account_mismatch``,
    ``kind_mismatch``, ``check_violation``, ``refused``, ``max_deliver``), ``detail`` the
    words; ``raw`` the bytes as received (the whole message, or the one 144-byte packet);
    ``packet_count`` how many packets those bytes held. ``(stream, stream_seq,
    byte_offset)`` is unique: a redelivered bad message is recorded once. Not tenant data:
    operators read it as ``mt5_maintenance`` or ``mt5_compliance``.
    """

    __tablename__ = _TABLE
    __table_args__ = (
        PrimaryKeyConstraint("dead_letter_id", name=f"{_TABLE}_pkey"),
        UniqueConstraint("stream", "stream_seq", "byte_offset", name=f"{_TABLE}_position_key"),
        Index(f"{_TABLE}_time_idx", text("time DESC")),
    )

    dead_letter_id: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    time: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    stream: Mapped[str]
    stream_seq: Mapped[int] = mapped_column(BigInteger)
    byte_offset: Mapped[int] = mapped_column(Integer, server_default="0")
    subject: Mapped[str]
    tenant_id: Mapped[str | None]
    account_id: Mapped[Uuid | None]
    reason: Mapped[DeadLetterReason] = mapped_column(TextEnum(DeadLetterReason))
    detail: Mapped[str]
    raw: Mapped[bytes] = mapped_column(LargeBinary().with_variant(BYTEA(), "postgresql"))
    packet_count: Mapped[int] = mapped_column(Integer)
    deliveries: Mapped[int] = mapped_column(Integer, server_default="1")

    def __repr__(self) -> str:
        return f"DeadLetter({self.stream}:{self.stream_seq}+{self.byte_offset}, {self.reason!r})"



