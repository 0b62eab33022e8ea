"""``suho-mt5 account ...``: EA accounts and their API keys, over
:mod:`suho_mt5.commands.account`.

A new API key is printed exactly once (by ``create`` and ``rotate-key``); the database keeps
only its hash, and ``list`` never shows hashes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

import click

from suho_mt5.cli._common import reports_errors, url_option
from suho_mt5.commands import account as commands
from suho_mt5.commands._connect import database_url

__all__ = ["account"]

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
tenant_filter_option = click.option(
    "--tenant", "tenant_id",
    help="Refuse unless the account belongs to this tenant (and set it for the transaction).",
)


def _url(url: str | None) -> str:
    return database_url(url)


def _account_dict(account: commands.Account) -> dict[str, Any]:
    return {k: str(v) if k == "account_id" else v for k, v in asdict(account).items()}


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def _print_new_key(new: commands.NewKey, as_json: bool, what: str) -> None:
    if as_json:
        _print_json({**_account_dict(new.account), "api_key": new.api_key})
        return
    click.echo(f"account_id: {new.account.account_id}")
    click.echo(f"tenant_id:  {new.account.tenant_id}")
    click.echo(f"api_key:    {new.api_key}")
    click.echo(f"{what}: this is the only time the API key is shown (only its hash is stored).",
               err=True)


@click.group()
def account() -> None:
    """Create, list, re-key and deactivate EA accounts (administration).

    These commands run as the URL's user: the DBA who migrated the database (a superuser,
    or a role that bypasses row-level security), never a tenant role. The URL comes from
    --url or $SUHO_DATABASE_URL.
    """


@account.command("create")
@url_option
@click.option("--tenant", "tenant_id", required=True, help="Tenant id (a new one is created).")
@click.option("--user", "user_id", required=True, help="The tenant's user id of the owner.")
@click.option("--broker", "broker_name", required=True, help="Broker name, e.g. 'IC Markets'.")
@click.option("--server", "broker_server", required=True, help="MT5 server, e.g. 'ICMarkets-Demo'.")
@click.option("--login", "mt5_login", required=True, type=click.IntRange(min=1),
              help="MT5 login number.")
@click.option("--number", "mt5_account_number", help="MT5 account number [default: the login].")
@click.option("--type", "account_type", type=click.Choice(commands.ACCOUNT_TYPES),
              default="demo", show_default=True, help="Account type.")
@click.option("--currency", default="USD", show_default=True, help="Deposit currency.")
@click.option("--leverage", type=click.IntRange(min=1), help="Leverage, e.g. 100 for 1:100.")
@json_option
@reports_errors
def account_create(url: str | None, tenant_id: str, user_id: str, broker_name: str,
                   broker_server: str, mt5_login: int, mt5_account_number: str | None,
                   account_type: str, currency: str, leverage: int | None,
                   as_json: bool) -> None:
    """Create an account and print its id and its new API key (shown only this once).

    \b
    Example:
      suho-mt5 account create --tenant tenant_demo --user user_001 \\
          --broker "IC Markets" --server ICMarkets-Demo --login 5012345 --type demo
    """
    new = commands.create(
        _url(url), tenant_id=tenant_id, user_id=user_id, broker_name=broker_name,
        broker_server=broker_server, mt5_login=mt5_login,
        mt5_account_number=mt5_account_number or str(mt5_login), account_type=account_type,
        currency=currency, leverage=leverage,
    )
    _print_new_key(new, as_json, "created")


@account.command("list")
@url_option
@click.argument("tenant_id", metavar="TENANT")
@click.option("--active", "active_only", is_flag=True, help="Only active accounts.")
@json_option
@reports_errors
def account_list(url: str | None, tenant_id: str, active_only: bool, as_json: bool) -> None:
    """List the accounts of TENANT (never their key hashes).

    \b
    Example:
      suho-mt5 account list tenant_demo --json
    """
    accounts = commands.list_accounts(_url(url), tenant_id, active_only=active_only)
    if as_json:
        _print_json([_account_dict(a) for a in accounts])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"accounts of {tenant_id}")
    for column in ("account_id", "user", "broker", "server", "login", "type", "active", "key"):
        table.add_column(column)
    for a in accounts:
        table.add_row(str(a.account_id), a.user_id, a.broker_name, a.broker_server,
                      str(a.mt5_login), a.account_type, "yes" if a.is_active else "no",
                      "set" if a.has_api_key else "none")
    Console(width=None if sys.stdout.isatty() else 160).print(table)


@account.command("rotate-key")
@url_option
@click.argument("account_id", metavar="ACCOUNT_ID")
@tenant_filter_option
@json_option
@reports_errors
def account_rotate_key(url: str | None, account_id: str, tenant_id: str | None,
                       as_json: bool) -> None:
    """Give ACCOUNT_ID a new API key and print it once; the old key stops working at once.

    \b
    Example:
      suho-mt5 account rotate-key 3f6c0a3e-0b1d-4c1e-9f4e-2a7d5c9b8e10
    """
    _print_new_key(commands.rotate_key(_url(url), account_id, tenant_id=tenant_id), as_json,
                   "rotated")


@account.command("deactivate")
@url_option
@click.argument("account_id", metavar="ACCOUNT_ID")
@tenant_filter_option
@json_option
@reports_errors
def account_deactivate(url: str | None, account_id: str, tenant_id: str | None,
                       as_json: bool) -> None:
    """Deactivate ACCOUNT_ID: its EA can no longer authenticate; its data stays.

    \b
    Example:
      suho-mt5 account deactivate 3f6c0a3e-0b1d-4c1e-9f4e-2a7d5c9b8e10
    """
    deactivated = commands.deactivate(_url(url), account_id, tenant_id=tenant_id)
    if as_json:
        _print_json(_account_dict(deactivated))
    else:
        click.echo(f"deactivated {deactivated.account_id} ({deactivated.tenant_id})")
