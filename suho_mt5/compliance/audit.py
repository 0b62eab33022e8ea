"""Verify the audit trail's hash chains, and export their heads as digests kept outside
the database.

Every tenant's events in ``mt5_audit_log`` form a chain: position ``chain_seq`` 1, 2, 3...,
each row sealed by ``row_hash`` = SHA-256 over its fields and the previous row's hash
(docs/data-model.md gives the formula). :func:`verify` recomputes every hash **in Python**
(not with the database's own function, which a superuser could replace), follows the links,
checks the positions have no gaps, that the chain ends where ``mt5_audit_chain_heads`` says,
that a chain starting after position 1 starts right after a retention checkpoint, and that
corrections name the events they correct. It reports, per tenant, the first broken
position.

A chain rewritten from some position on with freshly computed hashes (and a head to match)
passes all of that: only a copy of the heads taken earlier and kept elsewhere shows it.
:func:`take_digest` exports those heads; :func:`verify` with ``since=`` checks that each
position in the digest still holds the hash it held then.

>>> row_hash(tenant_id="t", chain_seq=1, prev_hash="0" * 64,
...          event_id="00000000-0000-0000-0000-000000000001",
...          time=datetime(2026, 1, 1, tzinfo=UTC), recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
...          event_type="x.y", actor="me", account_id=None, payload_text="{}")[:16]
'f295d1c5958d4bdd'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from suho_mt5.errors import DigestError

__all__ = [
    "DIGEST_FORMAT",
    "ZERO_HASH",
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

#: The ``prev_hash`` of every chain's first event.
ZERO_HASH: Final = "0" * 64
#: The ``format`` field of a digest file.
DIGEST_FORMAT: Final = "suho-mt5-audit-digest/1"
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _j(value: str) -> str:
    # PostgreSQL's JSON string escaping: ", \\, \b \f \n \r \t, other controls as \u00xx,
    # everything else as is; json.dumps(ensure_ascii=False) writes the same.
    return json.dumps(value, ensure_ascii=False)


def row_hash(*, tenant_id: str, chain_seq: int, prev_hash: str, event_id: object,
             time: datetime, recorded_at: datetime, event_type: str, actor: str,
             account_id: object | None, payload_text: str, app_user: str | None = None) -> str:
    """The ``row_hash`` an event must carry, computed without the database.

    ``payload_text`` is the payload as PostgreSQL prints ``jsonb`` (``payload::text``):
    the canonical form the database hashed, so no JSON re-encoding can differ from it.
    """
    parts = [
        _j(tenant_id), _j(str(chain_seq)), _j(prev_hash), _j(str(event_id)),
        _j(str(_micros(time))), _j(str(_micros(recorded_at))), _j(event_type), _j(actor),
        "null" if account_id is None else _j(str(account_id)), payload_text,
    ]
    if app_user is not None:
        parts.append(_j(app_user))
    return hashlib.sha256(("[" + ", ".join(parts) + "]").encode()).hexdigest()


@dataclass(frozen=True)
class ChainHead:
    """The last event of one tenant's chain: its position, hash and database time."""

    tenant_id: str
    chain_seq: int
    row_hash: str
    recorded_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"tenant_id": self.tenant_id, "chain_seq": self.chain_seq,
                "row_hash": self.row_hash, "recorded_at": self.recorded_at.isoformat()}


@dataclass(frozen=True)
class Digest:
    """Chain heads taken at one moment, to be kept outside the database."""

    taken_at: datetime
    database: str
    heads: tuple[ChainHead, ...]

    def seal(self) -> str:
        """SHA-256 over the heads, stored in the file so an edited file shows."""
        canonical = json.dumps([h.as_json() for h in self.heads], sort_keys=True,
                               separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def as_json(self) -> dict[str, Any]:
        return {"format": DIGEST_FORMAT, "taken_at": self.taken_at.isoformat(),
                "database": self.database, "heads": [h.as_json() for h in self.heads],
                "sha256": self.seal()}

    def dumps(self) -> str:
        return json.dumps(self.as_json(), indent=2) + "\n"


@dataclass(frozen=True)
class ChainProblem:
    """Where a chain first broke. ``kind``: ``edited`` (a row's hash does not match its
    contents), ``link`` (a row does not follow the one before: rows swapped or replaced),
    ``missing`` (positions absent: rows deleted), ``duplicate``, ``truncated`` (the chain
    ends before its recorded head, or before a digest's position), ``head`` (the chain
    disagrees with its recorded head in another way), ``digest`` (a position no longer
    holds the hash a digest recorded: rewritten), ``checkpoint``, ``correction``."""

    tenant_id: str
    position: int
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"tenant {self.tenant_id}: position {self.position}: {self.kind}: {self.detail}"


@dataclass
class ChainReport:
    """What :func:`verify` found for one tenant's chain."""

    tenant_id: str
    events: int = 0
    first: int | None = None
    last: int | None = None
    #: The retention checkpoint the chain starts after (its ``through_seq``), if any.
    starts_after_checkpoint: int | None = None
    #: The digest position checked for this tenant, if any.
    digest_position: int | None = None
    problem: ChainProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


@dataclass
class VerifyResult:
    """Every chain :func:`verify` walked; ``ok`` when none broke."""

    chains: list[ChainReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.chains)

    @property
    def problems(self) -> list[ChainProblem]:
        return [c.problem for c in self.chains if c.problem is not None]

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "chains": [c.as_json() for c in self.chains]}


