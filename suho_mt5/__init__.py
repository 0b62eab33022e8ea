"""suho-mt5: connect MetaTrader 5 Expert Advisors to a multi-tenant TimescaleDB backend.

The package is a library first; ``suho-mt5`` is a thin command line over it.

* :mod:`suho_mt5.db` - engines, edition detection, tenant sessions, authentication,
  drift check
* :mod:`suho_mt5.models` - SQLAlchemy models of the schema (import it explicitly)
* :mod:`suho_mt5.errors` - the one exception tree rooted at :class:`SuhoError`
"""

from suho_mt5.db import (
    AccountIdentity,
    Edition,
    authenticate,
    check_drift,
    detect_edition,
    make_engine,
)
from suho_mt5.errors import (
    AuthenticationError,
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

__version__ = "0.1.0"

__all__ = [
    "AccountIdentity",
    "AuthenticationError",
    "ConfigError",
    "DatabaseError",
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
