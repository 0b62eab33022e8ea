"""Data Bridge benchmarks on native TimescaleDB: the writer and the whole bridge against a
raw COPY of the same rows into the same tables, one-packet messages, commit latency.

Servers: a native TimescaleDB cluster (``$SUHO_BENCH_TIMESCALE_URL``, a superuser URL, or one
started here from the installed PostgreSQL 15 + TimescaleDB) and a nats-server started here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg

from ._registry import Row, Section, Settings, section
from ._stats import quantile

REPO = Path(__file__).resolve().parents[1]
_QUOTES = "mt5_broker_quotes"
_PROFILE: Any = None  # a cProfile.Profile to look inside _bridge_time


@contextlib.contextmanager
def _timescale(options: str = "") -> Iterator[Any]:
    """A superuser admin object with ``.url(db)``, ``.create_database()``; ``options`` are
    more ``-c name=value`` server settings (a server named by the environment keeps its own)."""
    from tests.support.fixtures import PG_CTL_WRAPPER, PgServer
    from tests.support.servers import free_port

    external = os.environ.get("SUHO_BENCH_TIMESCALE_URL")
    if external:
        from sqlalchemy.engine import make_url

        u = make_url(external)
        yield PgServer(u.host or "127.0.0.1", u.port or 5432, u.username or "postgres",
                       u.password or "")
        return
    from pytest_postgresql.executors.proc import PostgreSQLExecutor

    work = Path(tempfile.mkdtemp(prefix="suho-bench-ts-"))
    port = free_port()
    executor = PostgreSQLExecutor(
        executable=str(PG_CTL_WRAPPER), host="127.0.0.1", port=port,
        datadir=str(work / "data"), unixsocketdir=str(work), logfile=str(work / "pg.log"),
        startparams="-w", dbname="postgres", password="postgres",
        postgres_options="-c fsync=off -c full_page_writes=off -c synchronous_commit=off "
        "-c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off "
        "-c max_connections=100 " + options,
    )
    executor.start()
    try:
        yield PgServer("127.0.0.1", port, "postgres", "postgres")
    finally:
        executor.stop()
        shutil.rmtree(work, ignore_errors=True)


def _database(server: Any, bypassrls: bool = True) -> tuple[str, str]:
    """A migrated database: ``(superuser URL, mt5_ingest login URL)``; the login bypasses
    row-level security as docs/ingest.md recommends, unless ``bypassrls`` is False."""
    from suho_mt5.db import Edition, make_engine
    from tests.db.schema._support import alembic
    from tests.integration.ingest._support import make_ingest_login

    name = server.create_database()
    engine = make_engine(server.url(name))
    try:
        alembic(engine, "upgrade", "head", edition=Edition.TIMESCALE)
    finally:
        engine.dispose()
    admin = server.url(name)
    return admin, make_ingest_login(admin, bypassrls)


def _accounts(admin: str, n: int) -> dict[uuid.UUID, str]:
    from tests.integration.ingest._support import IngestDb

    db = IngestDb(admin, admin)
    db.add_accounts(n // 3)
    return db.accounts


def _rows_of(frames: list[tuple[str, bytes, str]]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows the bridge writes for ``frames`` (same mapping, same values)."""
    from suho_mt5._subjects import parse_account_subject
    from suho_mt5.ingest.rows import packet_row
    from suho_mt5.protocol import decode_frame

    out: dict[str, list[tuple[Any, ...]]] = {}
    for subject, payload, _ in frames:
        tenant, acc, _kind = parse_account_subject(subject)
        for p in decode_frame(payload):
            table, row = packet_row(p, tenant, acc)
            out.setdefault(table, []).append(row)
    return out


def _raw_copy(admin: str, rows: dict[str, list[tuple[Any, ...]]]) -> float:
    """Seconds for COPY of ``rows`` straight into their tables, one transaction."""
    from suho_mt5.ingest.rows import TABLE_COLUMNS
    from tests.integration.ingest._support import libpq

    with psycopg.connect(libpq(admin)) as conn:
        start = time.perf_counter()
        with conn.cursor() as cur:
            for table, table_rows in rows.items():
                cols = ", ".join(TABLE_COLUMNS[table])
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    for r in table_rows:
                        copy.write_row(r)
        conn.commit()
        return time.perf_counter() - start