_ROWS = sa.text(
    "SELECT tenant_id, chain_seq, prev_hash, event_id, time, recorded_at, event_type, actor,"
    " account_id, payload::text AS payload_text, app_user, row_hash,"
    " CASE WHEN event_type IN ('audit.checkpoint', 'audit.correction') THEN payload END"
    " AS special FROM mt5_audit_log WHERE (CAST(:tenant AS text) IS NULL OR tenant_id = :tenant)"
    " ORDER BY tenant_id, chain_seq"
)
_HEADS = sa.text(
    "SELECT tenant_id, chain_seq, row_hash, recorded_at FROM mt5_audit_chain_heads"
    " WHERE (CAST(:tenant AS text) IS NULL OR tenant_id = :tenant) ORDER BY tenant_id"
)


@contextmanager
def _snapshot(bind: Connection | Engine) -> Iterator[Connection]:
    """One read-only REPEATABLE READ transaction: every query sees the same moment."""
    if isinstance(bind, Engine):
        with bind.connect() as conn, _snapshot(conn) as inner:
            yield inner
        return
    conn = bind.execution_options(isolation_level="REPEATABLE READ")
    with conn.begin():
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        yield conn


class _Walk:
    """The state of one chain's walk. A gap (positions missing) does not stop it, since a
    retention checkpoint later in the chain may cover it; anything else does. The problem
    reported is the one at the lowest position."""

    def __init__(self, tenant_id: str, head: ChainHead | None,
                 digest_head: ChainHead | None) -> None:
        self.report = ChainReport(tenant_id)
        self.head = head
        self.digest_head = digest_head
        self.prev_hash: str | None = None
        self.stopped = False
        #: (first missing, last missing, prev_hash of the row after the gap)
        self.gaps: list[tuple[int, int, str]] = []
        #: the positions retention may remove, with their hashes (from checkpoints)
        self.removable: dict[int, str] = {}
        self.through = 0
        self.checkpoints: list[tuple[int, dict[int, str]]] = []
        self.corrections: list[tuple[int, int, str, str]] = []  # (pos, seq, id, hash)
        if digest_head is not None:
            self.report.digest_position = digest_head.chain_seq

    def fail(self, position: int, kind: str, detail: str) -> None:
        known = self.report.problem
        if known is None or position < known.position:
            self.report.problem = ChainProblem(self.report.tenant_id, position, kind, detail)

    def stop(self, position: int, kind: str, detail: str) -> None:
        self.fail(position, kind, detail)
        self.stopped = True

    def add(self, row: Any) -> None:
        if self.stopped:
            return
        r = self.report
        seq = int(row.chain_seq)
        computed = row_hash(
            tenant_id=row.tenant_id, chain_seq=seq, prev_hash=row.prev_hash,
            event_id=row.event_id, time=row.time, recorded_at=row.recorded_at,
            event_type=row.event_type, actor=row.actor, account_id=row.account_id,
            payload_text=row.payload_text, app_user=row.app_user)
        expected = 1 if r.last is None else r.last + 1
        if seq < expected:
            return self.stop(seq, "duplicate", "two rows hold this position")
        if computed != row.row_hash:
            return self.stop(seq, "edited", "the row's hash does not match its contents"
                             " (a field was changed)")
        if seq > expected:
            self.gaps.append((expected, seq - 1, row.prev_hash))
        elif row.prev_hash != (self.prev_hash or ZERO_HASH):
            return self.stop(seq, "link", "the row does not follow the previous position"
                             " (rows swapped or replaced)")
        dh = self.digest_head
        if dh is not None and dh.chain_seq == seq and dh.row_hash != row.row_hash:
            return self.stop(seq, "digest", f"the hash differs from the digest taken at"
                             f" {dh.recorded_at.isoformat()}: the chain up to this position"
                             " was rewritten")
        special = row.special
        if row.event_type == "audit.checkpoint" and isinstance(special, Mapping):
            covers: dict[int, str] = {}
            if special.get("through_seq") is not None:
                through = int(special["through_seq"])
                covers[through] = str(special["through_hash"])
                self.through = max(self.through, through)
            for extra_seq, extra_hash in special.get("extra") or ():
                covers[int(extra_seq)] = str(extra_hash)
            self.checkpoints.append((seq, covers))
            self.removable.update(covers)
        elif row.event_type == "audit.correction" and isinstance(special, Mapping):
            corrects = special.get("corrects") or {}
            self.corrections.append((seq, int(corrects.get("chain_seq", 0)),
                                     str(corrects.get("event_id")),
                                     str(corrects.get("row_hash"))))
        if r.first is None:
            r.first = seq
        r.events += 1
        r.last = seq
        self.prev_hash = row.row_hash

    def covered(self, position: int) -> bool:
        return position <= self.through or position in self.removable

    def finish(self, lookup: Lookup) -> ChainReport:
        self._check_gaps()
        self._check_references(lookup)
        if not self.stopped:
            self._check_head()
        if self.digest_head is not None:
            self._check_digest()
        return self.report

    def _check_gaps(self) -> None:
        for first, last, linked_hash in self.gaps:
            beyond = range(max(first, self.through + 1), last + 1)
            if any(p not in self.removable for p in beyond):
                return self.fail(first, "missing", f"positions {first}..{last} are missing"
                                 " and no retention checkpoint covers them (rows deleted)")
            recorded = self.removable.get(last)
            if recorded is not None and recorded != linked_hash:
                return self.fail(last + 1, "link", f"the row after the removed positions"
                                 f" {first}..{last} does not follow the checkpoint's hash")
            if first == 1 and self.report.starts_after_checkpoint is None:
                self.report.starts_after_checkpoint = last
        return None

    def _check_references(self, lookup: Lookup) -> None:
        first = self.report.first or 1
        for position, covers in self.checkpoints:
            for seq, hash_ in covers.items():
                found = lookup(seq) if seq >= first else None
                if seq >= position or (found is not None and found[0] != hash_):
                    return self.fail(position, "checkpoint", f"the checkpoint names position"
                                     f" {seq} with a hash the chain does not hold")
        for position, seq, event_id, hash_ in self.corrections:
            if seq >= position:
                return self.fail(position, "correction", "a correction must follow the event"
                                 " it corrects")
            found = lookup(seq)  # None: removed (the gap check judges that)
            if found is not None and found != (hash_, event_id):
                return self.fail(position, "correction", f"the corrected event at position"
                                 f" {seq} is not the one the correction names")
        return None

    def _check_head(self) -> None:
        r, head = self.report, self.head
        last = r.last or 0
        if head is None:
            if r.last is not None:
                self.fail(last, "head", "the chain has no recorded head")
            return
        if head.chain_seq > last:
            self.fail(last + 1, "truncated", f"the chain ends at position {last}, its recorded"
                      f" head is position {head.chain_seq} (tail truncated)")
        elif head.chain_seq < last:
            self.fail(head.chain_seq + 1, "head", f"positions after the recorded head"
                      f" {head.chain_seq} were written around the chain trigger")
        elif head.row_hash != self.prev_hash:
            self.fail(last, "head", "the last event's hash differs from the recorded head"
                      " (rewritten)")

    def _check_digest(self) -> None:
        r, dh = self.report, self.digest_head
        assert dh is not None
        if r.last is None or dh.chain_seq > r.last:
            self.fail((r.last or 0) + 1, "truncated", f"the digest taken at"
                      f" {dh.recorded_at.isoformat()} names position {dh.chain_seq}; the"
                      f" chain ends at {r.last or 0}")


