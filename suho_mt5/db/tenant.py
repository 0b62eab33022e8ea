"""Tenant-scoped sessions: every transaction runs with ``app.current_tenant_id`` set.

The tenant roles reach data only through the views of schema ``mt5_tenant``, which filter on
the transaction-local setting ``app.current_tenant_id`` (docs/schema.md, "Tenant isolation").
The setting, and a search path that puts ``mt5_tenant`` first, are set with
``set_config(..., true)`` at the start of every transaction (SQLAlchemy's ``after_begin``),
never with a session-wide ``SET``: a pooled connection, or one behind PgBouncer in transaction
mode, then cannot carry one tenant's context into the next user's transaction
(docs/schema.md, trap 6).

>>> validate_tenant_id("tenant_demo")
'tenant_demo'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, SessionTransaction

from suho_mt5._names import (
    TENANT_ID_PATTERN,
    TENANT_ID_RULE,
    TENANT_SEARCH_PATH,
    TENANT_SETTING,
)
from suho_mt5.errors import TenantError

__all__ = [
    "TENANT_SETTING",
    "TenantSession",
    "set_tenant",
    "tenant_connection",
    "tenant_session",
    "tenant_sessionmaker",
    "validate_tenant_id",
]

# Both transaction-local (docs/schema.md, trap 6): the tenant, and the search path that makes
# unqualified table names (the models', the seed's SQL) resolve to the tenant views.
_SET_TENANT = text(
    f"SELECT set_config('{TENANT_SETTING}', :tenant, true), "
    f"set_config('search_path', '{TENANT_SEARCH_PATH}', true)"
)


def validate_tenant_id(tenant_id: object) -> str:
    """Return ``tenant_id`` if it is a well-formed tenant id, else raise :class:`TenantError`.

    Checked before any database work, so a missing tenant never reaches a query.
    """
    if tenant_id is None:
        raise TenantError("no tenant: a tenant-scoped session needs a tenant_id")
    if not isinstance(tenant_id, str):
        raise TenantError(f"tenant_id must be a string, got {type(tenant_id).__name__}")
    if not tenant_id.strip():
        raise TenantError("empty tenant_id: a tenant-scoped session needs a tenant")
    if not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise TenantError(f"malformed tenant_id {tenant_id!r}: {TENANT_ID_RULE}")
    return tenant_id


def set_tenant(conn: Connection, tenant_id: str) -> None:
    """Set the tenant for the rest of the *current transaction* on ``conn`` (Core users)."""
    conn.execute(_SET_TENANT, {"tenant": validate_tenant_id(tenant_id)})


@contextmanager
def tenant_connection(engine: Engine, tenant_id: str) -> Iterator[Connection]:
    """``engine.begin()`` with the tenant set: commits on success, rolls back on error.

    With a server at hand::

        with tenant_connection(engine, "tenant_demo") as conn:
            conn.execute(text("SELECT count(*) FROM mt5_trade_orders"))
    """
    tenant = validate_tenant_id(tenant_id)
    with engine.begin() as conn:
        conn.execute(_SET_TENANT, {"tenant": tenant})
        yield conn


class TenantSession(Session):
    """An ORM session whose every transaction is scoped to one tenant.

    Construct it through :func:`tenant_session` or :func:`tenant_sessionmaker`. The tenant
    is fixed for the session's lifetime: one request, one tenant, one session.
    """

    tenant_id: str

    def __init__(self, bind: Engine | Connection | None = None, *, tenant_id: str,
                 **kwargs: Any) -> None:
        self.tenant_id = validate_tenant_id(tenant_id)
        super().__init__(bind=bind, **kwargs)


@event.listens_for(TenantSession, "after_begin")
def _scope_transaction(
    session: Session, transaction: SessionTransaction, connection: Connection
) -> None:
    assert isinstance(session, TenantSession)
    connection.execute(_SET_TENANT, {"tenant": session.tenant_id})


def tenant_session(bind: Engine | Connection, tenant_id: str, **kwargs: Any) -> TenantSession:
    """A :class:`TenantSession` for ``tenant_id``; raises :class:`TenantError` before any I/O.

    Keyword arguments go to :class:`sqlalchemy.orm.Session` (``expire_on_commit`` ...).
    """
    return TenantSession(bind, tenant_id=tenant_id, **kwargs)


def tenant_sessionmaker(
    bind: Engine | Connection, **kwargs: Any
) -> Callable[[str], TenantSession]:
    """A factory ``make(tenant_id) -> TenantSession`` sharing ``bind`` and session options."""

    def make(tenant_id: str) -> TenantSession:
        return TenantSession(bind, tenant_id=tenant_id, **kwargs)

    return make
