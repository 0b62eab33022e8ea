"""Bad input among good: every packet is either a row or in a dead letter that says why,
and the good packets of a frame holding a bad one are written."""

from __future__ import annotations

import asyncio
import random
import urllib.request
import uuid
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families

from suho_mt5._subjects import account_subject
from suho_mt5.protocol import ExecutionReportPacket, encode, encode_frame
from tests.integration.ingest._support import (
    BASE_US,
    TABLE_OF,
    Feed,
    IngestDb,
    frames_for,
    jetstream,
    publish_all,
    quick_settings,
    running_bridge,
    wait_until_drained,
)
from tests.support.servers import NatsServer, free_port


def _mixed(db: IngestDb) -> tuple[list[tuple[str, bytes, str]], Counter[str], int, int,
                                  list[tuple[uuid.UUID, int]]]:
    """~1% bad packets of every kind among 10,000 good ones.

    Returns frames, expected dead letters per reason, rows expected, packets published and
    the (account, sequence) of good packets that share a frame with a bad one."""
    rnd = random.Random(11)
    accounts = db.add_accounts(2)
    feed = Feed(db.accounts)
    frames, published = frames_for(feed, 10_000, 50)
    rows = published.rows
    packets = published.packets
    reasons: Counter[str] = Counter()
    neighbours: list[tuple[uuid.UUID, int]] = []
    extra: list[tuple[str, bytes, str]] = []
    for i in range(40):  # garbage: random bytes, or a valid packet with a broken CRC
        acc = accounts[i % len(accounts)]
        if i % 2:
            payload = rnd.randbytes(144)
        else:
            good = bytearray(encode(feed.packet(acc, "heartbeat")))
            good[60] ^= 0xFF
            payload = bytes(good)
        extra.append((account_subject(db.accounts[acc], acc, "heartbeat"), payload, f"g{i}"))
        reasons["undecodable"] += 1
        packets += 1
    extra.append((account_subject(db.accounts[accounts[0]], accounts[0], "quote"),
                  rnd.randbytes(200), "partial"))  # not a whole number of packets
    reasons["undecodable"] += 1
    packets += 2
    for i in range(30):  # wrong tenant: a real account under another tenant's subject
        acc = accounts[i % len(accounts)]
        other = next(t for t in set(db.accounts.values()) if t != db.accounts[acc])
        extra.append((account_subject(other, acc, "quote"),
                      encode(feed.packet(acc, "quote")), f"w{i}"))
        reasons["unauthorized"] += 1
        packets += 1
    extra.append((account_subject("acme", uuid.uuid4(), "quote"),
                  encode(feed.packet(accounts[0], "quote")), "unknown-account"))
    reasons["unauthorized"] += 1
    packets += 1
    extra.append(("mt5.account.acme.not-a-uuid.quote", b"x" * 144, "bad-subject"))
    reasons["unauthorized"] += 1
    packets += 1
    for i in range(30):  # a CHECK broken (bid 0, margin < 0) amid 9 good packets
        acc = accounts[i % len(accounts)]
        kind = "quote" if i % 2 else "snapshot"
        bad_at = i % 10
        chunk = []
        for k in range(10):
            if k == bad_at:
                chunk.append(feed.packet(acc, kind, bid=0) if kind == "quote"
                             else feed.packet(acc, kind, margin=-1))
            else:
                p = feed.packet(acc, kind)
                chunk.append(p)
                neighbours.append((acc, p.sequence))
        extra.append((account_subject(db.accounts[acc], acc, kind), encode_frame(chunk),
                      f"c{i}"))
        reasons["check_violation"] += 1
        packets += 10
        rows += 9
    for i in range(10):  # a packet of another account inside a frame
        acc, intruder = accounts[i % len(accounts)], accounts[(i + 1) % len(accounts)]
        chunk = [feed.packet(acc, "quote"), feed.packet(intruder, "quote")]
        extra.append((account_subject(db.accounts[acc], acc, "quote"), encode_frame(chunk),
                      f"m{i}"))
        reasons["account_mismatch"] += 1
        packets += 2
        rows += 1
    # Execution reports: the table's trigger refuses one naming no signal (the database, not
    # the Python checks, finds this one); the other is written.
    acc = accounts[0]
    signal_id = uuid.uuid4()
    with db.connect() as conn:
        conn.execute("INSERT INTO mt5_trading_signals (time, signal_id, tenant_id, account_id,"
                     " symbol, action) VALUES (now(), %s, %s, %s, 'EURUSD', 'BUY')",
                     (signal_id, db.accounts[acc], acc))
    feed.seq[acc] += 1
    ok = ExecutionReportPacket(feed.seq[acc], BASE_US + 7, acc.bytes, signal_id.bytes, 1,
                               109_530_000, 0, 10009)
    feed.seq[acc] += 1
    orphan = ExecutionReportPacket(feed.seq[acc], BASE_US + 8, acc.bytes, uuid.uuid4().bytes,
                                   2, 109_530_000, 0, 10009)
    extra.append((account_subject(db.accounts[acc], acc, "execution"),
                  encode_frame([ok, orphan]), "exec"))
    reasons["refused"] += 1
    packets += 2
    rows += 1
    frames = frames + extra
    rnd.shuffle(frames)
    return frames, reasons, rows, packets, neighbours


