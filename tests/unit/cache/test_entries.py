"""Rows -> cache writes, keys and values, without a server."""

from __future__ import annotations

import asyncio
import doctest
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import suho_mt5.cache._client
import suho_mt5.cache._keys
import suho_mt5.cache._values
import suho_mt5.cache.acl
import suho_mt5.cache.reader
from suho_mt5.cache import CacheTTLs, CacheWriter, Quote, SignalState
from suho_mt5.cache._entries import (
    execution_status,
    from_rows,
    signal_base,
    signal_close,
    signal_exec,
)
from suho_mt5.cache._keys import quote_key, tenant_of_key, tenant_pattern, tenant_user
from suho_mt5.cache._values import from_us, to_us
from suho_mt5.errors import TenantError
from suho_mt5.ingest.writer import Batch, DeadLetterRecord, MessageContext, WriteResult

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
A = uuid.UUID(int=1)
B = uuid.UUID(int=2)
LONG = CacheTTLs.uniform(timedelta(days=3650))


def quote(t: datetime, seq: int | None, acc: uuid.UUID = A, symbol: str = "EURUSD.m",
          tenant: str = "acme", bid: str = "1.1", ref: str | None = None) -> tuple[Any, ...]:
    d = Decimal
    return (t, tenant, acc, symbol, d(bid), d(bid) + d("0.0002"), d(0), d(1), 2,
            d(ref) if ref else None, d(ref) + d("0.0001") if ref else None,
            d("1.5") if ref else None, seq)


@pytest.mark.parametrize("module", [suho_mt5.cache._keys, suho_mt5.cache._values,
                                    suho_mt5.cache._client, suho_mt5.cache.acl,
                                    suho_mt5.cache.reader], ids=lambda m: m.__name__)
def test_doctests(module: Any) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


def test_keys_carry_the_tenant_in_braces_so_no_tenant_prefixes_another() -> None:
    assert tenant_pattern("acme") == "suho:{acme}:*"
    key = quote_key("acme:eu", A, "EURUSD")
    assert key.startswith("suho:{acme:eu}:")
    assert not key.startswith(tenant_pattern("acme")[:-1])  # "suho:{acme}:" is not a prefix
    assert tenant_of_key(key) == "acme:eu" and tenant_of_key("suho:meta:epoch") is None
    assert tenant_user("acme") == "suho-tenant-acme"
    for bad in ("", "a b", "a*", "a}b", "-x", None):
        with pytest.raises(TenantError):
            tenant_pattern(bad)  # type: ignore[arg-type]


def test_the_newest_row_per_key_wins_within_a_batch() -> None:
    rows = [quote(T0, 5), quote(T0 + timedelta(seconds=2), 3, bid="1.3"),
            quote(T0 + timedelta(seconds=1), 9), quote(T0 + timedelta(seconds=2), 2),
            quote(T0, 1, acc=B), quote(T0, 1, symbol="XAUUSD")]
    latest, ops = from_rows("mt5_broker_quotes", rows, LONG, None, 50)
    assert ops == []
    by_key = {e.key: e for e in latest}
    assert len(by_key) == 3
    mine = by_key[quote_key("acme", A, "EURUSD.m")]
    assert (mine.time_us, mine.sequence) == (to_us(T0 + timedelta(seconds=2)), 3)
    assert Quote.from_json(mine.value).bid == Decimal("1.3")


def test_market_references_come_from_reconciled_quotes_per_canonical_symbol() -> None:
    rows = [quote(T0, 1, ref="1.0"), quote(T0 + timedelta(seconds=1), 2, ref="1.2"),
            quote(T0 + timedelta(seconds=3), 3),  # not reconciled: no newer reference
            quote(T0 + timedelta(seconds=2), 1, acc=B, symbol="#EURUSD", ref="1.3"),
            quote(T0 + timedelta(seconds=5), 4, tenant="globex", ref="9.0")]

    def canonical(symbol: str, account: uuid.UUID) -> str:
        return symbol.strip("#").split(".")[0]

    latest, _ = from_rows("mt5_broker_quotes", rows, LONG, canonical, 50)
    refs = {e.key: e for e in latest if "}:ref:" in e.key}
    assert set(refs) == {"suho:{acme}:ref:EURUSD", "suho:{globex}:ref:EURUSD"}
    acme = refs["suho:{acme}:ref:EURUSD"]
    assert acme.time_us == to_us(T0 + timedelta(seconds=2)) and '"bid":"1.3"' in acme.value


