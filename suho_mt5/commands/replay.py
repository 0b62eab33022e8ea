"""Replay a recorded packet stream: ``suho-mt5 ingest replay FILE``.

**The file format** is the wire format and nothing else: 144-byte Suho packets laid end to
end, exactly the bytes EAs send (``docs/protocol.md``), in the order they were sent. Packets
of many accounts may be interleaved. No header, no tenant: an account's tenant comes from
the database (or ``tenant=``). ``suho-mt5 simulate --record FILE`` writes such a file;
``b"".join(encode(p) for p in packets)`` is one too.

A file is checked whole before anything is sent: its length must be a multiple of 144 and
every packet must decode, else one :class:`~suho_mt5.errors.ReplayError` names the byte
offset. Data packets (snapshot, quote, heartbeat, order, execution report) are replayed;
the EA's session packets (HELLO, ACK, ERROR, GOODBYE) and anything else are skipped and
counted.

Packets are grouped into frames as the gateway groups them: per account, a run of
consecutive packets of one kind (at most ``frame_packets``), in file order. Then either

* **bus** (``nats_url`` given): each frame is published on
  ``mt5.account.<tenant>.<account>.<kind>`` with ``Nats-Msg-Id`` = ``<account>:<first
  sequence>``, the gateway's rule, so replaying the same file again within the stream's
  duplicate window is dropped by the server, and after it the tables' idempotency keys make
  it a no-op. The Data Bridge (``suho-mt5 ingest run``) writes it, with every check,
  reconciliation and risk event;
* **database** (``url`` only): the frames go through the bridge's own checks and row
  mapping (:func:`suho_mt5.ingest.prepare.prepare`) and the ingest writer straight into the
  tables (COPY + ``ON CONFLICT DO NOTHING``), one transaction per ``batch_packets``; a row
  the tables would refuse becomes a dead letter (``stream = 'replay'``, ``stream_seq`` a
  digest of the frame: :func:`dead_letter_key`), as in the bridge. No NATS needed, but no
  quote reconciliation and no risk events: those are the bridge's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from suho_mt5._subjects import account_subject, message_id
from suho_mt5.commands._connect import (
    check_database_url,
    connect_database,
    connect_nats,
    one_line,
)
from suho_mt5.db import validate_tenant_id
from suho_mt5.errors import (
    ConfigError,
    DatabaseError,
    IngestError,
    ProtocolError,
    ReplayError,
    StreamSetupError,
)
from suho_mt5.protocol import PACKET_SIZE, MessageType, Packet, decode

if TYPE_CHECKING:
    from suho_mt5.ingest.accounts import AccountInfo
    from suho_mt5.ingest.prepare import BusMessage

__all__ = [
    "DATA_KINDS",
    "DEFAULT_BATCH_PACKETS",
    "DEFAULT_FRAME_PACKETS",
    "REPLAY_STREAM",
    "Frame",
    "Recording",
    "ReplayError",
    "ReplaySummary",
    "dead_letter_key",
    "frames",
    "read_recording",
    "replay",
]

#: Packets per frame at most: the gateway's default (``GatewayConfig.max_frame_packets``).
DEFAULT_FRAME_PACKETS: Final = 1000
#: Packets per transaction in database mode.
DEFAULT_BATCH_PACKETS: Final = 5000
#: The data packets a replay carries, and the subject kind of each (the bus contract).
DATA_KINDS: Final[dict[MessageType, str]] = {
    MessageType.ACCOUNT_SNAPSHOT: "snapshot",
    MessageType.BROKER_QUOTE: "quote",
    MessageType.HEARTBEAT: "heartbeat",
    MessageType.ORDER_EVENT: "order",
    MessageType.EXECUTION_REPORT: "execution",
}
#: The ``stream`` of the dead letters a replay into the database writes.
REPLAY_STREAM: Final = "replay"
_READ_PACKETS: Final = 4096  # per read(): bounded memory for files of any size
_PUBLISH_WINDOW: Final = 500  # frames in flight before waiting for their acks


@dataclass(frozen=True, slots=True)
class Recording:
    """What :func:`read_recording` found in a file (it keeps no packet in memory)."""

    path: Path
    packets: int
    data_packets: int
    accounts: frozenset[uuid.UUID]
    skipped: dict[str, int]


@dataclass(frozen=True, slots=True)
class Frame:
    """Packets of one account and kind, in order: one bus message."""

    account_id: uuid.UUID
    kind: str
    first_sequence: int
    packets: tuple[Packet, ...]
    data: bytes


@dataclass
class ReplaySummary:
    """What a replay did; :meth:`as_json` is ``--json``'s document."""

    file: str
    mode: str  # "bus" or "database"
    packets: int
    data_packets: int
    accounts: int
    frames: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    #: bus: frames the server dropped as duplicates (same Nats-Msg-Id in its window).
    duplicate_frames: int = 0
    #: database: rows written per table, rows already there, dead letters.
    written: dict[str, int] = field(default_factory=dict)
    duplicate_rows: int = 0
    dead_letters: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file, "mode": self.mode, "packets": self.packets,
            "data_packets": self.data_packets, "accounts": self.accounts,
            "frames": self.frames, "skipped": self.skipped,
            "duplicate_frames": self.duplicate_frames, "written": self.written,
            "duplicate_rows": self.duplicate_rows, "dead_letters": self.dead_letters,
        }