def test_bad_input_is_dead_lettered_with_reasons_and_good_rows_written(
    ingest_db: IngestDb, nats: NatsServer
) -> None:
    frames, reasons, rows, packets, neighbours = _mixed(ingest_db)
    port = free_port()

    async def scenario() -> str:
        async with jetstream(nats.url) as (_nc, js):
            await publish_all(js, frames)
            settings = quick_settings(ingest_db, nats.url, workers=2, batch_size=100,
                                      metrics_port=port)
            async with running_bridge(settings):
                await wait_until_drained(js, ingest_db, rows, dead=sum(reasons.values()))
                await asyncio.sleep(0.6)  # one consumer poll for the gauges
                return await asyncio.to_thread(
                    lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
                    .read().decode())

    text = asyncio.run(scenario())
    with ingest_db.connect() as conn:
        dead = conn.execute("SELECT reason, detail, packet_count, length(raw), subject"
                            " FROM mt5_ingest_dead_letters").fetchall()
        written = sum(ingest_db.counts().values())
        for acc, seq in neighbours:
            found = conn.execute(
                "SELECT (SELECT count(*) FROM mt5_broker_quotes WHERE account_id = %s AND"
                " sequence = %s) + (SELECT count(*) FROM mt5_account_balance_history"
                " WHERE account_id = %s"
                " AND sequence = %s)", (acc, seq, acc, seq)).fetchone()
            assert found == (1,), (acc, seq)
    assert Counter(r[0] for r in dead) == reasons
    assert all(r[1] for r in dead), "every dead letter says why"
    assert written == rows
    assert written + sum(r[2] for r in dead) == packets
    refused = [r for r in dead if r[0] == "refused"]
    assert "does not exist" in refused[0][1] and refused[0][3] == 144

    # /metrics, scraped while the bridge ran, counts exactly what was published.
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    assert samples[("suho_ingest_messages_received_total", ())] == len(frames)
    assert samples[("suho_ingest_packets_received_total", ())] == packets
    per_table = {t: ingest_db.count(t) for t in TABLE_OF.values()}
    for table, n in per_table.items():
        assert samples.get(("suho_ingest_rows_written_total", (("table", table),)), 0) == n
    for reason, n in reasons.items():
        assert samples[("suho_ingest_dead_letters_total", (("reason", reason),))] == n
    assert sum(v for (name, _), v in samples.items()
               if name == "suho_ingest_dead_letter_packets_total") + written == packets
    assert samples[("suho_ingest_consumer_pending", ())] == 0
    assert samples[("suho_ingest_batch_seconds_count", ())] >= 1
