"""What ``suho-mt5 monitor`` shows: the state of a suho-mt5 database in one report.

Sections, each read in its own statement so one that cannot be read (a missing privilege,
a table another layer has not created yet) says why instead of failing the whole report:

* ``hypertables``: ``v_hypertable_summary`` (on postgresql the plain tables);
* ``aggregates``: ``v_continuous_aggregates`` (continuous aggregates or materialized views);
* ``chunks``: ``v_chunk_summary``;
* ``connectivity``: the spec's EA connectivity query: the latest heartbeat status of every
  account, counted (``online``, ``offline``, ``degraded``, ``total``);
* ``consumer_lag``: every JetStream consumer of the NATS server at ``nats_url`` with its
  pending and unacknowledged messages (needs ``nats-py``, the ``nats`` extra); without a
  NATS URL, not available;
* ``dead_letters``: counts by reason of the Data Bridge's ``mt5_ingest_dead_letters``
  (the Data Bridge creates it), else not available;
* ``cache``: the latest-state cache at ``cache_url`` (an admin user): keys per tenant and
  kind, the server's hit ratio, when it was last found empty and rebuilt; and
  ``cache_writers``: each writer's (bridge, gateway) last round trip, write lag, values
  waiting and errors. Without a cache URL, not available.

The monitoring views span every tenant: run it as a superuser or a member of
``mt5_maintenance`` (``role="mt5_maintenance"`` sets that role for the session).

>>> Section("chunks", available=False, note="not migrated").available
False
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from suho_mt5.commands._connect import cause, connection
from suho_mt5.errors import DatabaseError

__all__ = ["DEAD_LETTER_TABLE", "NATS_TIMEOUT", "MonitorReport", "Section", "cache_sections",
           "consumer_lag", "monitor"]

#: The Data Bridge's dead-letter table, shown when it exists.
DEAD_LETTER_TABLE = "public.mt5_ingest_dead_letters"


@dataclass(slots=True)
class Section:
    """One part of the report: rows of named columns, or why there are none."""

    name: str
    available: bool = True
    #: Why the section is not available, or a remark on its rows.
    note: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class MonitorReport:
    """Every section, in the order ``suho-mt5 monitor`` prints them."""

    edition: str
    sections: list[Section]

    def section(self, name: str) -> Section:
        return next(s for s in self.sections if s.name == name)


_QUERIES: tuple[tuple[str, str], ...] = (
    ("hypertables",
     "SELECT hypertable_name, is_hypertable, num_chunks, approximate_rows, total_size, "
     "chunk_time_interval, retention, compression_enabled FROM v_hypertable_summary "
     "ORDER BY hypertable_name"),
    ("aggregates",
     "SELECT aggregate_name, kind, bucket_width, refresh_schedule, last_refresh_at, "
     "next_refresh_at, last_run_status, pg_size_pretty(total_bytes) AS total_size "
     "FROM v_continuous_aggregates ORDER BY aggregate_name"),
    ("chunks",
     "SELECT hypertable_name, chunk_name, range_start, range_end, is_compressed, "
     "pg_size_pretty(total_bytes) AS total_size, past_retention FROM v_chunk_summary "
     "ORDER BY hypertable_name, range_start NULLS FIRST"),
    # The spec's "EA connectivity" query, with degraded EAs and the newest heartbeat.
    ("connectivity",
     "SELECT count(*) FILTER (WHERE status = 'online') AS online, "
     "count(*) FILTER (WHERE status = 'offline') AS offline, "
     "count(*) FILTER (WHERE status = 'degraded') AS degraded, "
     "count(*) AS total, max(time) AS last_heartbeat_at "
     "FROM (SELECT DISTINCT ON (account_id) account_id, status, time "
     "FROM public.mt5_ea_heartbeat ORDER BY account_id, time DESC) latest"),
)

_DEAD_LETTERS = (f"SELECT reason, count(*) AS count, max(time) AS last_at "
                 f"FROM {DEAD_LETTER_TABLE} GROUP BY reason ORDER BY count DESC, reason")


def _read(conn: Connection, name: str, sql: str) -> Section:
    try:
        result = conn.execute(text(sql))
        columns = list(result.keys())
        rows = [dict(r._mapping) for r in result]
    except SQLAlchemyError as exc:
        return Section(name, available=False, note=f"not available: {cause(exc)}")
    return Section(name, columns=columns, rows=rows)


def _dead_letters(conn: Connection) -> Section:
    if conn.execute(text(f"SELECT to_regclass('{DEAD_LETTER_TABLE}')")).scalar() is None:
        return Section("dead_letters", available=False,
                       note=f"not available: no table {DEAD_LETTER_TABLE} (revision 0010 "
                            "creates it)")
    return _read(conn, "dead_letters", _DEAD_LETTERS)


#: How long reading JetStream's consumers may take, connecting included.
NATS_TIMEOUT = 5.0


async def _jetstream_consumers(nats_url: str) -> list[dict[str, Any]]:
    from suho_mt5.commands._connect import connect_nats

    client = await connect_nats(nats_url, "monitor")
    try:
        manager = client.jsm()
        rows: list[dict[str, Any]] = []
        for stream in await manager.streams_info():
            name = str(stream.config.name)
            for consumer in await manager.consumers_info(name):
                rows.append({
                    "stream": name,
                    "consumer": consumer.name,
                    "pending": consumer.num_pending,
                    "ack_pending": consumer.num_ack_pending,
                    "redelivered": consumer.num_redelivered,
                    "delivered_seq": consumer.delivered.stream_seq if consumer.delivered
                    else None,
                    "last_seq": stream.state.last_seq,
                })
        return sorted(rows, key=lambda r: (r["stream"], r["consumer"]))
    finally:
        await client.close()


def consumer_lag(nats_url: str | None) -> Section:
    """The ``consumer_lag`` section: JetStream's consumers at ``nats_url``, or why not."""
    if not nats_url:
        return Section("consumer_lag", available=False,
                       note="not available: no NATS URL (--nats-url or SUHO_NATS_URL); "
                            "consumer lag lives in NATS JetStream, not in the database")
    try:
        import nats  # noqa: F401
    except ImportError:
        return Section("consumer_lag", available=False,
                       note="not available: nats-py is not installed "
                            "(pip install 'suho-mt5[nats]')")
    try:
        rows = asyncio.run(asyncio.wait_for(_jetstream_consumers(nats_url), NATS_TIMEOUT))
    except Exception as exc:  # any failure of the NATS client: say it, keep the report
        reason = str(exc) or type(exc).__name__
        return Section("consumer_lag", available=False,
                       note=f"not available: cannot read JetStream at {nats_url}: {reason}")
    columns = ["stream", "consumer", "pending", "ack_pending", "redelivered",
               "delivered_seq", "last_seq"]
    return Section("consumer_lag", columns=columns, rows=rows,
                   note="" if rows else "no JetStream consumers")


