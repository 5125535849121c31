"""Dated FX of the policy library (``policies/data/fx_monthly.yaml``) against its sources."""

from __future__ import annotations

import datetime as dt

import pytest

import cbecsim
from cbecsim.policies import (
    FxError,
    PolicyError,
    convert,
    fx_coverage,
    known_currencies,
    latest_usd_rates,
    monthly_usd_rates,
    usd_rate,
    usd_rate_info,
)
from helpers import CONFIGS

approx = pytest.approx

# The Federal Reserve's own G.5 release of 2024-07-01 (federalreserve.gov/releases/g5, read
# 2026-12-02): monthly averages for April, May, June 2024. EUR and GBP are USD per unit,
# the others units per USD. An independent check of the file, which was copied from the
# FRED-based datasets/exchange-rates package (EUR/GBP inverted and rounded there).
G5_2024 = {
    "EUR": ("usd_per_unit", [1.0724, 1.0810, 1.0763]),
    "GBP": ("usd_per_unit", [1.2517, 1.2636, 1.2716]),
    "MXN": ("units_per_usd", [16.8008, 16.8033, 18.1946]),
    "BRL": ("units_per_usd", [5.1300, 5.1368, 5.3861]),
    "CNY": ("units_per_usd", [7.2374, 7.2327, 7.2547]),
    "JPY": ("units_per_usd", [153.8900, 155.8691, 157.8600]),
}


@pytest.mark.parametrize("currency", sorted(G5_2024))
def test_monthly_rates_agree_with_the_feds_g5_release(currency):
    kind, figures = G5_2024[currency]
    for month, figure in zip((4, 5, 6), figures):
        rate = usd_rate(currency, dt.date(2024, month, 15))
        expected = figure if kind == "usd_per_unit" else 1.0 / figure
        # EUR/GBP were stored as units per USD rounded to 4 decimals: 1/0.9325 vs 1.0724
        # differ by 6e-5 relative at most.
        assert rate == approx(expected, rel=1e-4 if kind == "usd_per_unit" else 1e-12)


def test_series_cover_2024_to_2026_for_the_currencies_the_issue_names():
    for code in ("EUR", "GBP", "MXN", "BRL", "CNY", "JPY"):
        first, last = fx_coverage(code)
        assert first == dt.date(2024, 1, 1) and last >= dt.date(2026, 6, 1)
        series = monthly_usd_rates(code)
        assert len(series) == (last.year - 2024) * 12 + last.month
    assert fx_coverage("USD") is None and monthly_usd_rates("USD") == {}
    assert {"USD", "EUR", "GBP", "MXN", "BRL", "CNY", "JPY", "RON"} <= set(known_currencies())


def test_late_2025_rates_are_not_the_old_fixed_table():
    # The review: late-2025 EUR about 1.15-1.17, GBP 1.31-1.34 (the old table had 1.08 / 1.27).
    # Fed G.5 via FRED, stored as 0.8590 EUR and 0.7487 GBP per USD in 2025-10.
    assert usd_rate("EUR", dt.date(2025, 10, 15)) == approx(1 / 0.8590)  # 1.1641
    assert usd_rate("GBP", dt.date(2025, 10, 15)) == approx(1 / 0.7487)  # 1.3356
    assert 1.15 < usd_rate("EUR", dt.date(2025, 11, 1)) < 1.17


def test_days_after_the_series_use_the_last_month_and_say_so():
    last = fx_coverage("EUR")[1]
    later = usd_rate_info("EUR", dt.date(2027, 3, 1))
    assert later.month == last and later.clamped
    assert later.usd_per_unit == usd_rate("EUR", last)
    inside = usd_rate_info("EUR", dt.date(2025, 3, 31))
    assert inside.month == dt.date(2025, 3, 1) and not inside.clamped
    # RON (ECB-derived) ends earlier than EUR: its own last month stands in
    assert usd_rate_info("RON", dt.date(2026, 6, 1)).clamped


def test_days_before_the_series_and_unknown_currencies_are_refused():
    with pytest.raises(FxError, match="series starts 2024-01"):
        usd_rate("EUR", dt.date(2023, 12, 31))
    with pytest.raises(FxError, match="unknown currency 'XYZ'"):
        usd_rate("XYZ", dt.date(2025, 1, 1))
    with pytest.raises(PolicyError, match="series starts"):
        convert(3, "EUR", "USD", dt.date(2023, 1, 1))
    assert convert(3, "EUR", "EUR", dt.date(2023, 1, 1)) == 3.0  # no rate needed


def test_cross_conversion_goes_through_usd():
    # RON 25 in EUR on 2026-01-10: 25 / 4.3382 USD = 25 * 0.8515 / 4.3382 EUR
    assert convert(25, "RON", "EUR", dt.date(2026, 1, 10)) == approx(25 * 0.8515 / 4.3382)


def test_scenario_default_currency_rates_are_the_latest_sourced_month():
    scenario = cbecsim.load_scenario(CONFIGS / "baseline.yaml")
    data = scenario.model_dump(exclude_unset=False)
    del data["currency_rates"]
    fresh = cbecsim.Scenario.model_validate(data)
    assert fresh.currency_rates == latest_usd_rates()
    assert fresh.currency_rates["EUR"] == approx(1 / 0.8684)  # 2026-06, the series' last month
