"""``suho-mt5 streams setup``: declares the contract, idempotently, and updates it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from click.testing import CliRunner

from suho_mt5.cli import main
from suho_mt5.ingest import DEFAULT_CONTRACT, setup_streams
from tests.integration.ingest._support import jetstream
from tests.support.servers import NatsServer

YAML = Path(__file__).resolve().parents[3] / "config" / "nats-subjects.yaml"


def test_streams_setup_twice_then_updated(nats: NatsServer) -> None:
    runner = CliRunner()
    first = runner.invoke(main, ["streams", "setup", "--nats-url", nats.url, "--config",
                                 str(YAML)])
    assert first.exit_code == 0, first.output
    assert "stream MT5_ACCOUNTS: created" in first.output
    assert "consumer MT5_ACCOUNTS/suho-bridge: ready" in first.output
    second = runner.invoke(main, ["streams", "setup", "--nats-url", nats.url])
    assert second.exit_code == 0, second.output
    assert "created" not in second.output and "MT5_MARKET: up to date" in second.output

    async def check() -> None:
        async with jetstream(nats.url, setup=False) as (_nc, js):
            for spec in DEFAULT_CONTRACT.streams:
                info = await js.stream_info(spec.name)
                assert info.config.subjects == list(spec.subjects)
                assert info.config.duplicate_window == spec.duplicate_window_seconds
                assert str(getattr(info.config.storage, "value", info.config.storage)) == "file"
            await js.publish("mt5.account.acme.x.quote", b"kept")
            changed = DEFAULT_CONTRACT.with_bridge(ack_wait_seconds=7, max_deliver=4)
            await setup_streams(js, changed)
            consumer = await js.consumer_info("MT5_ACCOUNTS", "suho-bridge")
            assert (consumer.config.ack_wait, consumer.config.max_deliver) == (7, 4)
            assert (await js.stream_info("MT5_ACCOUNTS")).state.messages == 1  # kept

    asyncio.run(check())


def test_streams_setup_reports_an_unreachable_server() -> None:
    result = CliRunner().invoke(main, ["streams", "setup", "--nats-url",
                                       "nats://127.0.0.1:1"])
    assert result.exit_code == 1 and result.output.startswith("error: cannot connect")


def test_ingest_run_without_the_streams_is_one_error_line(nats: NatsServer) -> None:
    logger = logging.getLogger("suho_mt5")
    try:
        result = CliRunner().invoke(main, ["ingest", "run", "--url",
                                           "postgresql+psycopg://u:p@127.0.0.1:1/db",
                                           "--nats-url", nats.url])
    finally:  # the command configured logging onto the runner's stream: undo it
        logger.handlers.clear()
        logger.propagate = True
    assert result.exit_code == 1
    assert "consumer MT5_ACCOUNTS/suho-bridge is not there" in result.output
    assert "suho-mt5 streams setup" in result.output
