"""Guards for single-backend servers (the PGlite TimescaleDB engine).

PGlite runs one PostgreSQL backend for every client (docs/schema.md, "Engine limits"):

* a second connection does not fail, it *waits* in the socket server's queue until the
  first one closes, so two connections in one process deadlock for a minute;
* session state (``SET``, ``SET ROLE``, prepared statements, an open transaction) is shared
  and survives a client's disconnect;
* ``COPY`` and any single protocol message over ~60 KB crash it, taking every later test
  down with an obscure error.

These classes turn each of those into an immediate :class:`EngineLimitError` raised before
anything is sent, and give every new connection a clean session.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self

import psycopg
from psycopg import sql

from suho_mt5.errors import EngineLimitError

__all__ = ["MAX_MESSAGE_BYTES", "SingleBackendConnection", "SingleBackendCursor"]

#: Largest statement + parameters we let through. The engine was seen to crash a little
#: above 60 KB; the margin covers protocol framing and text-encoding of parameters.
MAX_MESSAGE_BYTES = 48 * 1024

_Params = Sequence[Any] | Mapping[str, Any]


def _query_bytes(query: Any, conn: psycopg.Connection[Any]) -> int:
    if isinstance(query, bytes):
        return len(query)
    if isinstance(query, str):
        return len(query.encode())
    if isinstance(query, sql.Composable):
        return len(query.as_string(conn).encode())
    return len(str(query).encode())


def _params_bytes(params: _Params | None) -> int:
    if not params:
        return 0
    values: Iterable[Any] = params.values() if isinstance(params, Mapping) else params
    # 4 bytes of length header per parameter, then its text form: an estimate that errs
    # high for binary-encoded numbers, which is the safe side here.
    return sum(4 + len(v if isinstance(v, bytes) else str(v).encode()) for v in values)


class SingleBackendCursor(psycopg.Cursor[Any]):
    """A cursor that refuses, before sending, what the single-backend engine cannot survive."""

    def execute(
        self,
        query: Any,
        params: _Params | None = None,
        *,
        prepare: bool | None = None,
        binary: bool | None = None,
    ) -> Self:
        size = _query_bytes(query, self.connection) + _params_bytes(params)
        if size > MAX_MESSAGE_BYTES:
            raise EngineLimitError(
                f"statement of ~{size:,} bytes exceeds the single-backend engine's limit of "
                f"{MAX_MESSAGE_BYTES:,} bytes: send it in smaller batches"
            )
        return super().execute(query, params, prepare=prepare, binary=binary)

    def executemany(
        self,
        query: Any,
        params_seq: Iterable[_Params],
        *,
        returning: bool = False,
    ) -> None:
        # psycopg pipelines executemany into one large write, which crashes the engine;
        # one statement at a time is slower but survives.
        if returning:
            raise EngineLimitError(
                "executemany(returning=True) is not supported on the single-backend engine"
            )
        for params in params_seq:
            self.execute(query, params)

    def copy(self, *args: Any, **kwargs: Any) -> Any:
        raise EngineLimitError(
            "COPY crashes the single-backend TimescaleDB engine: use batched INSERT instead"
        )


class SingleBackendConnection(psycopg.Connection[Any]):
    """A psycopg connection that allows one open connection per server in this process.

    Opening a second one raises :class:`EngineLimitError` naming where the first was opened,
    instead of hanging in the engine's connection queue.
    """

    _open: ClassVar[dict[tuple[str, str], str]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    _guard_key: tuple[str, str] | None = None

    @classmethod
    def connect(
        cls, conninfo: str = "", **kwargs: Any
    ) -> Self:
        params = psycopg.conninfo.conninfo_to_dict(conninfo, **kwargs)
        key = (str(params.get("host", "")), str(params.get("port", "")))
        opened_at = "".join(traceback.format_stack(limit=8)[:-1])
        with cls._lock:
            holder = cls._open.get(key)
            if holder is not None:
                raise EngineLimitError(
                    f"a connection to the single-backend engine at {key[0]}:{key[1]} is "
                    "already open in this process (a second one would wait in the engine's "
                    "queue and deadlock). Close or dispose it first. It was opened at:\n"
                    + holder
                )
            cls._open[key] = opened_at
        try:
            kwargs.setdefault("cursor_factory", SingleBackendCursor)
            # Server-side prepared statements would collide with the names an earlier
            # client left in the shared session.
            kwargs.setdefault("prepare_threshold", None)
            conn = super().connect(conninfo, **kwargs)
            conn._guard_key = key
            conn._reset_shared_session()
        except BaseException:
            with cls._lock:
                cls._open.pop(key, None)
            raise
        return conn

    def _reset_shared_session(self) -> None:
        """Undo whatever an earlier client left in the one shared backend session."""
        autocommit = self.autocommit
        self.autocommit = True
        try:
            with self.cursor() as cur:
                # ROLLBACK outside a transaction only warns; DISCARD ALL resets settings,
                # role, prepared statements, temporary tables and cursors.
                psycopg.Cursor.execute(cur, "ROLLBACK")
                psycopg.Cursor.execute(cur, "DISCARD ALL")
                # DISCARD ALL falls back to PGlite's command-line search_path, pg_catalog:
                # unqualified names would then miss public (and CREATE would land in
                # pg_catalog). Restore PostgreSQL's own default.
                psycopg.Cursor.execute(cur, 'SET search_path TO "$user", public')
        finally:
            self.autocommit = autocommit

    def close(self) -> None:
        try:
            super().close()
        finally:
            key = self._guard_key
            if key is not None:
                with self._lock:
                    self._open.pop(key, None)
                self._guard_key = None
