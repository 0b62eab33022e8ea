"""docs/schema.md's privileges tables are the catalog's, on the timescale edition: derived
from a migrated database here and compared with the generated block of the page. On a
mismatch the assertion shows the block to paste."""

from __future__ import annotations

import os
import re

import pytest
import sqlalchemy as sa

from tests.db.schema._support import ALL_ROLES, REPO_ROOT, Schema, session

pytestmark = pytest.mark.engines("timescale")

DOC = REPO_ROOT / "docs" / "schema.md"
BEGIN = "<!-- BEGIN GENERATED PRIVILEGES (tests/db/schema/test_roles_doc.py) -->"
END = "<!-- END GENERATED PRIVILEGES -->"
# has_table_privilege() privilege -> letter, as psql's \\dp prints them
LETTERS = (("SELECT", "r"), ("INSERT", "a"), ("UPDATE", "w"), ("DELETE", "d"),
           ("TRUNCATE", "D"), ("REFERENCES", "x"), ("TRIGGER", "t"))


def privileges_markdown(conn: sa.Connection) -> str:
    roles = list(ALL_ROLES)

    def letters(role: str) -> str:
        cases = (f"CASE WHEN has_table_privilege('{role}', c.oid, '{privilege}') "
                 f"THEN '{letter}' END" for privilege, letter in LETTERS)
        return f"concat({', '.join(cases)})"

    checks = ", ".join(letters(r) for r in roles)
    rows = conn.execute(sa.text(
        f"SELECT format('%I.%I', n.nspname, c.relname), c.relkind, c.relowner::regrole::text,"
        f" {checks} FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE ((n.nspname = 'public' AND (c.relname LIKE 'mt5\\_%' OR c.relname LIKE 'v\\_%'))"
        "        OR n.nspname = 'mt5_tenant') AND c.relkind IN ('r', 'p', 'v', 'm')"
        " ORDER BY n.nspname = 'public', 1")).all()
    kinds = {"r": "table", "p": "table", "v": "view", "m": "matview"}
    lines = [
        "| relation | kind | owner | " + " | ".join(f"`{r}`" for r in roles) + " |",
        "|---|---|---|" + "---|" * len(roles),
    ]
    for name, kind, owner, *privs in rows:
        cells = [p or "-" for p in privs]
        lines.append(f"| `{name}` | {kinds[kind]} | `{owner}` | " + " | ".join(cells) + " |")
    functions = conn.execute(sa.text(
        "SELECT p.oid::regprocedure::text, p.proowner::regrole::text, p.prosecdef,"
        " coalesce((SELECT string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'"
        "   ELSE a.grantee::regrole::text END, ', ')"
        "   FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a"
        "   WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner), '')"
        " FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace"
        " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')"
        " ORDER BY 1")).all()
    lines += ["", "| function | owner | security definer | EXECUTE (besides the owner) |",
              "|---|---|---|---|"]
    for signature, owner, definer, grantees in functions:
        lines.append(f"| `{signature}` | `{owner}` | {'yes' if definer else 'no'} | "
                     f"{grantees or '-'} |")
    return "\n".join(lines)


def test_the_privileges_tables_of_the_docs_are_the_catalogs(schema: Schema) -> None:
    with session(schema.engine) as conn:
        expected = privileges_markdown(conn)
    text = DOC.read_text()
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n?" + re.escape(END), text, re.S)
    assert match is not None, f"{DOC} has no {BEGIN} block"
    if os.environ.get("SUHO_UPDATE_DOCS") == "1":  # regenerate instead of comparing
        DOC.write_text(text[: match.start(1)] + expected + text[match.end(1):])
        return
    assert match.group(1) == expected, (
        "docs/schema.md's privileges differ from the catalog; regenerate them with "
        "SUHO_UPDATE_DOCS=1 pytest -m timescale tests/db/schema/test_roles_doc.py"
    )
