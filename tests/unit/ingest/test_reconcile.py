"""Reconciliation with numbers worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from suho_mt5.errors import ReconcileError
from suho_mt5.ingest.reconcile import (
    Reconciler,
    ReferenceBook,
    ReferenceQuote,
    SignalPrices,
    SymbolMapper,
    adjust_signal,
    decode_reference,
    encode_reference,
    pip_size,
    price_deviation,
)
from suho_mt5.ingest.risk import exposure

D = Decimal
T0 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("broker_symbol", ["EURUSD", "EURUSD.m", "EURUSDm", "EURUSD.raw",
                                           "#EURUSD", "EURUSD-ECN", "EURUSD_i", "eurusd"])
def test_default_mapping_of_broker_suffixes_and_prefixes(broker_symbol: str) -> None:
    assert SymbolMapper().canonical(broker_symbol) == "EURUSD"


def test_per_broker_overrides_win() -> None:
    m = SymbolMapper({"Exness": {"GOLDm": "XAUUSD"}, "*": {"DJ30": "US30"}})
    assert m.canonical("GOLDm", "Exness") == "XAUUSD"
    assert m.canonical("GOLDm", "ICMarkets") == "GOLD"
    assert m.canonical("DJ30", "ICMarkets") == "US30"


def test_pip_sizes() -> None:
    assert pip_size("EURUSD") == D("0.0001")
    assert pip_size("GBPJPY") == D("0.01")
    assert pip_size("XAUUSD") == D("0.1")
    assert pip_size("US30") == D("1")
    assert pip_size("BTCUSDT", {"BTCUSDT": D("1")}) == D("1")
    with pytest.raises(ReconcileError):
        pip_size("BTCUSDT")


def test_deviation_in_pips_by_hand() -> None:
    # broker mid 1.09550, reference mid 1.09530: 0.00020 / 0.0001 = 2 pips
    assert price_deviation(D("1.09540"), D("1.09560"), D("1.09520"), D("1.09540"),
                           D("0.0001")) == D("2")
    # USDJPY: mids 151.240 vs 151.210 = 0.030 / 0.01 = 3 pips
    assert price_deviation(D("151.230"), D("151.250"), D("151.200"), D("151.220"),
                           D("0.01")) == D("3")
    # XAUUSD: mids 2650.80 vs 2650.30 = 0.50 / 0.1 = 5 pips; broker below: negative
    assert price_deviation(D("2650.60"), D("2651.00"), D("2650.10"), D("2650.50"),
                           D("0.1")) == D("5")
    assert price_deviation(D("1.0950"), D("1.0952"), D("1.0953"), D("1.0955"),
                           D("0.0001")) == D("-3")


def test_reference_of_the_same_moment() -> None:
    book = ReferenceBook()
    for s, bid in ((0, "1.09500"), (2, "1.09520"), (4, "1.09540")):
        book.add(ReferenceQuote("EURUSD", T0 + timedelta(seconds=s), D(bid), D(bid) + D("0.0002")))
    r = Reconciler(book=book, max_age=timedelta(seconds=5))
    # at T0+3 s the latest reference at or before is the one of T0+2 s (mid 1.09530)
    got = r.reference("EURUSD.m", T0 + timedelta(seconds=3), D("1.09540"), D("1.09560"))
    assert got == (D("1.09520"), D("1.09540"), D("2"))
    assert r.reference("EURUSD.m", T0 + timedelta(seconds=60), D("1"), D("1")) is None
    assert r.reference("EURUSD.m", T0 - timedelta(seconds=1), D("1.09500"), D("1.09520")) == (
        D("1.09500"), D("1.09520"), D("0"))
    assert r.reference("NOSUCH", T0, D("1"), D("1")) is None


def test_reference_payload_round_trip_and_refusals() -> None:
    q = ReferenceQuote("EURUSD", T0, D("1.09531"), D("1.09533"))
    assert decode_reference("EURUSD", encode_reference(q)) == q
    assert decode_reference("EURUSD", b'{"bid": 1.5, "ask": 1.6, "time": "2026-11-30T10:00:00Z"}'
                            ).time == T0
    for bad in (b"nope", b'{"bid": "0", "ask": "1", "time": "2026-11-30T10:00:00Z"}',
                b'{"bid": "1", "ask": "1", "time": "2026-11-30T10:00:00"}'):
        with pytest.raises(ReconcileError):
            decode_reference("EURUSD", bad)


def test_adjust_signal_by_hand() -> None:
    # mean deviation 2.25 pips on EURUSD: every price moves up 0.000225
    prices, offset = adjust_signal(SignalPrices(D("1.09530"), D("1.09320"), D("1.09820")),
                                   D("2.25"), D("0.0001"))
    assert offset == D("0.000225")
    assert prices == SignalPrices(D("1.095525"), D("1.093425"), D("1.098425"))
    prices, _ = adjust_signal(SignalPrices(None, D("151.00"), None), D("-3"), D("0.01"))
    assert prices == SignalPrices(None, D("150.97"), None)


def test_exposure_netting_vs_hedging_by_hand() -> None:
    pos = [("EURUSD", "buy", D("1.00")), ("EURUSD", "sell", D("0.40")),
           ("XAUUSD", "sell", D("0.20"))]
    assert exposure(pos, "netting") == {"EURUSD": D("0.60"), "XAUUSD": D("0.20")}
    assert exposure(pos, "exchange") == {"EURUSD": D("0.60"), "XAUUSD": D("0.20")}
    assert exposure(pos, "hedging") == {"EURUSD": D("1.40"), "XAUUSD": D("0.20")}
    assert exposure(pos, None) == exposure(pos, "hedging")
