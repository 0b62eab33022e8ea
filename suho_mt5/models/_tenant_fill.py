"""New rows of a :class:`~suho_mt5.db.TenantSession` belong to the session's tenant.

Before each flush, a new object whose ``tenant_id`` is unset gets the session's tenant, and
one set to another tenant is refused with :class:`~suho_mt5.errors.TenantError` before
anything is sent (row-level security would refuse it anyway, with a less helpful message).
Filling it in Python, rather than leaving it to the column's server default, also gives
the ORM the row's full identity without a ``RETURNING`` round trip.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, UOWTransaction

from suho_mt5.db.tenant import TenantSession
from suho_mt5.errors import TenantError

__all__: list[str] = []


@event.listens_for(TenantSession, "before_flush")
def _fill_tenant(session: Session, flush_context: UOWTransaction, instances: Any) -> None:
    assert isinstance(session, TenantSession)
    tenant = session.tenant_id
    for obj in session.new:
        if "tenant_id" not in inspect(obj).mapper.columns:
            continue
        current = obj.tenant_id
        if current is None:
            obj.tenant_id = tenant
        elif current != tenant:
            raise TenantError(
                f"a new {type(obj).__name__} of tenant {current!r} cannot be written in a "
                f"session of tenant {tenant!r}"
            )
    for obj in session.dirty:
        state = inspect(obj)
        if (
            "tenant_id" in state.mapper.columns
            and state.attrs.tenant_id.history.added
            and obj.tenant_id != tenant
        ):
            raise TenantError(
                f"{type(obj).__name__}.tenant_id cannot move to another tenant "
                f"({obj.tenant_id!r}) in a session of tenant {tenant!r}"
            )