def verify(bind: Connection | Engine, *, tenant_id: str | None = None,
           since: Digest | None = None) -> VerifyResult:
    """Walk every chain (or ``tenant_id``'s) and report where each first broke.

    With ``since``, also check that every position the digest names still holds the hash
    it held (a chain rewritten with recomputed hashes fails there) and that no tenant in
    the digest lost its chain. Needs SELECT on ``mt5_audit_log`` and
    ``mt5_audit_chain_heads`` (``mt5_compliance``).
    """
    digest_heads = {h.tenant_id: h for h in (since.heads if since else ())
                    if tenant_id is None or h.tenant_id == tenant_id}
    result = VerifyResult()
    with _snapshot(bind) as conn:
        heads = {row.tenant_id: ChainHead(row.tenant_id, int(row.chain_seq), row.row_hash,
                                          row.recorded_at)
                 for row in conn.execute(_HEADS, {"tenant": tenant_id})}
        walks: dict[str, _Walk] = {}
        stream = conn.execution_options(stream_results=True, yield_per=2000)
        for row in stream.execute(_ROWS, {"tenant": tenant_id}):
            walk = walks.get(row.tenant_id)
            if walk is None:
                walk = walks[row.tenant_id] = _Walk(
                    row.tenant_id, heads.get(row.tenant_id), digest_heads.get(row.tenant_id))
            walk.add(row)
        for name in sorted(set(heads) | set(digest_heads) - set(walks)):
            walks.setdefault(name, _Walk(name, heads.get(name), digest_heads.get(name)))
        for name in sorted(walks):
            result.chains.append(walks[name].finish(_lookup(conn, name)))
    return result


