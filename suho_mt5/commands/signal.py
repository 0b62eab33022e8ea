"""Signals: store a trading signal, publish it to its account's EA, mark it sent.

:func:`publish_signal` is what a signal service calls (the demo's "model" does): it inserts
the signal (``status = 'pending'``) and commits, publishes one SIGNAL packet on
``mt5.signal.<tenant>.<account_id>`` with the signal id as ``Nats-Msg-Id`` (a republish
within the stream's duplicate window is dropped by the server), then marks the signal
``sent``. The EA's EXECUTION_REPORT comes back through the Data Bridge into
``mt5_signal_executions``, whose triggers mark the signal ``executed`` or ``rejected``, and a
closing order later fills the execution's result: the loop is closed in the database.
Prices can be moved from the reference feed to the account's broker by the recent
deviation of its quotes (:func:`recent_deviation`,
:func:`suho_mt5.ingest.reconcile.adjust_signal`).

:func:`send_signal` is ``suho-mt5 signal send``: it checks what it can before anything is
stored (the tenant id, the account: registered, active and of that tenant; a JetStream
stream that takes the account's signal subject), then calls :func:`publish_signal`.

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from suho_mt5._names import TENANT_SETTING
from suho_mt5._subjects import outbound_subject
from suho_mt5.commands._connect import connect_database, connect_nats, one_line
from suho_mt5.commands.account import parse_account_id
from suho_mt5.db import validate_tenant_id
from suho_mt5.errors import (
    ConfigError,
    DatabaseError,
    ReconcileError,
    SignalError,
    StreamSetupError,
)
from suho_mt5.ingest.hooks import ReferenceSource, SignalListener
from suho_mt5.ingest.reconcile import (
    DEFAULT_PIP_SIZES,
    SignalPrices,
    SymbolMapper,
    adjust_signal,
    pip_size,
    price_deviation,
)
from suho_mt5.ingest.rows import WIRE_ACTIONS
from suho_mt5.models.enums import SignalAction
from suho_mt5.protocol import CONFIDENCE_SCALE, PRICE_SCALE, SignalPacket, encode

__all__ = ["ACTIONS", "PublishedSignal", "current_deviation", "parse_decimal", "publish_signal",
           "recent_deviation", "send_signal"]

#: The actions a signal may carry (``mt5_trading_signals.action``).
ACTIONS: tuple[str, ...] = tuple(a.value for a in SignalAction)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_INSERT = """INSERT INTO public.mt5_trading_signals
(time, signal_id, tenant_id, account_id, symbol, action, entry_price, stop_loss, take_profit,
 volume, expires_at, confidence_score, model_version, strategy_name, polygon_bid, polygon_ask,
 broker_adjustment, magic_number, status)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending')"""
_SENT = """UPDATE public.mt5_trading_signals SET status = 'sent', sent_at = now()
WHERE tenant_id = %s AND signal_id = %s AND time = %s AND status = 'pending'"""
_DEVIATION = """SELECT avg(price_deviation) FROM public.mt5_broker_quotes
WHERE tenant_id = %s AND account_id = %s AND symbol = %s AND time > %s
  AND price_deviation IS NOT NULL"""


@dataclass(frozen=True)
class PublishedSignal:
    """What :func:`publish_signal` stored and sent."""

    signal_id: uuid.UUID
    time: datetime
    subject: str
    packet: SignalPacket
    prices: SignalPrices
    broker_adjustment: Decimal | None
    duplicate: bool


def _us(t: datetime) -> int:
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _fixed(value: Decimal | None, scale: int, what: str) -> int:
    if value is None:
        return 0
    raw = value.scaleb(scale)
    if raw != raw.to_integral_value():
        raise SignalError(f"{what} {value} has more than {scale} decimal places")
    return int(raw)


