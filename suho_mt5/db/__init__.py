"""Database access: engines, edition detection and (later) tenant-scoped sessions."""

from suho_mt5.db._single_backend import MAX_MESSAGE_BYTES
from suho_mt5.db.edition import Edition, ServerInfo, detect_edition, inspect_server, parse_edition
from suho_mt5.db.engine import DATABASE_URL_ENV, database_url_from_env, make_engine, normalize_url

__all__ = [
    "DATABASE_URL_ENV",
    "MAX_MESSAGE_BYTES",
    "Edition",
    "ServerInfo",
    "database_url_from_env",
    "detect_edition",
    "inspect_server",
    "make_engine",
    "normalize_url",
    "parse_edition",
]