Lookup = Callable[[int], "tuple[str, str] | None"]


def _lookup(conn: Connection, tenant_id: str) -> Lookup:
    """``lookup(position)``: ``(row_hash, event_id)`` of the tenant's row there, or None."""
    def get(seq: int) -> tuple[str, str] | None:
        row = conn.execute(sa.text(
            "SELECT row_hash, event_id::text AS event_id FROM mt5_audit_log"
            " WHERE tenant_id = :t AND chain_seq = :s"), {"t": tenant_id, "s": seq}).first()
        return None if row is None else (row.row_hash, row.event_id)

    return get


def take_digest(bind: Connection | Engine, *, tenant_id: str | None = None) -> Digest:
    """The current head of every chain (or ``tenant_id``'s), read from the log itself in one
    snapshot, with the database's time: write it somewhere the database cannot reach."""
    with _snapshot(bind) as conn:
        taken_at, database = conn.execute(
            sa.text("SELECT now(), current_database()")).one()
        # Every chain has a head row; its last event is read from the log itself (one
        # index probe per tenant, not a scan of 7 years of events).
        rows = conn.execute(sa.text(
            "SELECT h.tenant_id, a.chain_seq, a.row_hash, a.recorded_at"
            " FROM mt5_audit_chain_heads h CROSS JOIN LATERAL ("
            "   SELECT l.chain_seq, l.row_hash, l.recorded_at FROM mt5_audit_log l"
            "   WHERE l.tenant_id = h.tenant_id ORDER BY l.chain_seq DESC LIMIT 1) a"
            " WHERE (CAST(:tenant AS text) IS NULL OR h.tenant_id = :tenant)"
            " ORDER BY h.tenant_id"), {"tenant": tenant_id}).all()
    heads = tuple(ChainHead(r.tenant_id, int(r.chain_seq), r.row_hash, r.recorded_at)
                  for r in rows)
    return Digest(taken_at, database, heads)


def read_digest(source: Path | str) -> Digest:
    """Read a digest file written by :meth:`Digest.dumps`; raises :class:`DigestError`
    when it cannot be read, is not a digest, or its seal does not match its heads."""
    try:
        data = json.loads(Path(source).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DigestError(f"cannot read digest {source}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise DigestError(f"digest {source} is not JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != DIGEST_FORMAT:
        raise DigestError(f"{source} is not a {DIGEST_FORMAT} file")
    try:
        heads = tuple(
            ChainHead(str(h["tenant_id"]), int(h["chain_seq"]), str(h["row_hash"]),
                      datetime.fromisoformat(h["recorded_at"]))
            for h in data["heads"])
        digest = Digest(datetime.fromisoformat(data["taken_at"]), str(data["database"]), heads)
    except (KeyError, TypeError, ValueError) as exc:
        raise DigestError(f"digest {source} is malformed: {exc!r}") from exc
    if digest.seal() != data.get("sha256"):
        raise DigestError(f"digest {source} was altered: its heads do not match its sha256")
    return digest


def write_checkpoints(bind: Connection | Engine) -> int:
    """Append a retention checkpoint to every chain whose expired prefix grew
    (``mt5_audit_checkpoint()``); returns how many were written. Run it before retention
    (daily is plenty): retention removes only what a checkpoint covers."""
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return write_checkpoints(conn)
    return int(bind.execute(sa.text("SELECT mt5_audit_checkpoint()")).scalar_one())


def correct_event(bind: Connection | Engine, tenant_id: str, event_id: object, reason: str,
                  correction: Mapping[str, object] | None = None) -> int:
    """Record a correction of ``event_id`` (a new ``audit.correction`` event naming the
    original's position, id and hash; the original is never edited). Returns the
    correction's position. Needs ``mt5_compliance``."""
    if isinstance(bind, Engine):
        with bind.begin() as conn:
            return correct_event(conn, tenant_id, event_id, reason, correction)
    return int(bind.execute(
        sa.text("SELECT mt5_audit_correct(:t, CAST(:e AS uuid), :r, CAST(:c AS jsonb))"),
        {"t": tenant_id, "e": str(event_id), "r": reason,
         "c": json.dumps(dict(correction or {}))}).scalar_one())
