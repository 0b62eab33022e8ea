"""`suho-mt5 signal send` end to end: a real nats-server with the bus contract and a
migrated PostgreSQL 15. The signal is stored, a subscriber on the account's subject gets a
SIGNAL packet that decodes to the same values, and every mistake is one line, exit 1."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from suho_mt5.cli import main
from suho_mt5.commands import account as accounts
from suho_mt5.commands import db as db_commands
from suho_mt5.commands.ingest import setup_streams
from suho_mt5.protocol import SignalPacket, WireAction, decode
from tests.support.cli import one_error_line
from tests.support.servers import NatsServer, free_port

TENANT = "tenant_signal"


@pytest.fixture(scope="module")
def url(make_pg_database: Callable[[], str]) -> str:
    made = make_pg_database()
    db_commands.upgrade(made, edition="postgresql")
    return made


@pytest.fixture(scope="module")
def nats_url(nats_server: NatsServer) -> str:
    setup_streams(nats_server.url)
    return nats_server.url


@pytest.fixture(scope="module")
def account(url: str) -> str:
    new = accounts.create(url, tenant_id=TENANT, user_id="u1", broker_name="IC Markets",
                          broker_server="ICMarkets-Demo", mt5_login=7001,
                          mt5_account_number="7001")
    return str(new.account.account_id)


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(main, list(args))






def received_on(nats_url: str, subject: str) -> list[Any]:
    """Every message on ``subject`` in the MT5_SIGNALS stream (an ephemeral consumer)."""
    async def fetch() -> list[Any]:
        import nats

        nc = await nats.connect(nats_url)
        try:
            sub = await nc.jetstream().pull_subscribe(subject, stream="MT5_SIGNALS")
            msgs = await sub.fetch(10, timeout=2)
            for m in msgs:
                await m.ack()
            return list(msgs)
        finally:
            await nc.close()

    return asyncio.run(fetch())


def stored(url: str, signal_id: str) -> dict[str, Any]:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        cur = conn.execute("SELECT * FROM mt5_trading_signals WHERE signal_id = %s",
                           (signal_id,))
        names = [c.name for c in cur.description or ()]
        rows = cur.fetchall()
    assert len(rows) == 1, rows
    return dict(zip(names, rows[0], strict=True))


def test_send_stores_publishes_and_the_ea_decodes_the_same_values(
        url: str, nats_url: str, account: str) -> None:
    result = run("signal", "send", "--url", url, "--nats-url", nats_url, "--tenant", TENANT,
                 "--account", account, "--symbol", "EURUSD", "--action", "buy",
                 "--volume", "0.10", "--entry", "1.09530", "--sl", "1.09320",
                 "--tp", "1.09820", "--confidence", "0.85", "--model", "v1",
                 "--strategy", "trend", "--magic", "42", "--expires-in", "3600")
    assert result.exit_code == 0, result.output
    signal_id = result.output.strip()
    assert uuid.UUID(signal_id)

    row = stored(url, signal_id)
    assert row["status"] == "sent" and row["sent_at"] is not None
    assert (row["tenant_id"], str(row["account_id"]), row["symbol"], row["action"]) == \
        (TENANT, account, "EURUSD", "BUY")
    assert row["entry_price"] == Decimal("1.09530") and row["volume"] == Decimal("0.10")
    assert row["confidence_score"] == Decimal("0.85") and row["model_version"] == "v1"
    assert row["magic_number"] == 42 and row["expires_at"] > row["time"]

    (msg,) = received_on(nats_url, f"mt5.signal.{TENANT}.{account}")
    assert msg.headers["Nats-Msg-Id"] == signal_id
    packet = decode(msg.data)
    assert isinstance(packet, SignalPacket)
    assert uuid.UUID(bytes=packet.signal_id) == uuid.UUID(signal_id)
    assert uuid.UUID(bytes=packet.account_id) == uuid.UUID(account)
    assert packet.action is WireAction.BUY and packet.symbol == "EURUSD"
    assert (packet.entry_price, packet.stop_loss, packet.take_profit, packet.volume) == \
        (109_530_000, 109_320_000, 109_820_000, 10_000_000)
    assert packet.confidence_bp == 8500 and packet.expires_at_us > packet.timestamp_us


def test_streams_setup_prints_json(nats_url: str) -> None:
    result = CliRunner().invoke(main, ["streams", "setup", "--nats-url", nats_url, "--json"])
    assert result.exit_code == 0, result.output
    objects = json.loads(result.output)
    assert {"kind": "stream", "name": "MT5_SIGNALS", "state": "up to date",
            "replicas": 1} in objects
    assert {"kind": "consumer", "name": "MT5_ACCOUNTS/suho-bridge", "state": "ready",
            "replicas": 1} in objects


def test_json_and_the_environment_variables(url: str, nats_url: str, account: str) -> None:
    env = {"SUHO_DATABASE_URL": url, "SUHO_NATS_URL": nats_url}
    result = run("signal", "send", "--tenant", TENANT, "--account", account, "--symbol",
                 "GBPUSD", "--action", "SELL", "--volume", "1", "--json", env=env)
    assert result.exit_code == 0, result.output
    sent = json.loads(result.output)
    assert sent["subject"] == f"mt5.signal.{TENANT}.{account}"
    assert sent["action"] == "SELL" and sent["duplicate"] is False
    assert stored(url, sent["signal_id"])["symbol"] == "GBPUSD"


@pytest.mark.parametrize(("args", "message"), [
    (("--tenant", "nobody"), "unknown account"),
    (("--account", str(uuid.uuid4())), "unknown account"),
    (("--tenant", "bad tenant!"), "malformed tenant_id"),
    (("--account", "not-a-uuid"), "not an account id"),
    (("--volume", "lots"), "volume must be a number"),
    (("--volume", "0"), "volume must be more than 0"),
    (("--confidence", "1.5"), "confidence must be between 0 and 1"),
    (("--entry", "1.123456789"), "more than"),
])
def test_mistakes_are_one_line_and_nothing_is_stored(
        url: str, nats_url: str, account: str, args: tuple[str, ...], message: str) -> None:
    base = {"--url": url, "--nats-url": nats_url, "--tenant": TENANT, "--account": account,
            "--symbol": "EURUSD", "--action": "buy", "--volume": "0.1"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    before = count_signals(url)
    one_error_line(run("signal", "send", *[x for kv in base.items() for x in kv]), message)
    assert count_signals(url) == before


def count_signals(url: str) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute("SELECT count(*) FROM mt5_trading_signals").fetchone()
    assert row is not None
    return int(row[0])


def test_a_deactivated_account_gets_no_signal(url: str, nats_url: str) -> None:
    new = accounts.create(url, tenant_id=TENANT, user_id="u2", broker_name="IC Markets",
                          broker_server="ICMarkets-Demo", mt5_login=7002,
                          mt5_account_number="7002")
    accounts.deactivate(url, new.account.account_id)
    one_error_line(run("signal", "send", "--url", url, "--nats-url", nats_url, "--tenant",
                       TENANT, "--account", str(new.account.account_id), "--symbol", "EURUSD",
                       "--action", "buy", "--volume", "0.1"), "is not active")


def test_servers_that_are_down_or_unconfigured(url: str, nats_url: str, account: str,
                                               make_pg_database: Callable[[], str]) -> None:
    args = ["--tenant", TENANT, "--account", account, "--symbol", "EURUSD", "--action", "buy",
            "--volume", "0.1"]
    before = count_signals(url)
    one_error_line(run("signal", "send", "--url", url, "--nats-url",
                       f"nats://127.0.0.1:{free_port()}", *args), "cannot connect to NATS")
    one_error_line(run("signal", "send", "--nats-url", nats_url, "--url",
                       f"postgresql://postgres@127.0.0.1:{free_port()}/suho", *args),
                   "cannot connect to the database")
    one_error_line(run("signal", "send", "--nats-url", nats_url, "--url", "not a url", *args),
                   "not a database URL")
    one_error_line(run("signal", "send", "--nats-url", nats_url, "--url", make_pg_database(),
                       *args), "cannot read the account")  # not migrated
    assert count_signals(url) == before


def test_a_nats_server_without_the_streams_is_refused_before_storing(
        url: str, account: str) -> None:
    from tests.integration.ingest._support import nats_server as fresh_nats

    before = count_signals(url)
    with fresh_nats() as bare:
        one_error_line(run("signal", "send", "--url", url, "--nats-url", bare.url, "--tenant",
                           TENANT, "--account", account, "--symbol", "EURUSD", "--action",
                           "buy", "--volume", "0.1"), "suho-mt5 streams setup")
    assert count_signals(url) == before


def test_a_login_in_mt5_ingest_sends_signals(url: str, nats_url: str, account: str) -> None:
    from tests.integration.ingest._support import make_ingest_login

    ingest = make_ingest_login(url)
    result = run("signal", "send", "--url", ingest, "--nats-url", nats_url, "--tenant", TENANT,
                 "--account", account, "--symbol", "USDJPY", "--action", "close",
                 "--volume", "0.5")
    assert result.exit_code == 0, result.output
    row = stored(url, result.output.strip())
    assert (row["action"], row["status"]) == ("CLOSE", "sent")
