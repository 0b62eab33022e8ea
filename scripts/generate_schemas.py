"""Write schemas/0*.sql, the DBA's psql scripts, from the Alembic migrations.

    .venv/bin/python scripts/generate_schemas.py [--edition timescale|apache|postgresql]
                                                 [--output-dir schemas] [--check]

``make sql`` runs it with the defaults (the timescale edition into ``schemas/``); ``--check``
only reports whether the files are up to date (exit status 1 when they are not).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from suho_mt5.db import parse_edition
from suho_mt5.migrations.operations import render_schema_files

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edition", default="timescale")
    parser.add_argument("--output-dir", type=Path, default=REPO_ROOT / "schemas")
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)

    files = render_schema_files(None, parse_edition(args.edition))
    stale = [
        name
        for name, text in files.items()
        if not (args.output_dir / name).is_file() or (args.output_dir / name).read_text() != text
    ]
    if args.check:
        for name in stale:
            print(f"out of date: {args.output_dir / name}", file=sys.stderr)
        return 1 if stale else 0
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.output_dir / name).write_text(text)
        print(f"wrote {args.output_dir / name} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