def _feed_frames(accounts: dict[uuid.UUID, str], total: int, frame: int, first_seq: int,
                 kinds: tuple[str, ...]) -> list[tuple[str, bytes, str]]:
    from tests.integration.ingest._support import Feed, frames_for

    feed = Feed(accounts)
    for a in accounts:
        feed.seq[a] = first_seq
    return frames_for(feed, total, frame, kinds)[0]


async def _writer_time(ingest_url: str, rows: dict[str, list[tuple[Any, ...]]]) -> float:
    from suho_mt5.ingest.writer import Batch, MessageContext, Writer

    batch = Batch()
    ctx = MessageContext("bench", 0, "bench", b"", 1)
    for table, table_rows in rows.items():
        for r in table_rows:
            batch.add(table, r, (ctx, 0))
    writer = Writer(ingest_url)
    await writer.connection()
    try:
        start = time.perf_counter()
        result = await writer.write(batch)
        took = time.perf_counter() - start
    finally:
        await writer.close()
    assert sum(result.written.values()) == batch.row_count, result
    return took


async def _bridge_time(ingest_url: str, admin: str, nats_url: str,
                       frames: list[tuple[str, bytes, str]], batch_size: int,
                       latencies: list[float], workers: int = 1,
                       no_database: bool = False) -> float:
    """Seconds from bridge start to every frame committed and acked (published before).
    ``no_database``: writes replaced by a no-op, to see the bridge's side alone."""
    from suho_mt5.ingest import Bridge, BridgeSettings, RiskLimits
    from suho_mt5.ingest.writer import Transaction, Writer, WriteResult
    from tests.integration.ingest._support import jetstream, publish_all

    async with jetstream(nats_url) as (_nc, js):
        await js.purge_stream("MT5_ACCOUNTS")
        await publish_all(js, frames)
        original = Writer.transaction

        @contextlib.asynccontextmanager
        async def timed(self: Writer, batch: Any, **kwargs: Any) -> AsyncIterator[Any]:
            t0 = time.perf_counter()
            try:
                if no_database:
                    yield Transaction(None,  # type: ignore[arg-type]
                                      WriteResult(written={t: len(r)
                                                           for t, r in batch.rows.items()}))
                else:
                    async with original(self, batch, **kwargs) as tx:
                        yield tx
            finally:
                latencies.append(time.perf_counter() - t0)

        Writer.transaction = timed  # type: ignore[method-assign,assignment]
        bridge = Bridge(BridgeSettings(url=ingest_url, nats_url=nats_url, batch_size=batch_size,
                                       workers=workers,
                                       fetch_timeout=0.2, offline_check_every=3600,
                                       consumer_poll_every=3600, risk=RiskLimits()))
        start = time.perf_counter()
        if _PROFILE is not None:
            _PROFILE.enable()
        task = asyncio.create_task(bridge.run())
        try:
            await _until_drained(js)
            took = time.perf_counter() - start
            if _PROFILE is not None:
                _PROFILE.disable()
        finally:
            Writer.transaction = original  # type: ignore[method-assign]
            bridge.stop()
            await task
        return took


async def _until_drained(js: Any) -> None:
    """Until the bridge's consumer has nothing pending and nothing unacknowledged."""
    from tests.integration.ingest._support import consumer_state

    while True:
        info = await consumer_state(js)
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        await asyncio.sleep(0.01)


async def _client_alone(nats_url: str, frames: list[tuple[str, bytes, str]]) -> float:
    """Seconds for the bare nats-py pull consumer to fetch and ack ``frames``."""
    from suho_mt5.ingest import DEFAULT_CONTRACT
    from tests.integration.ingest._support import jetstream, publish_all

    spec = DEFAULT_CONTRACT.bridge
    async with jetstream(nats_url) as (_nc, js):
        await js.purge_stream("MT5_ACCOUNTS")
        await publish_all(js, frames)
        psub = await js.pull_subscribe_bind(durable=spec.durable, stream=spec.stream)
        start = time.perf_counter()
        done = 0
        while done < len(frames):
            msgs = await psub.fetch(1000, timeout=1)
            for msg in msgs[:-1]:
                await msg.ack()
            await msgs[-1].ack_sync()
            done += len(msgs)
        took = time.perf_counter() - start
        await psub.unsubscribe()
        return took