async def recent_deviation(conn: Any, tenant_id: str, account_id: uuid.UUID, symbol: str,
                           window: timedelta = timedelta(minutes=5),
                           now: datetime | None = None) -> Decimal | None:
    """The mean ``price_deviation`` (pips) of the account's quotes of ``symbol`` in the last
    ``window``, or None when none was reconciled."""
    since = (now or datetime.now(UTC)) - window
    async with conn.cursor() as cur:
        await cur.execute(_DEVIATION, (tenant_id, account_id, symbol, since))
        row = await cur.fetchone()
    return None if row is None or row[0] is None else Decimal(row[0])


async def current_deviation(references: ReferenceSource, tenant_id: str,
                            account_id: uuid.UUID, symbol: str, canonical: str, pip: Decimal,
                            window: timedelta = timedelta(minutes=5),
                            now: datetime | None = None) -> Decimal | None:
    """The account's broker offset now, in pips: its latest quote of ``symbol`` against the
    latest market reference price of ``canonical``, both read through ``references`` (the
    cache's read API) and neither older than ``window``; None otherwise."""
    since = (now or datetime.now(UTC)) - window
    quote = await references.latest_quote(tenant_id, account_id, symbol)
    if quote is None or quote.time < since:
        return None
    ref = await references.market_reference(tenant_id, canonical)
    if ref is None or ref.time < since:
        return None
    return price_deviation(quote.bid, quote.ask, ref.bid, ref.ask, pip)


async def publish_signal(
    conn: Any,
    js: Any,
    *,
    tenant_id: str,
    account_id: uuid.UUID,
    symbol: str,
    action: SignalAction | str,
    volume: Decimal,
    entry_price: Decimal | None = None,
    stop_loss: Decimal | None = None,
    take_profit: Decimal | None = None,
    expires_at: datetime | None = None,
    confidence: Decimal | None = None,
    model_version: str | None = None,
    strategy_name: str | None = None,
    polygon_bid: Decimal | None = None,
    polygon_ask: Decimal | None = None,
    magic_number: int | None = None,
    adjust_to_broker: bool = False,
    deviation_window: timedelta = timedelta(minutes=5),
    mapper: SymbolMapper | None = None,
    pip_sizes: dict[str, Decimal] | None = None,
    signal_id: uuid.UUID | None = None,
    time: datetime | None = None,
    references: ReferenceSource | None = None,
    listener: SignalListener | None = None,
) -> PublishedSignal:
    """Store a signal, publish it as a SIGNAL packet, mark it sent; see the module doc.

    ``conn`` is a psycopg ``AsyncConnection`` of a login in ``mt5_ingest`` (it writes
    ``public.mt5_trading_signals`` and reads ``public.mt5_broker_quotes``, which the tenant
    roles cannot name); it is committed twice. ``js`` is a nats-py ``JetStreamContext``.
    ``symbol`` is the broker's symbol. With ``adjust_to_broker`` the prices (generated on
    reference data) are moved by the account's :func:`recent_deviation` of that symbol, and
    ``broker_adjustment`` records the offset. ``sequence`` and ``timestamp_us`` of the packet
    are the signal's time in microseconds (increasing per account, as the protocol asks).

    With ``references`` (the cache's read API) the adjustment is the broker's offset now
    (:func:`current_deviation`: latest quote against latest reference price), and the
    5-minute mean from the database only when the cache has no fresh pair. ``listener`` (the
    cache's writer) is told the signal's status after each commit (``pending``, ``sent``).
    """
    action = SignalAction(action)
    signal_id = signal_id or uuid.uuid4()
    t = time or datetime.now(UTC)
    prices = SignalPrices(entry_price, stop_loss, take_profit)
    adjustment: Decimal | None = None
    if adjust_to_broker:
        canonical = (mapper or SymbolMapper()).canonical(symbol)
        deviation = None
        if references is not None:
            try:
                pip = pip_size(canonical, pip_sizes or DEFAULT_PIP_SIZES)
            except ReconcileError:
                pass  # no pip size: no adjustment, as below
            else:
                deviation = await current_deviation(references, tenant_id, account_id,
                                                    symbol, canonical, pip,
                                                    deviation_window, t)
        if deviation is None:
            deviation = await recent_deviation(conn, tenant_id, account_id, symbol,
                                               deviation_window, t)
        if deviation is not None:
            pip = pip_size(canonical, pip_sizes or DEFAULT_PIP_SIZES)
            prices, adjustment = adjust_signal(prices, deviation, pip)
    packet = SignalPacket(
        sequence=_us(t), timestamp_us=_us(t), account_id=account_id.bytes,
        signal_id=signal_id.bytes, symbol=symbol,
        entry_price=_fixed(prices.entry, PRICE_SCALE, "entry_price"),
        stop_loss=_fixed(prices.stop_loss, PRICE_SCALE, "stop_loss"),
        take_profit=_fixed(prices.take_profit, PRICE_SCALE, "take_profit"),
        volume=_fixed(volume, PRICE_SCALE, "volume"),
        expires_at_us=_us(expires_at) if expires_at is not None else 0,
        confidence_bp=_fixed(confidence, CONFIDENCE_SCALE, "confidence"),
        action=WIRE_ACTIONS[action],
    )
    data = encode(packet)  # before the insert: a signal the codec refuses is never stored
    subject = outbound_subject("signal", tenant_id, account_id)
    import psycopg

    try:
        async with conn.cursor() as cur:
            await cur.execute(_INSERT, (
                t, signal_id, tenant_id, account_id, symbol, action.value, prices.entry,
                prices.stop_loss, prices.take_profit, volume, expires_at, confidence,
                model_version, strategy_name, polygon_bid, polygon_ask, adjustment,
                magic_number))
        await conn.commit()
    except psycopg.Error as exc:
        await conn.rollback()
        raise SignalError(f"signal {signal_id} not stored: {exc}") from exc
    details = {"symbol": symbol, "action": action.value, "volume": volume,
               "entry_price": prices.entry, "stop_loss": prices.stop_loss,
               "take_profit": prices.take_profit}
    if listener is not None:
        listener.signal_changed(tenant_id, account_id, signal_id, t, "pending", details)
    try:
        ack = await js.publish(subject, data, headers={"Nats-Msg-Id": str(signal_id)})
    except Exception as exc:
        raise SignalError(
            f"signal {signal_id} stored but not published on {subject} (it stays pending; "
            f"publishing it again is safe): {exc}") from exc
    try:
        async with conn.cursor() as cur:
            await cur.execute(_SENT, (tenant_id, signal_id, t))
        await conn.commit()
    except psycopg.Error as exc:
        await conn.rollback()
        raise SignalError(f"signal {signal_id} published but not marked sent: {exc}") from exc
    if listener is not None:
        listener.signal_changed(tenant_id, account_id, signal_id, t, "sent", details)
    return PublishedSignal(signal_id, t, subject, packet, prices, adjustment,
                           bool(getattr(ack, "duplicate", False)))


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


