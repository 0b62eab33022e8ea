"""The golden vectors in the line form the C test driver reads (``clients/c/suho_test.c``).

``python -m tests.unit.protocol.c_fixture OUT.txt`` writes it from every
``tests/vectors/*.json``: the JSON files stay the one source, this only re-spells them for a
C program that should not need a JSON parser. Enum and field names are kept, so the C side
maps them with its own tables.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

from .vector_files import VECTORS, Vectors


def _value(value: object) -> str:
    if isinstance(value, bool):
        return f"b:{int(value)}"
    if isinstance(value, int):
        return f"i:{value}"
    assert isinstance(value, str)
    return f"s:{value}"


def _fields(message_type: str, fields: dict[str, Any]) -> str:
    from suho_mt5.protocol import RECORD_TYPES, MessageType
    from suho_mt5.protocol._layout import LAYOUT_BY_CLASS

    layout = LAYOUT_BY_CLASS[RECORD_TYPES[MessageType[message_type]]]
    parts = []
    for f in layout.fields:
        value = fields[f.name]
        if f.kind.is_uuid:
            token = "u:" + uuid.UUID(value).hex
        elif f.kind.text is not None:
            token = "t:" + value.encode("utf-8").hex()
        elif f.kind.enum is not None and isinstance(value, str):
            token = f"e:{value}"
        else:
            token = _value(value)
        parts.append(f"{f.name}={token}")
    assert len(parts) == len(fields), f"{message_type}: fields {sorted(fields)}"
    return f"{len(parts)} {' '.join(parts)}"


def _hex(text: str) -> str:
    return text or "-"


def lines(vectors: Vectors = VECTORS) -> list[str]:
    out = []
    for v in vectors.valid:
        out.append(
            f"V {v['name']} {int(bool(v.get('decode_only')))} {v['type_code']} {v['hex']} "
            + _fields(v["message_type"], v["fields"])
        )
    for v in vectors.invalid:
        out.append(f"I {v['name']} {_hex(v['hex'])} {v['error']} {v['offset']}")
    for v in vectors.encode:
        fields = _fields(v["message_type"], v["fields"]) if v["message_type"] else "0"
        out.append(f"E {v['name']} {v['type_code']} {v['error']} {v['offset']} {fields}")
    for v in vectors.frames:
        out.append(
            f"F {v['name']} {_hex(v['hex'])} {len(v['records'])} {v.get('error', '-')} "
            f"{v.get('offset', -1)}"
        )
        out += [
            f"R {r['message_type']} {_fields(r['message_type'], r['fields'])}" for r in v["records"]
        ]
    for v in vectors.streams:
        chunks = " ".join(_hex(c) for c in v["chunks"])
        out.append(
            f"S {v['name']} {int(v['close'])} {v['pending']} {len(v['chunks'])} {chunks} "
            f"{len(v['records'])} {len(v['skips'])}"
        )
        out += [
            f"R {r['message_type']} {_fields(r['message_type'], r['fields'])}" for r in v["records"]
        ]
        out += [f"K {k['offset']} {k['length']}" for k in v["skips"]]
    return out


def write(path: Path) -> None:
    path.write_text("\n".join(lines()) + "\n", encoding="ascii")


if __name__ == "__main__":  # pragma: no cover
    write(Path(sys.argv[1]))
