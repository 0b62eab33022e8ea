"""API keys: generate, hash (bcrypt through pgcrypto, or the PBKDF2 fallback), verify.

Native PostgreSQL has pgcrypto: bcrypt. The TimescaleDB engine has not: PBKDF2-HMAC-SHA256
written in SQL. ``verify_api_key`` accepts both formats everywhere it can compute them, and
never raises on a malformed stored hash. Shared by both lanes.
"""

from __future__ import annotations

import hashlib
import os
import re

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.db.schema._support import Schema, session

# What a PostgreSQL text value can hold: no NUL, no lone surrogates.
TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")


def pbkdf2_hash(key: str, salt: bytes, iterations: int) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", key.encode(), salt, iterations)
    return f"$pbkdf2-sha256${iterations}${salt.hex()}${digest.hex()}"


def scalar(schema: Schema, sql: str, **params: object) -> object:
    with session(schema.engine, "mt5_app") as conn:
        return conn.execute(sa.text(sql), params).scalar()


@pytest.mark.parametrize(
    "password,salt,iterations",
    [(b"password", b"salt", 1), (b"password", b"salt", 2), (b"password", b"salt", 4096),
     (b"k" * 64, bytes(16), 10), (b"long key " * 20, os.urandom(32), 25), (b"\xff\x00", b"s", 3)],
)
def test_pbkdf2_matches_python(
    schema: Schema, password: bytes, salt: bytes, iterations: int
) -> None:
    got = scalar(schema, "SELECT encode(mt5_pbkdf2_sha256(:p, :s, :i), 'hex')",
                 p=password, s=salt, i=iterations)
    assert got == hashlib.pbkdf2_hmac("sha256", password, salt, iterations).hex()


def test_generated_keys_are_64_hex_characters_and_differ(schema: Schema) -> None:
    with session(schema.engine, "mt5_app") as conn:
        keys = conn.execute(sa.text("SELECT generate_api_key() FROM generate_series(1, 20)")
                            ).scalars().all()
    assert all(re.fullmatch(r"[0-9a-f]{64}", k) for k in keys)
    assert len(set(keys)) == 20


def test_hash_format_follows_the_server(schema: Schema) -> None:
    with session(schema.engine, "mt5_app") as conn:
        pgcrypto = conn.execute(sa.text(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'")).scalar_one()
        first, second = conn.execute(sa.text(
            "SELECT hash_api_key('same key') FROM generate_series(1, 2)")).scalars().all()
        ok = conn.execute(sa.text("SELECT verify_api_key('same key', :h)"), {"h": first}).scalar()
    if pgcrypto:
        assert re.fullmatch(r"\$2a\$12\$[./A-Za-z0-9]{53}", first)
    else:
        assert re.fullmatch(r"\$pbkdf2-sha256\$25000\$[0-9a-f]{32}\$[0-9a-f]{64}", first)
        assert schema.edition.has_hypertables  # the engine lane: no pgcrypto there
    assert first != second  # salted
    assert ok is True


def test_pbkdf2_hashes_verify_on_every_server(schema: Schema) -> None:
    stored = pbkdf2_hash("user_api_key_123", b"0123456789abcdef", 1000)
    assert scalar(schema, "SELECT verify_api_key('user_api_key_123', :h)", h=stored) is True
    assert scalar(schema, "SELECT verify_api_key('user_api_key_124', :h)", h=stored) is False


@pytest.mark.parametrize("stored", [
    "", "plain text key", "$2a$12$short", "$2a$12$" + "!" * 53, "$2x$99$" + "a" * 53,
    "$pbkdf2-sha256$0$00112233445566778899aabbccddeeff$" + "0" * 64,
    "$pbkdf2-sha256$9999999$00112233445566778899aabbccddeeff$" + "0" * 64,
    "$pbkdf2-sha256$1000$abc$" + "0" * 64, "$pbkdf2-sha256$1000$00112233445566778899$zz",
    "$pbkdf2-sha256$$$", "$$$$$", "$pbkdf2-sha256$1000$0011223344556677$" + "0" * 64,
])
def test_malformed_stored_hashes_are_false_not_errors(schema: Schema, stored: str) -> None:
    assert scalar(schema, "SELECT verify_api_key('k', :h)", h=stored) is False


@settings(max_examples=40, deadline=None)
@given(stored=st.text(alphabet=TEXT, max_size=120), key=st.text(alphabet=TEXT, max_size=80))
def test_verify_never_raises(schema: Schema, stored: str, key: str) -> None:
    assert scalar(schema, "SELECT verify_api_key(:k, :h)", k=key, h=stored) in (True, False)


def test_edge_inputs(schema: Schema) -> None:
    assert scalar(schema, "SELECT hash_api_key(NULL)") is None
    assert scalar(schema, "SELECT verify_api_key(NULL, 'x')") is False
    assert scalar(schema, "SELECT verify_api_key('x', NULL)") is False
    stored = pbkdf2_hash("k" * 72, b"0123456789abcdef", 10)
    assert scalar(schema, "SELECT verify_api_key(:k, :h)", k="k" * 72, h=stored) is True
    assert scalar(schema, "SELECT verify_api_key(:k, :h)", k="k" * 73, h=stored) is False
    for bad in ("", "k" * 73):
        with session(schema.engine, "mt5_app") as conn, pytest.raises(
            sa.exc.DBAPIError, match="API key must"
        ):
            conn.execute(sa.text("SELECT hash_api_key(:k)"), {"k": bad})


def test_stored_hashes_must_be_hashes(schema: Schema) -> None:
    with session(schema.engine) as conn, pytest.raises(sa.exc.IntegrityError,
                                                       match="api_key_hash_check"):
        conn.execute(sa.text(
            "INSERT INTO mt5_user_accounts (tenant_id, user_id, broker_name, broker_server,"
            " mt5_login, mt5_account_number, account_type, api_key_hash) VALUES ('t', 'u',"
            " 'b', 's', 1, '1', 'demo', 'your_secure_api_key')"))