async def _check_account(conn: Any, tenant_id: str, account: uuid.UUID) -> None:
    import psycopg

    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT set_config(%s, %s, false)", (TENANT_SETTING, tenant_id))
            await cur.execute("SELECT tenant_id, is_active FROM public.mt5_user_accounts "
                              "WHERE account_id = %s", (account,))
            row = await cur.fetchone()
        await conn.commit()
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot read the account: {one_line(exc)}") from exc
    # Another tenant's account is "unknown" too: the message must not confirm it exists.
    if row is None or row[0] != tenant_id:
        raise SignalError(f"unknown account {account} of tenant {tenant_id!r}")
    if not row[1]:
        raise SignalError(f"account {account} is not active: its EA cannot receive signals")


async def _send(url: str, nats_url: str, tenant_id: str, account: uuid.UUID,
                kwargs: dict[str, Any]) -> PublishedSignal:
    subject = outbound_subject("signal", tenant_id, account)
    conn = await connect_database(url)
    async with conn:
        await _check_account(conn, tenant_id, account)  # an unknown account needs no NATS
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
            return await publish_signal(conn, js, tenant_id=tenant_id, account_id=account,
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
    recent quote deviation (see :func:`publish_signal`).
    """
    tenant_id = validate_tenant_id(tenant_id)
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
    return asyncio.run(_send(url, nats_url, tenant_id, account, kwargs))