_CACHE_KINDS = ("quote", "snapshot", "status", "reference", "signals")


def cache_sections(cache_url: str | None) -> list[Section]:
    """The ``cache`` and ``cache_writers`` sections: the cache at ``cache_url``, or why
    not."""
    if not cache_url:
        note = ("not available: no cache URL (--cache-url or SUHO_CACHE_URL, an admin "
                "user); the latest-state cache is optional")
        return [Section("cache", available=False, note=note)]
    try:
        import redis  # noqa: F401
    except ImportError:
        return [Section("cache", available=False,
                        note="not available: redis-py is not installed "
                             "(pip install 'suho-mt5[cache]')")]
    from suho_mt5.cache.stats import read_stats
    from suho_mt5.errors import SuhoError

    try:
        stats = asyncio.run(read_stats(cache_url))
    except SuhoError as exc:
        return [Section("cache", available=False, note=f"not available: {exc}")]
    rows = [{"tenant": tenant, **{k: counts.get(k, 0) for k in _CACHE_KINDS},
             "total": sum(counts.values())} for tenant, counts in sorted(stats.tenants.items())]
    ratio = "-" if stats.hit_ratio is None else f"{stats.hit_ratio:.1%}"
    note = (f"{stats.keys} key(s){' (scan stopped early)' if stats.truncated else ''}; "
            f"server hit ratio {ratio} ({stats.hits} hits, {stats.misses} misses, writers' "
            f"comparisons included); epoch {stats.epoch or 'none: empty or restarted'}; "
            f"last rebuild {stats.rebuilt.get('at', 'never')}")
    writers = [{"writer": w.name, "updated_s_ago": round(w.age_s, 1), "lag_ms": w.lag_ms,
                "pending": w.pending, "errors": w.errors, "written": w.written,
                "older": w.older, "dropped": w.dropped, "last_error": w.last_error or None}
               for w in stats.writers]
    return [
        Section("cache", columns=["tenant", *_CACHE_KINDS, "total"], rows=rows, note=note),
        Section("cache_writers", columns=list(writers[0]) if writers else [
            "writer", "updated_s_ago", "lag_ms", "pending", "errors", "written", "older",
            "dropped", "last_error"], rows=writers,
            note="" if writers else "no writer reported in the last 2 minutes"),
    ]


def monitor(url: str, *, role: str | None = None, nats_url: str | None = None,
            cache_url: str | None = None) -> MonitorReport:
    """Read every section of the report from the database at ``url`` (and consumer lag
    from the NATS server at ``nats_url``).

    Raises :class:`~suho_mt5.errors.DatabaseError` when the server cannot be reached or the
    database is not migrated; a section that cannot be read is marked not available."""
    with connection(url, autocommit=True) as conn:
        if role is not None:
            conn.exec_driver_sql("SET ROLE " + '"' + role.replace('"', '""') + '"')
        if conn.execute(text("SELECT to_regclass('public.v_hypertable_summary')")).scalar() \
                is None:
            raise DatabaseError("the database is not migrated (no monitoring views): "
                                "run suho-mt5 db upgrade")
        edition = str(conn.execute(text("SELECT mt5_schema_edition()")).scalar_one())
        sections = [_read(conn, name, sql) for name, sql in _QUERIES]
        sections.append(_dead_letters(conn))
    sections.insert(len(sections) - 1, consumer_lag(nats_url))
    sections.extend(cache_sections(cache_url))
    return MonitorReport(edition, sections)
