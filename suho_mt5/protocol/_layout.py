"""Compile the record declarations into structs, fast paths and a reference validator.

Each record class's ``Annotated`` hints are read once, at import, into a :class:`Layout`:

* structs compiled from the one declaration, each covering the whole packet: ``decode_struct``
  (the 8 prefix bytes, magic/version/type/flags, as one uint64 so that checking them is one
  integer comparison, then the fields, 8- and 16-byte text read as uint64s for cheap cache
  keys; the CRC trailer skipped with ``x``), ``frame_struct`` (the same without the prefix,
  for ``iter_unpack`` over frames whose prefixes are checked column-wise),
  ``reference_struct`` (the fields exactly as declared, for the reference path) and
  ``encode_struct`` (the first 140 bytes);
* a generated fast decoder and encoder (source built from the declarations, like
  ``namedtuple`` and ``dataclasses`` build theirs), whose checks are plain comparisons and
  dict lookups;
* the reference path (:func:`slow_decode`, :func:`slow_encode`), which interprets the same
  declarations field by field. The fast path falls back to it on *any* doubt (a symbol not yet
  cached, a value out of range), so the reference path alone decides which error is raised
  and at which offset. Tests check that both paths agree.
"""

from __future__ import annotations

import contextlib
import itertools
import struct
import typing
from collections.abc import Callable
from dataclasses import dataclass

from suho_mt5.errors import (
    ChecksumMismatchError,
    FieldRangeError,
    InvalidSymbolError,
    ProtocolError,
)

from ._constants import (
    CRC_OFFSET,
    CRC_RESIDUE,
    HEADER_SIZE,
    MAGIC,
    PACKET_SIZE,
    PROTOCOL_VERSION,
    SYMBOL_CACHE_SIZE,
)
from ._crc import crc32
from ._enums import MessageType
from ._kinds import SEQUENCE, TIMESTAMP, UUID, Kind, Spec, TextRule
from ._messages import RECORD_CLASSES, Packet

PREFIX_SIZE = 8  # magic, version, type, flags: checked as one dict key
_CRC = struct.Struct("<I")
_WHOLE_PACKET = struct.Struct(f"{PACKET_SIZE}s")  # iter_unpack: each packet as bytes, in C


@dataclass(frozen=True, slots=True)
class FieldLayout:
    """Where one field sits in the packet and how it is declared."""

    index: int
    name: str
    offset: int
    spec: Spec

    @property
    def kind(self) -> Kind:
        return self.spec.kind


@dataclass(frozen=True, slots=True)
class Layout:
    """Everything compiled for one message type (see the module docstring for the structs)."""

    message_type: MessageType
    record: type[Packet]
    fields: tuple[FieldLayout, ...]
    payload_used: int
    prefix: bytes
    prefix_value: int
    decode_struct: struct.Struct
    frame_struct: struct.Struct
    reference_struct: struct.Struct
    encode_struct: struct.Struct


# --- text fields -----------------------------------------------------------------------------

# Validated text by fast-path key (``_fast_key``), and text to send by str; both bounded.
_DECODE_CACHES: dict[Kind, dict[typing.Any, str]] = {}
_ENCODE_CACHES: dict[Kind, dict[str, bytes]] = {}


def _caches(kind: Kind) -> tuple[dict[typing.Any, str], dict[str, bytes]]:
    return _DECODE_CACHES.setdefault(kind, {}), _ENCODE_CACHES.setdefault(kind, {})


