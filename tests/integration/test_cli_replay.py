"""`suho-mt5 ingest replay FILE` on real servers: a recorded packet stream is published on
the bus in the gateway's frames (and a second replay is dropped as duplicates, then written
once by the bridge), or written straight to the tables (idempotent, with dead letters); a
bad file, an unknown account, a server that is down or a wrong URL is one line, exit 1."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from suho_mt5._subjects import account_subject, message_id
from suho_mt5.cli import main
from suho_mt5.commands import db as db_commands
from suho_mt5.commands.ingest import setup_streams
from suho_mt5.commands.replay import frames, read_recording
from suho_mt5.ingest import BridgeSettings
from suho_mt5.protocol import (
    PACKET_SIZE,
    AckPacket,
    BrokerQuotePacket,
    MessageType,
    Packet,
    decode,
    encode,
)
from tests.integration.ingest._support import Feed, libpq, running_bridge
from tests.integration.ingest._support import nats_server as own_nats_server
from tests.support.cli import one_error_line
from tests.support.servers import NatsServer, free_port

TABLES = ("mt5_broker_quotes", "mt5_account_balance_history", "mt5_ea_heartbeat",
          "mt5_trade_orders")
KINDS = ("quote", "quote", "snapshot", "heartbeat", "order", "quote")


@pytest.fixture
def url(make_pg_database: Callable[[], str]) -> str:
    made = make_pg_database()
    db_commands.upgrade(made, edition="postgresql")
    return made


def add_accounts(url: str, tenants: tuple[str, ...]) -> dict[uuid.UUID, str]:
    made: dict[uuid.UUID, str] = {}
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for i, tenant in enumerate(tenants):
            account = uuid.uuid4()
            conn.execute(
                "INSERT INTO mt5_user_accounts (account_id, tenant_id, user_id, broker_name,"
                " broker_server, mt5_login, mt5_account_number, account_type) VALUES"
                " (%s, %s, 'u', 'Broker', 'Broker-Demo', %s, '1', 'demo')",
                (account, tenant, 9000 + i + account.int % 10**6))
            made[account] = tenant
    return made


def recording(path: Path, accounts: dict[uuid.UUID, str], per_account: int = 30,
              extra: tuple[Packet, ...] = ()) -> list[Packet]:
    """Interleaved packets of every account, as EAs send them, written to ``path``."""
    feed = Feed(accounts)
    packets: list[Packet] = []
    for i in range(per_account):
        for account in accounts:
            packets.append(feed.packet(account, KINDS[i % len(KINDS)]))
    packets.extend(extra)
    path.write_bytes(b"".join(encode(p) for p in packets))
    return packets


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(main, ["ingest", "replay", *args])






def counts(url: str) -> dict[str, int]:
    with psycopg.connect(libpq(url)) as conn:
        out = {}
        for table in (*TABLES, "mt5_ingest_dead_letters"):
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None
            out[table] = int(row[0])
        return out


def bus_messages(nats_url: str, accounts: dict[uuid.UUID, str]) -> list[Any]:
    async def fetch() -> list[Any]:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig

        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            out: list[Any] = []
            for account, tenant in accounts.items():
                subject = account_subject(tenant, account, "quote").rsplit(".", 1)[0] + ".*"
                sub = await js.pull_subscribe(subject, stream="MT5_ACCOUNTS", config=
                                              ConsumerConfig(ack_policy=AckPolicy.NONE))
                try:
                    while True:
                        out.extend(await sub.fetch(100, timeout=1))
                except Exception:  # nats' TimeoutError: nothing more on that subject
                    pass
                finally:
                    await sub.unsubscribe()
            return out
        finally:
            await nc.close()

    return asyncio.run(fetch())


def test_the_file_is_checked_and_framed_as_the_gateway_frames(tmp_path: Path) -> None:
    accounts = {uuid.uuid4(): "acme", uuid.uuid4(): "globex.eu"}
    ack = AckPacket(999, 1, next(iter(accounts)).bytes, 3, MessageType.BROKER_QUOTE)
    packets = recording(tmp_path / "r.bin", accounts, extra=(ack,))
    checked: list[int] = []
    found = read_recording(tmp_path / "r.bin", checked.append)
    assert sum(checked) == len(packets)  # the progress of the check pass
    assert (found.packets, found.data_packets, found.skipped) == (len(packets),
                                                                  len(packets) - 1, {"ACK": 1})
    assert found.accounts == set(accounts)
    framed = list(frames(tmp_path / "r.bin", frame_packets=2))
    for account in accounts:
        mine = [p for p in packets[:-1] if p.account_id == account.bytes]
        theirs = [f for f in framed if f.account_id == account]
        assert [p for f in theirs for p in f.packets] == mine  # every packet, in order
        assert all(len(f.packets) <= 2 for f in theirs)
        assert all({p.MESSAGE_TYPE for p in f.packets} == {f.packets[0].MESSAGE_TYPE}
                   for f in theirs)
        assert all(f.first_sequence == f.packets[0].sequence for f in theirs)
    assert [f.data for f in frames(tmp_path / "r.bin", 2)] == [f.data for f in framed]


def test_replay_onto_the_bus_is_idempotent_and_the_bridge_writes_it_once(
        url: str, tmp_path: Path) -> None:
    accounts = add_accounts(url, ("acme", "globex.eu"))
    packets = recording(tmp_path / "r.bin", accounts)
    with own_nats_server() as nats:
        setup_streams(nats.url)
        first = run(str(tmp_path / "r.bin"), "--url", url, "--nats-url", nats.url, "--json")
        assert first.exit_code == 0, first.output
        summary = json.loads(first.output)
        assert summary["mode"] == "bus" and summary["data_packets"] == len(packets)
        assert summary["duplicate_frames"] == 0 and summary["accounts"] == 2
        again = json.loads(run(str(tmp_path / "r.bin"), "--url", url, "--nats-url",
                               nats.url, "--json").output)
        assert again["duplicate_frames"] == again["frames"] == summary["frames"]

        messages = bus_messages(nats.url, accounts)
        assert len(messages) == summary["frames"]  # the second replay stored nothing
        on_bus = []
        for msg in messages:
            frame = [decode(msg.data[o:o + PACKET_SIZE])
                     for o in range(0, len(msg.data), PACKET_SIZE)]
            account = uuid.UUID(bytes=frame[0].account_id)
            assert msg.subject == account_subject(accounts[account], account,
                                                  msg.subject.rsplit(".", 1)[1])
            assert msg.headers["Nats-Msg-Id"] == message_id(account, frame[0].sequence)
            on_bus.extend(frame)
        assert sorted(on_bus, key=lambda p: (p.account_id, p.sequence)) == \
            sorted(packets, key=lambda p: (p.account_id, p.sequence))

        async def bridge() -> None:
            settings = BridgeSettings(url=url, nats_url=nats.url, fetch_timeout=0.5,
                                      offline_check_every=3600.0)
            async with running_bridge(settings):
                for _ in range(400):
                    if sum(counts(url)[t] for t in TABLES) >= len(packets):
                        break
                    await asyncio.sleep(0.05)

        asyncio.run(bridge())
    written = counts(url)
    assert sum(written[t] for t in TABLES) == len(packets)
    assert written["mt5_ingest_dead_letters"] == 0


def test_replay_into_the_database_twice_writes_once(url: str, tmp_path: Path) -> None:
    accounts = add_accounts(url, ("acme", "initech"))
    bad = BrokerQuotePacket(10_000, 1_764_493_200_000_000, next(iter(accounts)).bytes,
                            "EURUSD", 0, 5, 0, 0, 2)  # decodes; the table refuses bid 0
    packets = recording(tmp_path / "r.bin", accounts, extra=(bad,))
    first = run(str(tmp_path / "r.bin"), "--url", url, "--batch-size", "7", "--json")
    assert first.exit_code == 0, first.output
    summary = json.loads(first.output)
    assert summary["mode"] == "database"
    assert sum(summary["written"].values()) == len(packets) - 1
    assert summary["dead_letters"] == 1 and summary["duplicate_rows"] == 0
    assert sum(counts(url)[t] for t in TABLES) == len(packets) - 1

    again = run(str(tmp_path / "r.bin"), "--url", url)
    assert again.exit_code == 0, again.output
    assert f"0 row(s) written, {len(packets) - 1} already there" in again.output
    assert sum(counts(url)[t] for t in TABLES) == len(packets) - 1


def test_the_environment_variables_are_honoured(url: str, tmp_path: Path,
                                                nats_server: NatsServer) -> None:
    accounts = add_accounts(url, ("acme",))
    packets = recording(tmp_path / "r.bin", accounts, per_account=5)
    direct = run(str(tmp_path / "r.bin"), "--json", env={"SUHO_DATABASE_URL": url,
                                                         "SUHO_NATS_URL": ""})
    assert direct.exit_code == 0, direct.output
    assert sum(json.loads(direct.output)["written"].values()) == len(packets)
    setup_streams(nats_server.url)
    bus = run(str(tmp_path / "r.bin"), "--tenant", "acme", "--json",
              env={"SUHO_DATABASE_URL": "", "SUHO_NATS_URL": nats_server.url})
    assert bus.exit_code == 0, bus.output
    assert json.loads(bus.output)["mode"] == "bus"
    forced = run(str(tmp_path / "r.bin"), "--direct", "--json",
                 env={"SUHO_DATABASE_URL": url, "SUHO_NATS_URL": nats_server.url})
    assert json.loads(forced.output)["mode"] == "database"


def test_bad_files_name_the_offset(tmp_path: Path) -> None:
    accounts = {uuid.uuid4(): "acme"}
    recording(tmp_path / "r.bin", accounts, per_account=4)
    whole = (tmp_path / "r.bin").read_bytes()
    (tmp_path / "partial.bin").write_bytes(whole + b"\0" * 10)
    one_error_line(run(str(tmp_path / "partial.bin"), "--url", "postgresql://u@h/db"),
                   f"the 10 bytes from offset {len(whole)} are a partial packet")
    corrupt = bytearray(whole)
    corrupt[2 * PACKET_SIZE + 50] ^= 0xFF
    (tmp_path / "corrupt.bin").write_bytes(bytes(corrupt))
    one_error_line(run(str(tmp_path / "corrupt.bin"), "--url", "postgresql://u@h/db"),
                   f"packet at byte offset {2 * PACKET_SIZE} (packet 3) does not decode")
    (tmp_path / "empty.bin").write_bytes(b"")
    one_error_line(run(str(tmp_path / "empty.bin"), "--url", "postgresql://u@h/db"),
                   "the file is empty")
    one_error_line(run(str(tmp_path / "none.bin"), "--url", "postgresql://u@h/db"),
                   "No such file or directory")
    one_error_line(run(str(tmp_path), "--url", "postgresql://u@h/db"), "is a directory")


def test_unknown_accounts_servers_down_and_wrong_urls(url: str, tmp_path: Path,
                                                      nats_server: NatsServer) -> None:
    recording(tmp_path / "r.bin", {uuid.uuid4(): "acme"}, per_account=3)
    file = str(tmp_path / "r.bin")
    before = counts(url)
    one_error_line(run(file, "--url", url), "unknown account")
    one_error_line(run(file, "--url", url, "--nats-url", nats_server.url), "unknown account")
    one_error_line(run(file, "--url", f"postgresql://postgres@127.0.0.1:{free_port()}/x"),
                   "cannot connect to the database")
    one_error_line(run(file, "--url", "not a url"), "not a database URL")
    one_error_line(run(file, "--tenant", "acme", "--nats-url",
                       f"nats://127.0.0.1:{free_port()}"), "cannot connect to NATS")
    one_error_line(run(file, "--tenant", "bad tenant!", "--nats-url", nats_server.url),
                   "malformed tenant_id")
    one_error_line(run(file, "--nats-url", nats_server.url,
                       env={"SUHO_DATABASE_URL": ""}), "needs each account's tenant")
    one_error_line(run(file, env={"SUHO_DATABASE_URL": "", "SUHO_NATS_URL": ""}),
                   "nowhere to replay to")
    with own_nats_server() as bare:  # no streams declared on it
        one_error_line(run(file, "--tenant", "acme", "--nats-url", bare.url),
                       "suho-mt5 streams setup")
    assert counts(url) == before


def test_dead_letters_of_two_recordings_never_share_a_key(url: str, tmp_path: Path) -> None:
    """Each file's one frame holds a packet the table refuses at the same frame number and
    offset: the dead-letter key must tell the two apart (a frame number would not, and the
    second file's dead letter would be silently dropped), and replaying a file again must
    not store its dead letter twice."""
    first, second = add_accounts(url, ("acme", "initech"))
    for name, account in (("a.bin", first), ("b.bin", second)):
        bad = BrokerQuotePacket(1, 1_764_493_200_000_000, account.bytes, "EURUSD", 0, 5, 0, 0,
                                2)  # decodes; the table refuses bid 0
        (tmp_path / name).write_bytes(encode(bad))
    for name in ("a.bin", "b.bin", "a.bin"):
        result = run(str(tmp_path / name), "--url", url, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["dead_letters"] == 1
    with psycopg.connect(libpq(url)) as conn:
        rows = conn.execute("SELECT stream, account_id FROM mt5_ingest_dead_letters"
                            " ORDER BY account_id = %s", (second,)).fetchall()
    assert rows == [("replay", first), ("replay", second)]


def test_to_database_is_the_name_and_direct_its_hidden_old_spelling(
        url: str, tmp_path: Path, nats_server: NatsServer) -> None:
    accounts = add_accounts(url, ("acme",))
    recording(tmp_path / "r.bin", accounts, per_account=3)
    env = {"SUHO_DATABASE_URL": url, "SUHO_NATS_URL": nats_server.url}
    for flag in ("--to-database", "--direct"):
        forced = run(str(tmp_path / "r.bin"), flag, "--json", env=env)
        assert forced.exit_code == 0, forced.output
        assert json.loads(forced.output)["mode"] == "database"
    shown = CliRunner().invoke(main, ["ingest", "replay", "--help"]).output
    assert "--to-database" in shown and "--direct" not in shown
