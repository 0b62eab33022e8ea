"""suho-mt5: connect MetaTrader 5 Expert Advisors to a multi-tenant TimescaleDB backend.

The package is a library first; ``suho-mt5`` is a thin command line over it.

* :mod:`suho_mt5.protocol` - the Suho Binary Protocol codec (no database stack)
* :mod:`suho_mt5.db` - engines, edition detection, tenant sessions, authentication
* :mod:`suho_mt5.models` - SQLAlchemy models of the schema (import it explicitly)
* :mod:`suho_mt5.migrations` - the Alembic migrations and the drift check
* :mod:`suho_mt5.compliance` - audit-chain verification and digests, reports, GDPR, ML export
* :mod:`suho_mt5.cache` - the latest-state cache on the Redis protocol (DragonflyDB's)
* :mod:`suho_mt5.commands` - plain functions under the command line (upgrade, check, ...)
* :mod:`suho_mt5.errors` - the one exception tree rooted at :class:`SuhoError`

Importing this package loads no database library: the database names below are resolved on
first use, so an EA-side tool that needs only the codec does not pay for SQLAlchemy,
psycopg and Alembic.

>>> import suho_mt5
>>> suho_mt5.Edition.POSTGRESQL.value
'postgresql'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from suho_mt5.errors import (
    AuthenticationError,
    ComplianceError,
    ConfigError,
    DatabaseError,
    EditionError,
    EngineLimitError,
    IngestError,
    MigrationError,
    ProtocolError,
    ReadOnlyModelError,
    SuhoError,
    TenantError,
)

if TYPE_CHECKING:
    from suho_mt5.db import AccountIdentity, Edition, authenticate, detect_edition, make_engine
    from suho_mt5.migrations.drift import Drift, check_drift

__version__ = "0.1.0"

__all__ = [
    "AccountIdentity",
    "AuthenticationError",
    "ComplianceError",
    "ConfigError",
    "DatabaseError",
    "Drift",
    "Edition",
    "EditionError",
    "EngineLimitError",
    "IngestError",
    "MigrationError",
    "ProtocolError",
    "ReadOnlyModelError",
    "SuhoError",
    "TenantError",
    "__version__",
    "authenticate",
    "check_drift",
    "detect_edition",
    "make_engine",
]

#: Public name -> the module that defines it, imported on first access.
_LAZY = {
    "AccountIdentity": "suho_mt5.db",
    "Edition": "suho_mt5.db",
    "authenticate": "suho_mt5.db",
    "detect_edition": "suho_mt5.db",
    "make_engine": "suho_mt5.db",
    "Drift": "suho_mt5.migrations.drift",
    "check_drift": "suho_mt5.migrations.drift",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'suho_mt5' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