def _fast_code(kind: Kind) -> str:
    """Struct code the fast paths read a field with.

    Text of 8 or 16 bytes is read as one or two uint64: an int key is cheaper to make and
    hash than a bytes object, and maps one-to-one to the raw bytes.
    """
    if kind.text is not None and kind.size in (8, 16):
        return "Q" * (kind.size // 8)
    return kind.code


def _fast_key(kind: Kind, raw: bytes) -> object:
    """The text cache key of ``raw`` as the fast paths compute it (see ``_fast_code``)."""
    if kind.size == 8:
        return int.from_bytes(raw, "little")
    if kind.size == 16:
        low, high = int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")
        return (low, high) if high else low
    return raw


def _remember(cache: dict[typing.Any, typing.Any], key: object, value: object) -> None:
    # A full cache drops one entry: memory stays bounded whatever the input, and no single
    # decode pays for emptying thousands of entries. ``popitem`` is one atomic dict operation
    # (``del cache[next(iter(cache))]`` is three, and another thread can empty the dict or
    # delete that key in between: KeyError, or RuntimeError from the iterator); it drops the
    # newest entry, so the symbols that arrived first and are seen most stay cached. With
    # several threads the cache may briefly hold one entry more per thread.
    if len(cache) >= SYMBOL_CACHE_SIZE:
        with contextlib.suppress(KeyError):  # another thread emptied it meanwhile
            cache.popitem()
    cache[key] = value


def _text_problem(raw: bytes, rule: TextRule) -> tuple[int, str] | None:
    """(index, reason) of the first violation of ``rule`` in ``raw``, or ``None``."""
    low = 0x20 if rule.allow_space else 0x21
    end = raw.find(0)
    if end < 0:
        end = len(raw)
    for i in range(end):
        if not low <= raw[i] <= 0x7E:
            return i, not_printable(raw[i])
    for i in range(end, len(raw)):
        if raw[i]:
            return i, after_nul(raw[i])
    if end < rule.min_len:
        return 0, "empty"
    return None


def not_printable(byte: int) -> str:
    return f"byte 0x{byte:02X} is not printable ASCII"


def after_nul(byte: int) -> str:
    return f"byte 0x{byte:02X} after the terminating NUL"


def decode_text(field: FieldLayout, raw: bytes, base: int) -> str:
    """Validate a text field's raw bytes, cache and return the text; or raise."""
    kind = field.kind
    assert kind.text is not None
    problem = _text_problem(raw, kind.text)
    if problem is not None:
        index, why = problem
        raise InvalidSymbolError(f"{field.name}: {why}", base + field.offset + index)
    text = raw.rstrip(b"\0").decode("ascii")
    _remember(_caches(kind)[0], _fast_key(kind, raw), text)
    return text


def encode_text(field: FieldLayout, value: object) -> bytes:
    kind = field.kind
    assert kind.text is not None
    where = field.offset
    if not isinstance(value, str):
        raise InvalidSymbolError(f"{field.name} must be a str, not {type(value).__name__}", where)
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError as exc:
        raise InvalidSymbolError(
            f"{field.name}: {value!r} is not ASCII", where + exc.start
        ) from exc
    if len(raw) > kind.size:
        raise InvalidSymbolError(f"{field.name}: longer than {kind.size} bytes", where + kind.size)
    padded = raw.ljust(kind.size, b"\0")
    problem = _text_problem(padded, kind.text)
    if problem is not None:
        index, why = problem
        raise InvalidSymbolError(f"{field.name}: {why}", where + index)
    _remember(_caches(kind)[1], value, raw)
    return raw


# --- the reference path ----------------------------------------------------------------------


def range_error(field: FieldLayout, value: object, base: int) -> FieldRangeError:
    kind = field.kind
    if kind.enum is not None:
        what = f"not a valid {kind.enum.__name__}"
    elif kind.boolean:
        what = "not 0 or 1"
    else:
        what = f"outside {kind.lo}..{kind.hi}"
    return FieldRangeError(f"{field.name} = {value!r} is {what}", base + field.offset)


def check_decoded(field: FieldLayout, value: object, base: int) -> object:
    """The record value of one unpacked field, or raise the error the spec prescribes."""
    kind = field.kind
    category = kind.category
    if category == "text":
        assert isinstance(value, bytes)
        return decode_text(field, value, base)
    if category == "bytes":
        return value
    assert isinstance(value, int)
    if category == "enum":
        member = kind.members().get(value)
        if member is None:
            raise range_error(field, value, base)
        return member
    if not kind.lo <= value <= kind.hi:
        raise range_error(field, value, base)
    return value == 1 if category == "bool" else value


def check_encodable(field: FieldLayout, value: object) -> object:
    """The value to pack for one record field, or raise ``FieldRangeError``/``InvalidSymbol``."""
    kind = field.kind
    category = kind.category
    if category == "text":
        return encode_text(field, value)
    if category == "bytes":
        if isinstance(value, bytes | bytearray) and len(value) == kind.size:
            return bytes(value)
        raise FieldRangeError(
            f"{field.name} must be {kind.size} bytes, got {value!r}", field.offset
        )
    if not isinstance(value, int):
        raise FieldRangeError(
            f"{field.name} must be an int, not {type(value).__name__}", field.offset
        )
    if category == "enum" and value not in kind.members():
        raise range_error(field, value, 0)
    if not kind.lo <= value <= kind.hi:
        raise range_error(field, value, 0)
    return int(value)


def slow_decode(layout: Layout, buf: bytes, offset: int) -> Packet:
    """Decode the packet at ``offset`` field by field (prefix and CRC already checked)."""
    raw = layout.reference_struct.unpack_from(buf, offset)
    values = [check_decoded(f, v, offset) for f, v in zip(layout.fields, raw, strict=True)]
    return tuple.__new__(layout.record, values)


def slow_encode(layout: Layout, msg: Packet) -> bytes:
    """Encode ``msg`` field by field, raising on the first field that cannot be sent."""
    if len(msg) != len(layout.fields):  # a tuple.__new__-built record of the wrong arity
        raise FieldRangeError(f"{layout.record.__name__} needs {len(layout.fields)} fields", 0)
    values = [check_encodable(f, v) for f, v in zip(layout.fields, msg, strict=True)]
    body = layout.encode_struct.pack(layout.prefix, *values)
    return body + _CRC.pack(crc32(body))


def checksum_error(buf: bytes, offset: int) -> ChecksumMismatchError:
    stored = _CRC.unpack_from(buf, offset + CRC_OFFSET)[0]
    computed = crc32(memoryview(buf)[offset : offset + CRC_OFFSET])
    return ChecksumMismatchError(
        f"CRC-32 trailer is 0x{stored:08X}, the packet's bytes give 0x{computed:08X}",
        offset + CRC_OFFSET,
    )




# --- compilation -----------------------------------------------------------------------------

_HEADER_KINDS = (("sequence", SEQUENCE), ("timestamp_us", TIMESTAMP), ("account_id", UUID))


def _read_fields(record: type[Packet]) -> tuple[FieldLayout, ...]:
    hints = typing.get_type_hints(record, include_extras=True)
    fields: list[FieldLayout] = []
    offset = PREFIX_SIZE
    for index, name in enumerate(record._fields):
        spec = hints[name].__metadata__[0]
        assert isinstance(spec, Spec), name
        fields.append(FieldLayout(index, name, offset, spec))
        offset += spec.kind.size
    for field, (name, kind) in zip(fields, _HEADER_KINDS, strict=False):
        assert (field.name, field.kind) == (name, kind), f"{record.__name__}: header mismatch"
    assert fields[3].offset == HEADER_SIZE, record.__name__
    assert offset <= CRC_OFFSET, f"{record.__name__}: payload of {offset - HEADER_SIZE} bytes"
    return tuple(fields)


def compile_layout(record: type[Packet]) -> Layout:
    fields = _read_fields(record)
    end = fields[-1].offset + fields[-1].kind.size
    codes = "".join(f.kind.code for f in fields)
    pad = CRC_OFFSET - end
    fast = "".join(_fast_code(f.kind) for f in fields)
    decode_struct = struct.Struct(f"<Q{fast}{pad}x4x")
    frame_struct = struct.Struct(f"<{PREFIX_SIZE}x{fast}{pad}x4x")
    reference_struct = struct.Struct(f"<{PREFIX_SIZE}x{codes}{pad}x4x")
    encode_struct = struct.Struct(f"<{PREFIX_SIZE}s{codes}{pad}x")
    assert decode_struct.size == frame_struct.size == reference_struct.size == PACKET_SIZE
    assert encode_struct.size == CRC_OFFSET
    mtype = record.MESSAGE_TYPE
    prefix = MAGIC + bytes((PROTOCOL_VERSION, mtype)) + b"\0\0"
    return Layout(
        mtype,
        record,
        fields,
        end - HEADER_SIZE,
        prefix,
        int.from_bytes(prefix, "little"),
        decode_struct,
        frame_struct,
        reference_struct,
        encode_struct,
    )


_BOOLS = {0: False, 1: True}
_BOOL_SET = frozenset((0, 1))


def _range_test(name: str, kind: Kind) -> str | None:
    if not kind.range_checked:
        return None
    lo, hi = kind.struct_bounds
    if kind.lo == lo:
        return f"{name} > {kind.hi}"
    if kind.hi == hi:
        return f"{name} < {kind.lo}"
    return f"not {kind.lo} <= {name} <= {kind.hi}"


def build_fast_decoder(layout: Layout) -> Callable[[bytes, int], Packet]:
    """Generate ``decode(buf, offset)`` for one layout: unpack, look up, compare, build.

    Precondition: the 8-byte prefix and the CRC of the packet at ``offset`` were checked.
    """
    names = [f"v{f.index}" for f in layout.fields]
    ns: dict[str, object] = {
        "_unpack": layout.decode_struct.unpack_from,
        "_new": tuple.__new__,
        "_cls": layout.record,
        "_bools": _BOOLS,
        "_slow": lambda buf, off: slow_decode(layout, buf, off),
    }
    lookups, tests = _fast_checks(layout, ns)
    tup = ", ".join(names)
    lines = [
        f"def decode_{layout.message_type.name.lower()}(buf, off):",
        f"    _p, {_targets(layout)}, = _unpack(buf, off)",
    ]
    if lookups:
        lines += [
            "    try:",
            *(f"        {x}" for x in lookups),
            "    except KeyError:",
            "        return _slow(buf, off)",
        ]
    if tests:
        lines += [f"    if {' or '.join(tests)}:", "        return _slow(buf, off)"]
    lines.append(f"    return _new(_cls, ({tup},))")
    return typing.cast(Callable[[bytes, int], Packet], _exec(lines, ns))


def build_run_decoder(
    layout: Layout,
) -> Callable[[bytes, int, int, Callable[[Packet], None]], int]:
    """Generate ``run(buf, offset, end, append)`` for frames: decode consecutive packets of
    this type, CRC included, until one is of another type or needs a closer look.

    Returns the offset of the first packet not decoded; the caller decodes that one through
    the single-packet path (which tells a new symbol from an error). Inlining the per-packet
    work in one loop saves a function call and a dict lookup per packet.
    """
    names = [f"v{f.index}" for f in layout.fields]
    ns: dict[str, object] = {
        "_unpack": layout.decode_struct.unpack,
        "_new": tuple.__new__,
        "_cls": layout.record,
        "_bools": _BOOLS,
        "_prefix": layout.prefix_value,
        "_crc": crc32,
    }
    lookups, tests = _fast_checks(layout, ns)
    tup = ", ".join(names)
    lines = [
        f"def run_{layout.message_type.name.lower()}(buf, off, end, append):",
        "    while off < end:",
        f"        packet = buf[off : off + {PACKET_SIZE}]",
        f"        p, {_targets(layout)}, = _unpack(packet)",
        f"        if p != _prefix or _crc(packet) != {CRC_RESIDUE}:",
        "            return off",
    ]
    if lookups:
        lines += [
            "        try:",
            *(f"            {x}" for x in lookups),
            "        except KeyError:",
            "            return off",
        ]
    if tests:
        lines += [f"        if {' or '.join(tests)}:", "            return off"]
    lines += [
        f"        append(_new(_cls, ({tup},)))",
        f"        off += {PACKET_SIZE}",
        "    return off",
    ]
    return typing.cast(
        Callable[[bytes, int, int, Callable[[Packet], None]], int], _exec(lines, ns)
    )


FrameDecoder = Callable[[bytes, int, list[Packet]], int]


def build_frame_decoder(layout: Layout) -> FrameDecoder:
    """Generate ``decode_all(buf, end, out)`` for a frame whose packets ``buf[:end]`` are all
    of this type, their prefixes already checked (column-wise, by the caller).

    The CRCs are checked first, with no Python loop (``starmap`` of ``crc32`` over the
    packets); then ``Struct.iter_unpack`` unpacks
    all packets in C (with ``frame_struct``, which skips the prefix) and the loop only looks
    up and compares. Returns ``end``, or the offset of the first packet that is not valid. A
    packet the fast checks doubt (a symbol not cached yet) goes through the reference path.
    """
    names = [f"v{f.index}" for f in layout.fields]
    ns: dict[str, object] = {
        "_iter": layout.frame_struct.iter_unpack,
        "_whole": _WHOLE_PACKET.iter_unpack,
        "_starmap": itertools.starmap,
        "_new": tuple.__new__,
        "_cls": layout.record,
        "_bools": _BOOLS,
        "_crc": crc32,
        "_slow": lambda buf, off, out: _append_checked(layout, buf, off, out),
    }
    lookups, tests = _fast_checks(layout, ns)
    tup = ", ".join(names)
    size = PACKET_SIZE
    retry = [
        f"            if not _slow(buf, (len(out) - base) * {size}, out):",
        f"                return (len(out) - base) * {size}",
        "            continue",
    ]
    lines = [
        f"def frame_{layout.message_type.name.lower()}(buf, end, out):",
        "    crcs = list(_starmap(_crc, _whole(memoryview(buf)[:end])))",
        f"    if crcs.count({CRC_RESIDUE}) != len(crcs):",
        f"        end = {size} * next(i for i, c in enumerate(crcs) if c != {CRC_RESIDUE})",
        "    append = out.append",
        "    base = len(out)",
        f"    for {_targets(layout)}, in _iter(memoryview(buf)[:end]):",
    ]
    if lookups:
        lines += [
            "        try:",
            *(f"            {x}" for x in lookups),
            "        except KeyError:",
        ]
        lines += retry
    if tests:
        lines += [f"        if {' or '.join(tests)}:", *retry]
    lines += [f"        append(_new(_cls, ({tup},)))", "    return end"]
    return typing.cast(FrameDecoder, _exec(lines, ns))


MixedFrameDecoder = Callable[[bytes, int, bytes, list[Packet]], int]


def build_mixed_frame_decoder(layout: Layout) -> MixedFrameDecoder:
    """Generate ``decode_all(buf, end, types, out)`` for a frame of several types in which
    this type is the most frequent; prefixes and CRCs already checked.

    All packets are unpacked with *this* type's struct in one ``iter_unpack`` (any 144 bytes
    unpack); the tuples of packets of another type (``types[i]``) are dropped and those
    packets decoded by their own type's decoder. That keeps the frequent type free of any
    per-packet call, at the price of one wasted unpack per other packet.
    """
    names = [f"v{f.index}" for f in layout.fields]
    ns: dict[str, object] = {
        "_iter": layout.frame_struct.iter_unpack,
        "_new": tuple.__new__,
        "_cls": layout.record,
        "_bools": _BOOLS,
        "_others": {int(t): d for t, d in _DECODERS_BY_TYPE.items()},
        "_ProtocolError": ProtocolError,
        "_slow": lambda buf, off, out: _append_checked(layout, buf, off, out),
    }
    lookups, tests = _fast_checks(layout, ns)
    tup = ", ".join(names)
    retry = [
        "            if not _slow(buf, off, out):",
        "                return off",
        "            continue",
    ]
    lines = [
        f"def mixed_frame_{layout.message_type.name.lower()}(buf, end, types, out):",
        "    append = out.append",
        f"    off = -{PACKET_SIZE}",
        f"    for t, ({_targets(layout)},) in zip(types, _iter(memoryview(buf)[:end])):",
        f"        off += {PACKET_SIZE}",
        f"        if t != {int(layout.message_type)}:",
        "            try:",
        "                append(_others[t](buf, off))",
        "            except _ProtocolError:",
        "                return off",
        "            continue",
    ]
    if lookups:
        lines += [
            "        try:",
            *(f"            {x}" for x in lookups),
            "        except KeyError:",
        ]
        lines += retry
    if tests:
        lines += [f"        if {' or '.join(tests)}:", *retry]
    lines += [f"        append(_new(_cls, ({tup},)))", "    return end"]
    return typing.cast(MixedFrameDecoder, _exec(lines, ns))


def _append_checked(layout: Layout, buf: bytes, offset: int, out: list[Packet]) -> bool:
    try:
        out.append(slow_decode(layout, buf, offset))
    except ProtocolError:
        return False
    return True


def _fast_checks(
    layout: Layout, ns: dict[str, object], tag: str = ""
) -> tuple[list[str], list[str]]:
    """Source of the fast paths' lookups (text, enum, bool: KeyError if in doubt) and range
    tests (true if in doubt) for one layout; the tables they use go into ``ns``."""
    lookups: list[str] = []
    tests: list[str] = []
    for f in layout.fields:
        name = f"v{f.index}"
        category = f.kind.category
        if category == "text":
            ns[f"_{tag}t{f.index}"] = _caches(f.kind)[0]
            key = name
            if _fast_code(f.kind) == "QQ":  # (low, high) if high else low: see _fast_key
                key = f"{name}b and ({name}a, {name}b) or {name}a"
            lookups.append(f"{name} = _{tag}t{f.index}[{key}]")
        elif category == "enum":
            ns[f"_{tag}e{f.index}"] = f.kind.members()
            lookups.append(f"{name} = _{tag}e{f.index}[{name}]")
        elif category == "bool":
            lookups.append(f"{name} = _bools[{name}]")
        else:
            test = _range_test(name, f.kind)
            if test:
                tests.append(test)
    return lookups, tests


def _targets(layout: Layout) -> str:
    """The names a fast path unpacks ``decode_struct``/``frame_struct`` into."""
    names = []
    for f in layout.fields:
        if _fast_code(f.kind) == "QQ":
            names += [f"v{f.index}a", f"v{f.index}b"]
        else:
            names.append(f"v{f.index}")
    return ", ".join(names)


# The order of the type tests in the single-packet decoder: most frequent first (the seed's
# records per day: quotes, then snapshots and heartbeats every 30 s, then the rest).
_FREQUENCY_ORDER = (
    MessageType.BROKER_QUOTE,
    MessageType.HEARTBEAT,
    MessageType.ACCOUNT_SNAPSHOT,
    MessageType.ORDER_EVENT,
    MessageType.EXECUTION_REPORT,
    MessageType.SIGNAL,
    MessageType.ACK,
    MessageType.ERROR,
    MessageType.COMMAND,
    MessageType.CONFIG,
)


def build_decode(
    layouts: dict[MessageType, Layout],
    careful: Callable[[typing.Any], Packet],
    crc: Callable[..., int] = crc32,
) -> Callable[[typing.Any], Packet]:
    """Generate the public single-packet ``decode(buf)``: every type's fast path inline.

    One Python call per packet. The most frequent type's ``Struct.unpack`` runs first: it
    checks the length (``struct.error``) and yields the 8-byte prefix as one integer, which
    identifies and checks the packet in one comparison; other packets branch on the type
    byte, most frequent first. Anything unusual (not a buffer, wrong length, bad header or
    CRC) goes to ``careful``, the reference path, which raises the precise error; a field in
    doubt goes to that type's reference decoder.
    """
    ns: dict[str, object] = {
        "_crc": crc,
        "_new": tuple.__new__,
        "_bools": _BOOLS,
        "_careful": careful,
        "_StructError": struct.error,
    }
    lines = ["def decode(buf):", "    try:"]
    for position, mtype in enumerate(_FREQUENCY_ORDER):
        layout = layouts[mtype]
        k = int(mtype)
        tag = f"m{k}_"
        ns[f"_{tag}unpack"] = layout.decode_struct.unpack
        ns[f"_{tag}cls"] = layout.record
        ns[f"_{tag}slow"] = lambda buf, layout=layout: slow_decode(layout, buf, 0)
        lookups, tests = _fast_checks(layout, ns, tag)
        tup = ", ".join(f"v{f.index}" for f in layout.fields)
        if position == 0:
            # The most frequent type is unpacked before anything else: its prefix then
            # both identifies and checks it (other packets pay one unpack in vain).
            lines += [
                f"        p, {_targets(layout)}, = _{tag}unpack(buf)",
                f"        if p == {layout.prefix_value}:",
                f"            if _crc(buf) != {CRC_RESIDUE}:",
                "                return _careful(buf)",
            ]
        else:
            if position == 1:
                lines.append("        t = buf[5]")
            lines += [
                f"        if t == {k}:",
                f"            p, {_targets(layout)}, = _{tag}unpack(buf)",
                f"            if p != {layout.prefix_value} or _crc(buf) != {CRC_RESIDUE}:",
                "                return _careful(buf)",
            ]
        if lookups:
            lines += [
                "            try:",
                *(f"                {x}" for x in lookups),
                "            except KeyError:",
                f"                return _{tag}slow(buf)",
            ]
        if tests:
            lines += [
                f"            if {' or '.join(tests)}:",
                f"                return _{tag}slow(buf)",
            ]
        lines.append(f"            return _new(_{tag}cls, ({tup},))")
    lines += [
        "    except (TypeError, IndexError, _StructError):",
        "        pass",
        "    return _careful(buf)",
    ]
    return typing.cast(Callable[[typing.Any], Packet], _exec(lines, ns))


def build_fast_encoder(layout: Layout) -> Callable[[Packet], bytes]:
    """Generate ``encode(msg)`` for one layout; anything unusual goes to the reference path."""
    names = [f"v{f.index}" for f in layout.fields]
    ns: dict[str, object] = {
        "_pack": layout.encode_struct.pack,
        "_prefix": layout.prefix,
        "_crc": crc32,
        "_crcpack": _CRC.pack,
        "_bools": _BOOL_SET,
        "_StructError": struct.error,
        "_slow": lambda msg: slow_encode(layout, msg),
    }
    body: list[str] = []
    tests: list[str] = []
    for f, name in zip(layout.fields, names, strict=True):
        category = f.kind.category
        if category == "text":
            ns[f"_t{f.index}"] = _caches(f.kind)[1]
            body.append(f"{name} = _t{f.index}[{name}]")
        elif category == "enum":
            ns[f"_e{f.index}"] = frozenset(f.kind.members())
            tests.append(f"{name} not in _e{f.index}")
        elif category == "bool":
            tests.append(f"{name} not in _bools")
        elif category == "bytes":
            # struct's "16s" would silently pad or truncate: the length must be exact.
            tests.append(f"len({name}) != {f.kind.size}")
        else:
            test = _range_test(name, f.kind)
            if test:
                tests.append(test)
    tup = ", ".join(names)
    lines = [
        f"def encode_{layout.message_type.name.lower()}(msg):",
        "    try:",
        f"        {tup}, = msg",
    ]
    lines += [f"        {x}" for x in body]
    if tests:
        lines += [f"        if {' or '.join(tests)}:", "            return _slow(msg)"]
    lines += [
        f"        packet = _pack(_prefix, {tup})",
        "    except (KeyError, TypeError, ValueError, _StructError):",
        "        return _slow(msg)",
        "    return packet + _crcpack(_crc(packet))",
    ]
    return typing.cast(Callable[[Packet], bytes], _exec(lines, ns))


def _exec(lines: list[str], ns: dict[str, object]) -> object:
    source = "\n".join(lines) + "\n"
    exec(compile(source, f"<suho_mt5.protocol {lines[0][4 : lines[0].index('(')]}>", "exec"), ns)
    name = lines[0][4 : lines[0].index("(")]
    func = ns[name]
    func.__source__ = source  # type: ignore[attr-defined]  # for debugging and the docs
    return func


LAYOUTS: tuple[Layout, ...] = tuple(compile_layout(r) for r in RECORD_CLASSES)
LAYOUT_BY_TYPE: dict[MessageType, Layout] = {lay.message_type: lay for lay in LAYOUTS}
LAYOUT_BY_CLASS: dict[type[Packet], Layout] = {lay.record: lay for lay in LAYOUTS}
FAST_DECODERS: dict[bytes, Callable[[bytes, int], Packet]] = {
    lay.prefix: build_fast_decoder(lay) for lay in LAYOUTS
}
RunDecoder = Callable[[bytes, int, int, Callable[[Packet], None]], int]
FAST_RUNS: dict[bytes, RunDecoder] = {lay.prefix: build_run_decoder(lay) for lay in LAYOUTS}
FRAME_DECODERS: dict[int, FrameDecoder] = {
    int(lay.message_type): build_frame_decoder(lay) for lay in LAYOUTS
}
_DECODERS_BY_TYPE: dict[MessageType, Callable[[bytes, int], Packet]] = {
    lay.message_type: FAST_DECODERS[lay.prefix] for lay in LAYOUTS
}
MIXED_FRAME_DECODERS: dict[int, MixedFrameDecoder] = {
    int(lay.message_type): build_mixed_frame_decoder(lay) for lay in LAYOUTS
}
FAST_ENCODERS: dict[type[Packet], Callable[[Packet], bytes]] = {
    lay.record: build_fast_encoder(lay) for lay in LAYOUTS
}

assert crc32(b"\0" * 4 + _CRC.pack(crc32(b"\0" * 4))) == CRC_RESIDUE