def test_an_execution_is_executed_or_rejected_by_its_return_code() -> None:
    assert [execution_status(c) for c in (None, 10008, 10009, 10010, 10004, 0)] == \
        ["executed"] * 4 + ["rejected"] * 2


def test_signal_events_declare_every_key_they_touch() -> None:
    sig = SignalState(uuid.uuid4(), A, T0, "sent", "EURUSD", "buy", Decimal("0.1"))
    base = signal_base("acme", sig, LONG, 50)
    assert base.keys == ("suho:{acme}:signals:" + str(A),
                         "suho:{acme}:signals:" + str(A) + ":by-time")
    exe = signal_exec("acme", A, sig.signal_id, T0, 77, "executed", LONG, 50)
    assert exe.keys[2] == f"suho:{{acme}}:closing:{A}:77"
    close = signal_close("acme", A, T0, (77, 78, 0, 77), LONG)
    assert close is not None and close.keys[1:] == (
        f"suho:{{acme}}:closing:{A}:77", f"suho:{{acme}}:closing:{A}:78")
    assert signal_close("acme", A, T0, (0,), LONG) is None
    assert all(tenant_of_key(k) == "acme" for op in (base, exe, close) for k in op.keys)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1),
                    timezones=st.just(UTC)))
def test_microseconds_round_trip_exactly(t: datetime) -> None:
    assert from_us(to_us(t)) == t


def test_the_writer_leaves_out_rows_the_database_refused() -> None:
    """A row dead-lettered ``refused`` by the row-by-row retry is not in the database: the
    cache must not show it either."""
    ctx = MessageContext("MT5_ACCOUNTS", 7, "mt5.account.acme.x.quote", b"", 1, "acme", A)
    batch = Batch()
    batch.add("mt5_broker_quotes", quote(T0, 1), (ctx, 0))
    batch.add("mt5_broker_quotes", quote(T0 + timedelta(seconds=1), 2, bid="9.9"), (ctx, 144))
    result = WriteResult(dead=[DeadLetterRecord.of(ctx, "refused", "no", 144, 144)])

    async def queued() -> Any:
        writer = CacheWriter("redis://127.0.0.1:1/0", ttls=LONG)
        writer.after_commit(batch, result, lambda a: None)
        pending = dict(writer._latest)
        await writer.close(drain_timeout=0)
        return pending

    pending = asyncio.run(queued())
    (entry,) = pending.values()
    assert entry.sequence == 1 and Quote.from_json(entry.value).bid == Decimal("1.1")


def test_the_buffer_keeps_the_newest_value_per_key_and_is_bounded() -> None:
    async def queued() -> Any:
        writer = CacheWriter("redis://127.0.0.1:1/0", ttls=LONG, max_pending=2)
        for rows in ([quote(T0, 2)], [quote(T0, 1, bid="0.5")], [quote(T0, 3, bid="2.0")],
                     [quote(T0, 1, acc=B)], [quote(T0, 1, symbol="XAUUSD")]):
            writer.after_commit(Batch(rows={"mt5_broker_quotes": rows},
                                      origins={"mt5_broker_quotes": [None]}),
                                WriteResult(), lambda a: None)
        state = dict(writer._latest), writer.dropped
        await writer.close(drain_timeout=0)
        return state

    pending, dropped = asyncio.run(queued())
    assert dropped == 1 and len(pending) == 2
    assert pending[(quote_key("acme", A, "EURUSD.m"), "")].sequence == 3