async def _puller_alone(nats_url: str, frames: list[tuple[str, bytes, str]]) -> float:
    """Seconds for the bridge's own fetch (``suho_mt5.ingest._pull.Puller``) plus the same
    acks to get through ``frames``: the bridge without decoding and without a database."""
    from suho_mt5.ingest import DEFAULT_CONTRACT
    from suho_mt5.ingest._pull import Puller
    from tests.integration.ingest._support import jetstream, publish_all

    spec = DEFAULT_CONTRACT.bridge
    async with jetstream(nats_url) as (nc, js):
        await js.purge_stream("MT5_ACCOUNTS")
        await publish_all(js, frames)
        puller = await Puller(nc, spec.stream, spec.durable).start()
        start = time.perf_counter()
        done = 0
        while done < len(frames):
            msgs = await puller.fetch(1000, 1)
            for msg in msgs[:-1]:
                await msg.ack()
            await msgs[-1].ack_sync()
            done += len(msgs)
        took = time.perf_counter() - start
        await puller.release()
        return took


def _pct(values: list[float], q: float) -> float:
    """``q`` quantile of durations in seconds, in milliseconds."""
    return quantile(values, q) * 1000


@section("Data Bridge (suho_mt5.ingest) on native TimescaleDB", order=40)
def ingest_section(settings: Settings) -> Section:
    from tests.integration.ingest._support import make_ingest_login, nats_server

    repeats = max(3, min(settings.repeats, 5))
    n = 50_000
    frames_per_batch = 50
    rows_out: list[Row] = []
    with _timescale() as server, nats_server() as nats:
        admin_w, ingest_w = _database(server)  # the writer / bridge writes here
        staged_w = make_ingest_login(admin_w)  # a login without BYPASSRLS
        admin_c, _ = _database(server)  # the raw COPY baseline writes here
        accounts = _accounts(admin_w, 30)
        _accounts_copy(admin_c, accounts)
        kinds = ("quote", "quote", "snapshot", "heartbeat", "order")
        plain = ("quote", "quote", "snapshot", "heartbeat")  # no audited table

        # 1. The writer alone vs COPY of the same rows (fresh rows every repeat).
        for label, url, base in (
                ("writer, direct COPY (login with BYPASSRLS), 50,000 rows, 5 tables",
                 ingest_w, 0),
                ("writer, COPY to stage + INSERT ON CONFLICT (login without BYPASSRLS)",
                 staged_w, 500_000)):
            ratios, w_rates = [], []
            for r in range(repeats):
                frames = _feed_frames(accounts, n, 100, base + 1_000_000 * (r + 1), kinds)
                rows = _rows_of(frames)
                w = asyncio.run(_writer_time(url, rows))
                c = _raw_copy(admin_c, rows)
                ratios.append(c / w)
                w_rates.append(n / w)
            rows_out.append(Row(label, None, "x raw COPY", 0.6, ">= 0.60",
                                f"median {statistics.median(w_rates):,.0f} rows/s",
                                measured=statistics.median(ratios)))

        # 2. End to end with frames of 100 packets vs COPY of the same rows.
        for label, mix, base in (
                ("end to end, JetStream -> committed rows, frames of 100 packets, 2 workers",
                 kinds, 0),
                ("the same without the audited table (quotes, snapshots, heartbeats)",
                 plain, 50_000_000)):
            ratios, e_rates = [], []
            latencies: list[float] = []
            for r in range(repeats):
                frames = _feed_frames(accounts, n, 100, base + 100_000_000 * (r + 1), mix)
                e = asyncio.run(_bridge_time(ingest_w, admin_w, nats.url, frames,
                                             frames_per_batch, latencies, workers=2))
                c = _raw_copy(admin_c, _rows_of(frames))
                ratios.append(c / e)
                e_rates.append(n / e)
            rows_out.append(Row(label, None, "x raw COPY", 0.7, ">= 0.70",
                                f"median {statistics.median(e_rates):,.0f} packets/s",
                                measured=statistics.median(ratios)))
            if mix is kinds:
                rows_out.append(Row(
                    f"commit latency p50 (batch of {frames_per_batch} frames = "
                    f"{frames_per_batch * 100:,} rows)", None, "ms", None, "",
                    "Writer.transaction: COPY, risk checks, commit", measured=_pct(latencies, 0.5)))
                rows_out.append(Row("commit latency p99", None, "ms", None, "", "",
                                    measured=_pct(latencies, 0.99)))

        # 3. One packet per message, and the NATS client alone on the same messages.
        m = 20_000
        rounds = max(3, repeats)
        one_rates, client, puller, no_db = [], [], [], []
        latencies = []
        for r in range(rounds):
            frames = _feed_frames(accounts, m, 1, 10_000_000_000 * (r + 1), ("quote",))
            e = asyncio.run(_bridge_time(ingest_w, admin_w, nats.url, frames, 1000, latencies,
                                         workers=2))
            one_rates.append(m / e)
            frames = _feed_frames(accounts, m, 1, 7_000_000_000_000 * (r + 1), ("quote",))
            client.append(m / asyncio.run(_client_alone(nats.url, frames)))
            frames = _feed_frames(accounts, m, 1, 8_000_000_000_000 * (r + 1), ("quote",))
            puller.append(m / asyncio.run(_puller_alone(nats.url, frames)))
            frames = _feed_frames(accounts, m, 1, 9_000_000_000_000 * (r + 1), ("quote",))
            no_db.append(m / asyncio.run(_bridge_time(ingest_w, admin_w, nats.url, frames, 1000,
                                                      [], workers=2, no_database=True)))
        rows_out.append(Row("end to end, 1 packet per message, 2 workers", None, "msg/s",
                            20_000, ">= 20,000", "batch 1,000 messages; see the note below",
                            measured=statistics.median(one_rates)))
        rows_out.append(Row("commit latency p50 (batch of 1,000 one-packet messages)", None,
                            "ms", None, "", "", measured=_pct(latencies, 0.5)))
        rows_out.append(Row("commit latency p99", None, "ms", None, "", "",
                            measured=_pct(latencies, 0.99)))
        rows_out.append(Row("bare nats-py pull consumer, 1 packet per message", None, "msg/s",
                            None, "", "PullSubscription.fetch(1,000) + acks, last one "
                            "confirmed; no decoding, no database", measured=statistics.median(
                                client)))
        rows_out.append(Row("the bridge's fetch alone, 1 packet per message", None, "msg/s",
                            None, "", "ingest._pull.Puller.fetch(1,000) + the same acks; no "
                            "decoding, no database", measured=statistics.median(puller)))
        rows_out.append(Row("the bridge without its database writes, 1 packet per message",
                            None, "msg/s", None, "", "2 workers: fetch, decode, map, check, "
                            "ack; Writer.transaction replaced by a no-op",
                            measured=statistics.median(no_db)))
    one, bare, own, alone = (statistics.median(x)
                             for x in (one_rates, client, puller, no_db))
    commit_ms = _pct(latencies, 0.5)
    side = (
        f"the bridge's own side reaches {alone:,.0f} msg/s when its database writes are a "
        f"no-op (its fetch and acks alone {own:,.0f} msg/s; nats-py's fetch and acks alone "
        f"{bare:,.0f} msg/s), and the writes bring it to {one:,.0f} msg/s: a 1,000-row "
        f"batch commits in {commit_ms:.0f} ms (p50). "
    )
    if alone >= 1.3 * one:
        side += ("The limiting side is the database writes: the COPY and commit, whose "
                 "PostgreSQL CPU and COPY formatting compete with the bridge and nats-server "
                 "for the machine's 2 cores.")
    else:
        side += "The limiting side is the bridge's own per-message Python work."
    return Section(
        "Data Bridge (suho_mt5.ingest) on native TimescaleDB",
        "Measured in one run against the same server: the baseline is a raw `COPY` of the "
        "same rows into the same hypertables (with their indexes, CHECKs, foreign key and, "
        "for trade orders, revision 0011's audit trigger, which writes one chained audit "
        "event per order) as a superuser, in a second database. The writer and the bridge "
        "write as a login in `mt5_ingest` with BYPASSRLS, as docs/ingest.md recommends "
        "(direct COPY), unless a row says otherwise. Ratios are baseline time / measured "
        "time, per repeat, median.",
        rows_out,
        extra_markdown=(
            f"With one packet per message {side} The machine is "
            "shared (2 cores; nats-server, PostgreSQL and the bridge compete for them), so "
            "figures move by ±30 % between runs. Every message costs the Python client a "
            "parse, a `Msg` object and an ack publish; that per-message cost is why EAs' "
            "frames carry many packets per message."
        ),
    )


def _accounts_copy(admin: str, accounts: dict[uuid.UUID, str]) -> None:
    from tests.integration.ingest._support import libpq

    with psycopg.connect(libpq(admin), autocommit=True) as conn:
        for acc, tenant in accounts.items():
            conn.execute(
                "INSERT INTO mt5_user_accounts (account_id, tenant_id, user_id, broker_name,"
                " broker_server, mt5_login, mt5_account_number, account_type) VALUES"
                " (%s, %s, 'u', 'Broker', 'Broker-Demo', %s, '1', 'demo')",
                (acc, tenant, (acc.int % 2**62) + 1))