def _chunks(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(offset, bytes)`` of the file, a whole number of packets per chunk but the last."""
    try:
        with path.open("rb") as f:
            offset = 0
            while chunk := f.read(PACKET_SIZE * _READ_PACKETS):
                yield offset, chunk
                offset += len(chunk)
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _packets(path: Path) -> Iterator[tuple[int, Packet]]:
    for start, chunk in _chunks(path):
        for off in range(0, len(chunk) - len(chunk) % PACKET_SIZE, PACKET_SIZE):
            try:
                packet = decode(chunk[off : off + PACKET_SIZE])
            except ProtocolError as exc:
                at = start + off
                raise ReplayError(
                    f"{path}: the packet at byte offset {at} (packet {at // PACKET_SIZE + 1})"
                    f" does not decode: {exc}") from exc
            yield start + off, packet


def read_recording(path: str | Path,
                   checked: Callable[[int], None] | None = None) -> Recording:
    """Check a recording whole (see the module doc) and say what it holds; ``checked(n)``
    is called as ``n`` more packets have been decoded."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ReplayError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if path.is_dir():
        raise ReplayError(f"cannot read {path}: it is a directory")
    if size % PACKET_SIZE:
        whole = size - size % PACKET_SIZE
        raise ReplayError(
            f"{path}: {size} bytes is not a whole number of {PACKET_SIZE}-byte packets "
            f"(the {size - whole} bytes from offset {whole} are a partial packet)")
    if size == 0:
        raise ReplayError(f"{path}: the file is empty (no packets to replay)")
    data = 0
    skipped: dict[str, int] = {}
    raw_accounts: set[bytes] = set()
    for n, (_, packet) in enumerate(_packets(path), 1):
        if packet.MESSAGE_TYPE in DATA_KINDS:
            data += 1
            raw_accounts.add(packet.account_id)
        else:
            name = packet.MESSAGE_TYPE.name
            skipped[name] = skipped.get(name, 0) + 1
        if checked is not None and n % _READ_PACKETS == 0:
            checked(_READ_PACKETS)
    if checked is not None and size // PACKET_SIZE % _READ_PACKETS:
        checked(size // PACKET_SIZE % _READ_PACKETS)
    accounts = {uuid.UUID(bytes=a) for a in raw_accounts}
    return Recording(path, size // PACKET_SIZE, data, frozenset(accounts), skipped)


def frames(path: str | Path, frame_packets: int = DEFAULT_FRAME_PACKETS) -> Iterator[Frame]:
    """The frames of a recording (checked first by :func:`read_recording`), in the order
    they close: per account, consecutive packets of one kind, ``frame_packets`` at most."""
    from suho_mt5.protocol import encode_frame

    open_runs: dict[bytes, tuple[str, list[Packet]]] = {}

    def close(account: bytes) -> Frame:
        kind, run = open_runs.pop(account)
        return Frame(uuid.UUID(bytes=account), kind, run[0].sequence, tuple(run),
                     encode_frame(run))

    for _, packet in _packets(Path(path)):
        kind = DATA_KINDS.get(packet.MESSAGE_TYPE)
        if kind is None:
            continue
        account = packet.account_id
        current = open_runs.get(account)
        if current is not None and (current[0] != kind or len(current[1]) >= frame_packets):
            yield close(account)
            current = None
        if current is None:
            open_runs[account] = (kind, [packet])
        else:
            current[1].append(packet)
    for account in list(open_runs):
        yield close(account)


# --------------------------------------------------------------------------- tenants

async def _accounts(url: str, accounts: frozenset[uuid.UUID]) -> dict[uuid.UUID, AccountInfo]:
    """Every account, from the database; an unknown or inactive account is a
    :class:`ReplayError` naming it."""
    import psycopg

    from suho_mt5.ingest.accounts import read_accounts

    conn = await connect_database(url)
    try:
        found = await read_accounts(conn, sorted(accounts))
    except psycopg.Error as exc:
        with contextlib.suppress(Exception):  # the PGlite engine's one backend stays clean
            await conn.rollback()
        raise DatabaseError(f"cannot read mt5_user_accounts: {one_line(exc)}") from exc
    finally:
        await conn.close()
    missing = sorted(accounts - found.keys())
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ReplayError(f"unknown account {missing[0]}{more}: register it first "
                          "(suho-mt5 account create)")
    inactive = sorted(a for a, info in found.items() if not info.is_active)
    if inactive:
        raise ReplayError(f"account {inactive[0]} is not active: the bridge would refuse its "
                          "packets")
    return found


# --------------------------------------------------------------------------- bus

async def _publish(recording: Recording, tenants: dict[uuid.UUID, str], nats_url: str,
                   summary: ReplaySummary, frame_packets: int,
                   progress: Callable[[int], None]) -> None:
    nc = await connect_nats(nats_url, "a replay onto the bus")
    try:
        js = nc.jetstream()
        probe = account_subject(next(iter(tenants.values())), next(iter(tenants)), "quote")
        try:
            await js.find_stream_name_by_subject(probe)
        except Exception as exc:
            raise StreamSetupError(
                f"no JetStream stream takes {probe} at {nats_url} "
                f"({exc or type(exc).__name__}): run `suho-mt5 streams setup` first") from exc
        pending: list[tuple[asyncio.Future[Any], int]] = []

        async def settle() -> None:
            for future, n in pending:
                try:
                    ack = await future
                except Exception as exc:
                    raise StreamSetupError(f"a frame was not stored by JetStream at "
                                           f"{nats_url}: {exc or type(exc).__name__}") from exc
                summary.duplicate_frames += bool(getattr(ack, "duplicate", False))
                progress(n)
            pending.clear()

        for frame in frames(recording.path, frame_packets):
            subject = account_subject(tenants[frame.account_id], frame.account_id, frame.kind)
            future = await js.publish_async(
                subject, frame.data,
                headers={"Nats-Msg-Id": message_id(frame.account_id, frame.first_sequence)})
            pending.append((future, len(frame.packets)))
            summary.frames += 1
            if len(pending) >= _PUBLISH_WINDOW:
                await settle()
        await settle()
    finally:
        await nc.close()


# --------------------------------------------------------------------------- database

def dead_letter_key(frame: bytes) -> int:
    """The ``stream_seq`` of a replayed frame's dead letters: a 63-bit digest of its bytes.

    The same frame replayed again is the same dead letter (stored once, as a redelivery in
    the bridge is); frames of two recordings never share a key, as frame numbers would (the
    first frame of every file is number 1).

    >>> dead_letter_key(b"frame") == dead_letter_key(b"frame") != dead_letter_key(b"other")
    True
    """
    return int.from_bytes(hashlib.blake2b(frame, digest_size=8).digest(), "big") >> 1


async def _write(recording: Recording, accounts: Mapping[uuid.UUID, AccountInfo], url: str,
                 summary: ReplaySummary, frame_packets: int, batch_packets: int,
                 progress: Callable[[int], None]) -> None:
    from suho_mt5.ingest.prepare import BusMessage, prepare
    from suho_mt5.ingest.writer import Writer

    writer = Writer(url)

    async def flush(messages: list[BusMessage], packets: int) -> None:
        batch = prepare(messages, accounts).batch
        try:
            result = await writer.write(batch)
        except IngestError as exc:
            raise DatabaseError(f"replay not written: {one_line(exc)}") from exc
        for table, n in result.written.items():
            summary.written[table] = summary.written.get(table, 0) + n
        summary.duplicate_rows += sum(result.duplicates.values())
        summary.dead_letters += len(result.dead)
        progress(packets)

    try:
        messages: list[BusMessage] = []
        in_batch = 0
        for frame in frames(recording.path, frame_packets):
            subject = account_subject(accounts[frame.account_id].tenant_id, frame.account_id,
                                      frame.kind)
            summary.frames += 1
            messages.append(BusMessage(REPLAY_STREAM, dead_letter_key(frame.data), 1, subject,
                                       frame.data))
            in_batch += len(frame.packets)
            if in_batch >= batch_packets:
                await flush(messages, in_batch)
                messages, in_batch = [], 0
        if in_batch:
            await flush(messages, in_batch)
    finally:
        await writer.close()


# --------------------------------------------------------------------------- replay

def replay(
    path: str | Path,
    *,
    url: str | None = None,
    nats_url: str | None = None,
    tenant_id: str | None = None,
    frame_packets: int = DEFAULT_FRAME_PACKETS,
    batch_packets: int = DEFAULT_BATCH_PACKETS,
    on_start: Callable[[Recording], None] | None = None,
    progress: Callable[[int], None] | None = None,
    checked: Callable[[int], None] | None = None,
) -> ReplaySummary:
    """Replay the recording at ``path`` onto the bus (``nats_url``) or into the database
    (``url`` only); see the module doc.

    Every account's tenant comes from the database at ``url``; without ``url`` (bus mode
    only) ``tenant_id`` is every account's tenant, unchecked (the bridge dead-letters what
    does not belong). ``checked(n)`` is called as ``n`` more packets of the file are
    checked, ``on_start`` gets what the file holds once it is, and ``progress(n)`` is called
    as ``n`` more data packets are published or written.
    """
    if nats_url is None and url is None:
        raise ConfigError("nowhere to replay to: give --nats-url (publish on the bus) or "
                          "--url (write to the database)")
    if nats_url is None and tenant_id is not None:
        raise ConfigError("--tenant is for a replay onto the bus without a database; "
                          "writing to the database takes each account's own tenant")
    if url is None and tenant_id is None:
        raise ConfigError("a replay onto the bus needs each account's tenant: give --url "
                          "(looked up) or --tenant")
    tenant_id = validate_tenant_id(tenant_id) if tenant_id is not None else None
    if url is not None:
        check_database_url(url)  # a malformed URL is named before the file is read
    recording = read_recording(path, checked)
    summary = ReplaySummary(str(path), "bus" if nats_url is not None else "database",
                            recording.packets, recording.data_packets,
                            len(recording.accounts), skipped=dict(recording.skipped))
    if on_start is not None:
        on_start(recording)
    if not recording.data_packets:
        return summary
    done = progress or (lambda _: None)

    async def go() -> None:
        if url is not None:
            accounts = await _accounts(url, recording.accounts)
            tenants = {a: info.tenant_id for a, info in accounts.items()}
        else:
            assert tenant_id is not None
            tenants = dict.fromkeys(recording.accounts, tenant_id)
        if nats_url is not None:
            await _publish(recording, tenants, nats_url, summary, frame_packets, done)
        else:
            assert url is not None
            await _write(recording, accounts, url, summary, frame_packets, batch_packets, done)

    asyncio.run(go())
    return summary
