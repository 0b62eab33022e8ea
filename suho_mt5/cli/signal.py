"""``suho-mt5 signal send``: store a trading signal and publish it to its account's EA,
over :mod:`suho_mt5.commands.signal`."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import click

from suho_mt5.cli._common import nats_url_option, reports_errors, url_option
from suho_mt5.commands._connect import database_url

__all__ = ["ACTIONS", "signal"]

#: ``SignalAction``'s values, spelled out: importing the command line loads no model (the
#: gateway, which imports it, never does); a unit test keeps the two equal.
ACTIONS = ("BUY", "SELL", "CLOSE", "MODIFY")


@click.group()
def signal() -> None:
    """Trading signals from the backend to the EAs."""


@signal.command("send")
@url_option
@nats_url_option
@click.option("--tenant", "tenant_id", required=True, help="Tenant id of the account.")
@click.option("--account", "account_id", required=True, metavar="ACCOUNT_ID",
              help="The account (a UUID) whose EA receives the signal.")
@click.option("--symbol", required=True, help="The broker's symbol, e.g. EURUSD.")
@click.option("--action", required=True, type=click.Choice(ACTIONS,
                                                           case_sensitive=False),
              help="What the EA is asked to do.")
@click.option("--volume", required=True, help="Lots, e.g. 0.10.")
@click.option("--entry", "entry_price", help="Entry price (none: at market).")
@click.option("--sl", "stop_loss", help="Stop loss price.")
@click.option("--tp", "take_profit", help="Take profit price.")
@click.option("--expires-in", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="The EA ignores the signal after this many seconds.")
@click.option("--confidence", help="Model confidence, 0 to 1.")
@click.option("--model", "model_version", help="Model version that produced the signal.")
@click.option("--strategy", "strategy_name", help="Strategy name.")
@click.option("--magic", "magic_number", type=int, help="Magic number the EA puts on its order.")
@click.option("--adjust-to-broker", is_flag=True,
              help="Move the prices by the account's recent quote deviation (reference -> "
                   "broker prices).")
@click.option("--json", "as_json", is_flag=True, help="Print what was sent as JSON.")
@reports_errors
def signal_send(url: str | None, nats_url: str, tenant_id: str, account_id: str, symbol: str,
                action: str, volume: str, entry_price: str | None, stop_loss: str | None,
                take_profit: str | None, expires_in: float | None, confidence: str | None,
                model_version: str | None, strategy_name: str | None,
                magic_number: int | None, adjust_to_broker: bool, as_json: bool) -> None:
    """Store a signal in mt5_trading_signals and publish it as a SIGNAL packet on
    mt5.signal.<tenant>.<account>; print its signal id.

    The account must be registered, active and of --tenant, and `suho-mt5 streams setup`
    must have run on the NATS server. The EA's EXECUTION_REPORT later marks the signal
    executed or rejected (through `suho-mt5 ingest run`).

    \b
    Example:
      suho-mt5 signal send --tenant tenant_demo \\
          --account 3f6c0a3e-0b1d-4c1e-9f4e-2a7d5c9b8e10 --symbol EURUSD --action buy \\
          --volume 0.10 --entry 1.09530 --sl 1.09320 --tp 1.09820 --confidence 0.85
    """
    from suho_mt5.commands.signal import send_signal

    sent = send_signal(
        database_url(url), nats_url, tenant_id=tenant_id, account_id=account_id,
        symbol=symbol, action=action, volume=volume, entry_price=entry_price,
        stop_loss=stop_loss, take_profit=take_profit,
        expires_in=timedelta(seconds=expires_in) if expires_in is not None else None,
        confidence=confidence, model_version=model_version, strategy_name=strategy_name,
        magic_number=magic_number, adjust_to_broker=adjust_to_broker,
    )
    if not as_json:
        click.echo(str(sent.signal_id))
        return
    packet = sent.packet
    click.echo(json.dumps({
        "signal_id": str(sent.signal_id),
        "time": sent.time.isoformat(),
        "subject": sent.subject,
        "tenant_id": tenant_id,
        "account_id": str(uuid.UUID(bytes=packet.account_id)),
        "symbol": packet.symbol,
        "action": action.upper(),
        "volume": volume,
        "entry_price": sent.prices.entry,
        "stop_loss": sent.prices.stop_loss,
        "take_profit": sent.prices.take_profit,
        "confidence": confidence,
        "broker_adjustment": sent.broker_adjustment,
        "duplicate": sent.duplicate,
    }, indent=2, default=str))
