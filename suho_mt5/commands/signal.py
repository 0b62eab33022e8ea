"""Signal commands: store a trading signal and publish it to its account's EA.

Plain typed functions under ``suho-mt5 signal ...``. :func:`send_signal` checks what it can
before anything is stored (the tenant id, the account: registered, active and of that
tenant; a JetStream stream that takes the account's signal subject), then calls
:func:`suho_mt5.ingest.signals.publish_signal`, which inserts the signal, publishes one
SIGNAL packet on ``mt5.signal.<tenant>.<account_id>`` with the signal id as ``Nats-Msg-Id``
and marks it ``sent``.

The URL is a superuser or a login in ``mt5_ingest`` (``publish_signal`` writes
``public.mt5_trading_signals``, which tenant roles reach only through their views). The
tenant is still set, for the whole session (not per transaction, because ``publish_signal``
commits twice): a table owner under ``FORCE ROW LEVEL SECURITY`` then passes the tenant
policy; the connection is this command's own and closed when it returns, so nothing leaks.

Every failure is a :class:`~suho_mt5.errors.SuhoError` with a one-line message.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from suho_mt5._names import TENANT_SETTING
from suho_mt5._subjects import outbound_subject
from suho_mt5.commands._connect import connect_database, connect_nats, one_line
from suho_mt5.commands.account import parse_account_id
from suho_mt5.db import validate_tenant_id
from suho_mt5.errors import ConfigError, DatabaseError, SignalError, StreamSetupError
from suho_mt5.ingest.signals import PublishedSignal
from suho_mt5.models.enums import SignalAction

__all__ = ["ACTIONS", "parse_decimal", "send_signal"]

#: The actions a signal may carry (``mt5_trading_signals.action``).
ACTIONS: tuple[str, ...] = tuple(a.value for a in SignalAction)


def parse_decimal(value: str | Decimal | None, what: str) -> Decimal | None:
    """``value`` as a finite :class:`Decimal` (None stays None); a :class:`ConfigError`
    naming ``what`` otherwise.

    >>> parse_decimal("1.0953", "entry")
    Decimal('1.0953')
    """
    if value is None or isinstance(value, Decimal):
        return value
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ConfigError(f"{what} must be a number, not {value!r}") from None
    if not number.is_finite():
        raise ConfigError(f"{what} must be a finite number, not {value!r}")
    return number


async def _check_account(conn: Any, tenant: str, account: uuid.UUID) -> None:
    import psycopg

    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT set_config(%s, %s, false)", (TENANT_SETTING, tenant))
            await cur.execute("SELECT tenant_id, is_active FROM public.mt5_user_accounts "
                              "WHERE account_id = %s", (account,))
            row = await cur.fetchone()
        await conn.commit()
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot read the account: {one_line(exc)}") from exc
    # Another tenant's account is "unknown" too: the message must not confirm it exists.
    if row is None or row[0] != tenant:
        raise SignalError(f"unknown account {account} of tenant {tenant!r}")
    if not row[1]:
        raise SignalError(f"account {account} is not active: its EA cannot receive signals")


async def _send(url: str, nats_url: str, tenant: str, account: uuid.UUID,
                kwargs: dict[str, Any]) -> PublishedSignal:
    from suho_mt5.ingest.signals import publish_signal

    subject = outbound_subject("signal", tenant, account)
    conn = await connect_database(url)
    async with conn:
        await _check_account(conn, tenant, account)  # an unknown account needs no NATS
        nc = await connect_nats(nats_url, "signal send")
        try:
            js = nc.jetstream()
            try:
                await js.find_stream_name_by_subject(subject)
            except Exception as exc:  # NotFoundError, or no JetStream on that server
                raise StreamSetupError(
                    f"no JetStream stream takes {subject} at {nats_url} "
                    f"({exc or type(exc).__name__}): run `suho-mt5 streams setup` first"
                ) from exc
            return await publish_signal(conn, js, tenant_id=tenant, account_id=account,
                                        **kwargs)
        finally:
            await nc.close()


def send_signal(
    url: str,
    nats_url: str,
    *,
    tenant_id: str,
    account_id: uuid.UUID | str,
    symbol: str,
    action: SignalAction | str,
    volume: Decimal | str,
    entry_price: Decimal | str | None = None,
    stop_loss: Decimal | str | None = None,
    take_profit: Decimal | str | None = None,
    expires_in: timedelta | None = None,
    confidence: Decimal | str | None = None,
    model_version: str | None = None,
    strategy_name: str | None = None,
    magic_number: int | None = None,
    adjust_to_broker: bool = False,
) -> PublishedSignal:
    """Store a signal for ``account_id`` and publish it to its EA; return what was sent.

    ``symbol`` is the broker's symbol; prices and volume are decimals (strings accepted).
    ``confidence`` is 0..1. With ``adjust_to_broker`` the prices are moved by the account's
    recent quote deviation (see :func:`suho_mt5.ingest.signals.publish_signal`).
    """
    tenant = validate_tenant_id(tenant_id)
    account = parse_account_id(account_id)
    try:
        chosen = SignalAction(str(action).upper())
    except ValueError:
        raise ConfigError(f"action must be one of {', '.join(ACTIONS)}, not {action!r}") from None
    amount = parse_decimal(volume, "volume")
    if amount is None or amount <= 0:
        raise ConfigError(f"volume must be more than 0, not {volume}")
    score = parse_decimal(confidence, "confidence")
    if score is not None and not Decimal(0) <= score <= Decimal(1):
        raise ConfigError(f"confidence must be between 0 and 1, not {confidence}")
    if not symbol:
        raise ConfigError("symbol must not be empty")  # the codec judges the rest
    now = datetime.now(UTC)
    kwargs: dict[str, Any] = {
        "symbol": symbol,
        "action": chosen,
        "volume": amount,
        "entry_price": parse_decimal(entry_price, "entry price"),
        "stop_loss": parse_decimal(stop_loss, "stop loss"),
        "take_profit": parse_decimal(take_profit, "take profit"),
        "expires_at": now + expires_in if expires_in is not None else None,
        "confidence": score,
        "model_version": model_version,
        "strategy_name": strategy_name,
        "magic_number": magic_number,
        "adjust_to_broker": adjust_to_broker,
        "time": now,
    }
    return asyncio.run(_send(url, nats_url, tenant, account, kwargs))
