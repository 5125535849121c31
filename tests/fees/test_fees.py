"""Fee library: worked examples computed by hand from the fee pages, schedule validation,
the numba fee rules against an independent reference, and the ``cbecsim fees`` CLI.

Every expected number has its arithmetic beside it. Amazon's wording the rules follow:
electronics accessories "15% for the portion of the total sales price up to $100.00, and
8% for any portion of the total sales price greater than $100.00", minimum $0.30 ("the
greater of the applicable referral fee percentage or applicable per-item minimum");
refund administration fee "Lesser of $5 or 20% of referral fees".
"""

from __future__ import annotations

import datetime as dt
import json
import math
import textwrap
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cbecsim import cli as main_cli
from cbecsim.fees import (
    FeeError,
    check_coverage,
    fee_schedule,
    list_fee_schedules,
    quote_sale,
    read_fee_file,
    resolve_fees,
)
from cbecsim.fees import cli as fees_cli
from cbecsim.kernels import fee_rules

approx = pytest.approx
SUMMER_2025 = "2025-06-01"


def referral(schedule, category, price, day=SUMMER_2025):
    return resolve_fees(schedule, category, day).referral_fee(price)


# --------------------------------------------------------------------------------------
# Referral fee: worked examples
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "price, expected",
    [
        (120.00, 16.60),  # 0.15 * 100 + 0.08 * 20 = 15.00 + 1.60
        (100.00, 15.00),  # 0.15 * 100, nothing above the bound
        (250.00, 27.00),  # 0.15 * 100 + 0.08 * 150 = 15 + 12
        (32.00, 4.80),  # 0.15 * 32
        (1.50, 0.30),  # 0.15 * 1.50 = 0.225 < minimum 0.30
        (2.00, 0.30),  # 0.15 * 2.00 = 0.30 = minimum exactly
        (3.00, 0.45),  # 0.15 * 3.00 = 0.45 > minimum
    ],
)
def test_us_electronics_accessories_referral(price, expected):
    assert referral("amazon_us", "electronics_accessories", price) == approx(expected, abs=1e-12)


def test_market_categories_are_aliases_of_electronics_accessories():
    # cbecsim's `charging` (chargers) and `audio` (headphones): Amazon lists chargers and
    # headphones under Electronics Accessories, so a USD 120 headset pays 16.60 too.
    for alias in ("charging", "audio", "headphones"):
        terms = resolve_fees("amazon_us", alias, SUMMER_2025)
        assert terms.category == "electronics_accessories" and terms.requested_category == alias
        assert terms.referral_fee(120.0) == approx(16.60)


def test_us_consumer_electronics_flat_8_percent():
    assert referral("amazon_us", "consumer_electronics", 50.0) == approx(4.00)  # 0.08 * 50
    assert referral("amazon_us", "consumer_electronics", 120.0) == approx(9.60)  # 0.08 * 120
    assert referral("amazon_us", "consumer_electronics", 3.0) == approx(0.30)  # 0.24 < 0.30


@pytest.mark.parametrize(
    "price, expected",
    [
        (15.00, 0.75),  # "$15.00 or less": 5% of the whole price, 0.05 * 15
        (18.00, 1.80),  # 10% of the whole price, 0.10 * 18 (not 5% of 15 + 10% of 3)
        (20.00, 2.00),  # still 10%: 0.10 * 20
        (20.01, 3.4017),  # 17% of all of it: 0.17 * 20.01
        (4.00, 0.30),  # 0.05 * 4 = 0.20 < minimum 0.30
    ],
)
def test_us_apparel_whole_price_tiers(price, expected):
    assert referral("amazon_us", "apparel", price) == approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "price, expected",
    [
        (59.99, 8.9985),  # 0.15 * 59.99, VAT included
        (150.00, 19.00),  # 0.15 * 100 + 0.08 * 50
        (1.00, 0.15),  # no minimum referral fee on amazon.de any more: 0.15 * 1
    ],
)
def test_de_electronics_accessories_referral(price, expected):
    terms = resolve_fees("amazon_de", "charging", SUMMER_2025)
    assert terms.currency == "EUR" and terms.referral_base == "gross_of_vat" and terms.referral_min == 0
    assert terms.referral_fee(price) == approx(expected, abs=1e-12)


def test_de_consumer_electronics_7_percent():
    assert referral("amazon_de", "consumer_electronics", 200.0) == approx(14.0)  # 0.07 * 200


# --------------------------------------------------------------------------------------
# Refunds
# --------------------------------------------------------------------------------------


def test_refund_admin_fee_on_a_40_dollar_item():
    terms = resolve_fees("amazon_us", "charging", SUMMER_2025)
    # referral 0.15 * 40 = 6.00; admin = min(0.20 * 6.00, 5.00) = 1.20; credited back 4.80
    assert terms.referral_fee(40.0) == approx(6.00)
    assert terms.refund_admin_fee(40.0) == approx(1.20)
    assert terms.referral_refund(40.0) == approx(4.80)


def test_refund_admin_fee_cap_amazon_worked_example():
    # Amazon's example: item 300 + shipping 40 + gift wrap 5 = 345 at 15%: referral 51.75,
    # 20% = 10.35, "cannot be greater than 5" -> 5; item B 57 at 15% = 8.55 -> 1.71.
    assert fee_rules.refund_admin_fee(51.75, 0.20, 5.0) == approx(5.00)
    assert fee_rules.refund_admin_fee(8.55, 0.20, 5.0) == approx(1.71)
    assert fee_rules.referral_refund(8.55, 0.20, 5.0) == approx(6.84)
    # Through the schedule: a USD 300 charger pays 15 + 0.08 * 200 = 31.00; 20% = 6.20 -> 5.00
    terms = resolve_fees("amazon_us", "charging", SUMMER_2025)
    assert terms.referral_fee(300.0) == approx(31.00)
    assert terms.refund_admin_fee(300.0) == approx(5.00)


def test_de_refund_admin_in_euro():
    terms = resolve_fees("amazon_de", "charging", SUMMER_2025)
    assert (terms.refund_admin_rate, terms.refund_admin_max, terms.currency) == (0.20, 5.0, "EUR")


# --------------------------------------------------------------------------------------
# Fulfilment, storage, inbound placement, payment
# --------------------------------------------------------------------------------------


def test_us_fulfilment_price_bands_and_dates():
    t2025 = resolve_fees("amazon_us", "charging", "2025-06-01", "large_standard")
    assert t2025.fulfilment_fee(9.99) == approx(3.83)  # Low-Price FBA: below USD 10, 4.60 - 0.77
    assert t2025.fulfilment_fee(10.00) == approx(4.60)  # "priced below $10" excludes 10.00
    assert t2025.fulfilment_fee_per_unit is None  # depends on the price
    t2026 = resolve_fees("amazon_us", "charging", "2026-02-01", "large_standard")
    assert t2026.fulfilment_fee(50.00) == approx(4.60)  # "$10-$50" includes 50.00
    assert t2026.fulfilment_fee(50.01) == approx(4.91)  # above USD 50
    fuel = resolve_fees("amazon_us", "charging", "2026-05-01", "large_standard")
    assert fuel.fulfilment_fee(32.0) == approx(4.60 * 1.035)  # 3.5% surcharge from 2026-04-17
    # The last day before a change still has the old fee ([from, to) entries).
    assert resolve_fees("amazon_us", "charging", "2026-01-14", "small_standard").fulfilment_fee(60) == approx(3.50)
    assert resolve_fees("amazon_us", "charging", "2026-01-15", "small_standard").fulfilment_fee(60) == approx(4.01)


def test_de_peak_fulfilment_fee():
    before = resolve_fees("amazon_de", "audio", "2025-10-14").fulfilment_fee(40.0)
    peak = resolve_fees("amazon_de", "audio", "2025-10-15").fulfilment_fee(40.0)
    assert (before, peak) == (approx(3.58), approx(3.84))  # + EUR 0.26 from 15 October
    assert resolve_fees("amazon_de", "audio", "2025-01-02", "standard_250g").fulfilment_fee_per_unit == approx(3.22)


def test_storage_per_unit_month_with_q4_peak():
    terms = resolve_fees("amazon_us", "charging", SUMMER_2025, "large_standard")
    # reference unit 6 x 4 x 2.5 in = 60 in3 = 60 / 1728 ft3; June 0.78, November 2.40 per ft3
    assert terms.storage_for_month(6) == approx(0.78 * 60 / 1728, rel=1e-5)
    assert terms.storage_for_month(11) == approx(2.40 * 60 / 1728, rel=1e-5)
    assert terms.storage_per_unit_month[:9] == (terms.storage_per_unit_month[0],) * 9
    assert "unit_volume" in terms.assumed  # the reference unit is an assumption
    given_volume = resolve_fees("amazon_us", "charging", SUMMER_2025, unit_volume=0.5)
    assert given_volume.storage_for_month(1) == approx(0.39)  # 0.78 * 0.5
    assert given_volume.storage_for_month(12) == approx(1.20)  # 2.40 * 0.5
    assert "unit_volume" not in given_volume.assumed
    de = resolve_fees("amazon_de", "charging", SUMMER_2025, unit_volume=0.001)
    assert de.storage_for_month(10) == approx(0.0396)  # EUR 39.60 per m3 * 0.001 m3
    # A unit-day costs the month's fee over the days of the month (the kernel rule).
    assert fee_rules.storage_fee_per_unit_day(given_volume.storage_array(), 11, 30) == approx(2.40 * 0.5 / 30)


def test_inbound_placement_and_marketplace_payment_fee():
    terms = resolve_fees("amazon_us", "charging", SUMMER_2025)
    assert terms.inbound_placement_per_unit == approx(0.27)
    assert terms.payment_fee(40.0) == 0.0  # the referral fee covers payment processing


def test_own_site_card_fees():
    stripe = resolve_fees("stripe_us", "whatever", SUMMER_2025)
    assert stripe.payment_fee(40.0) == approx(1.46)  # 0.029 * 40 + 0.30
    assert stripe.referral_fee(40.0) == 0.0 and stripe.fulfilment_fee(40.0) == 0.0
    eea = resolve_fees("stripe_eea", "charging", SUMMER_2025)
    assert (eea.currency, eea.payment_fee(30.0)) == ("EUR", approx(0.70))  # 0.015 * 30 + 0.25
    shopify = resolve_fees("shopify_payments_us", "audio", SUMMER_2025)
    assert shopify.payment_fee(100.0) == approx(3.20)  # 0.029 * 100 + 0.30
    assert shopify.payment_fee_refunded_on_return is False
    assert fee_rules.payment_fee(0.0, 0.029, 0.30) == 0.0  # no sale, no fee


def test_quote_sale_sums_the_lines():
    quote = quote_sale("amazon_us", "charging", 120.0, SUMMER_2025)
    # referral 16.60 + fulfilment 4.60 + inbound 0.27 + payment 0 = 21.47
    assert quote.referral == approx(16.60) and quote.per_unit_sold == approx(21.47)
    assert [line[3] for line in quote.referral_lines] == [approx(15.00), approx(1.60)]
    assert quote.refund_admin == approx(3.32) and quote.referral_refund == approx(13.28)  # 0.2 * 16.60
    assert not quote.referral_minimum_applies
    assert quote_sale("amazon_us", "charging", 1.5, SUMMER_2025).referral_minimum_applies
    json.dumps(quote.to_dict())  # JSON-ready: inf bounds as None


# --------------------------------------------------------------------------------------
# The numba rules against an independent reference
# --------------------------------------------------------------------------------------


def _reference_marginal(price: Fraction, tiers: list[tuple[Fraction | None, Fraction]], minimum: Fraction) -> Fraction:
    """Exact rational arithmetic, tier by tier, written apart from the kernel."""
    fee, lower = Fraction(0), Fraction(0)
    for upper, rate in tiers:
        top = price if upper is None else min(price, upper)
        if top > lower:
            fee += rate * (top - lower)
        if upper is not None:
            lower = upper
    return max(fee, minimum)


US_ACCESSORIES = [(Fraction(100), Fraction(15, 100)), (None, Fraction(8, 100))]
THREE_TIERS = [(Fraction(250), Fraction(15, 100)), (Fraction(1000), Fraction(10, 100)), (None, Fraction(6, 100))]


def _array(tiers):
    return np.array([(math.inf if u is None else float(u), float(r)) for u, r in tiers], dtype=np.float64)


@settings(max_examples=200, deadline=None)
@given(cents=st.integers(min_value=0, max_value=500_000), tiers=st.sampled_from([US_ACCESSORIES, THREE_TIERS]))
def test_marginal_rule_matches_exact_reference(cents, tiers):
    price = Fraction(cents, 100)
    expected = _reference_marginal(price, tiers, Fraction(30, 100))
    got = fee_rules.referral_fee(float(price), _array(tiers), 0.30, fee_rules.REFERRAL_MARGINAL)
    assert got == approx(float(expected), rel=1e-12, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(low=st.integers(min_value=0, max_value=300_000), step=st.integers(min_value=0, max_value=10_000))
def test_marginal_fee_is_continuous_and_non_decreasing(low, step):
    tiers = _array(US_ACCESSORIES)
    a = fee_rules.referral_fee(low / 100, tiers, 0.0, fee_rules.REFERRAL_MARGINAL)
    b = fee_rules.referral_fee((low + step) / 100, tiers, 0.0, fee_rules.REFERRAL_MARGINAL)
    assert a <= b + 1e-12 and b - a <= 0.15 * step / 100 + 1e-9  # no jump larger than the top rate


def test_whole_price_rule_jumps_at_bounds():
    tiers = _array([(Fraction(15), Fraction(5, 100)), (Fraction(20), Fraction(10, 100)), (None, Fraction(17, 100))])
    rule = fee_rules.REFERRAL_WHOLE_PRICE
    assert fee_rules.referral_fee(20.0, tiers, 0.0, rule) == approx(2.00)
    assert fee_rules.referral_fee(20.000001, tiers, 0.0, rule) == approx(3.40000017)


def test_banded_fee_bounds():
    bands = np.array([(10.0, 0.0, 1.0), (50.0, 1.0, 2.0), (math.inf, 1.0, 3.0)])
    assert [fee_rules.banded_fee(p, bands, 0.0) for p in (0.0, 9.99, 10.0, 50.0, 50.01)] == [1, 1, 2, 2, 3]
    assert fee_rules.banded_fee(60.0, bands, 0.10) == approx(3.3)


# --------------------------------------------------------------------------------------
# The shipped data
# --------------------------------------------------------------------------------------


def test_listing():
    names = {i.name: i for i in list_fee_schedules()}
    assert set(names) == {"amazon_us", "amazon_de", "stripe_us", "stripe_eea", "shopify_payments_us"}
    assert names["amazon_us"].currency == "USD" and names["amazon_de"].currency == "EUR"
    assert "electronics_accessories" in names["amazon_de"].categories


def test_every_shipped_fee_resolves_at_every_entry_start():
    # Each day a fee changes, every category x size tier still resolves and every field
    # names its sources.
    for info in list_fee_schedules():
        schedule = fee_schedule(info.name)
        days = sorted({e.start for _, e in schedule.entries()} | {e.end for _, e in schedule.entries() if e.end})
        for day in days:
            for category in schedule.categories or ["any"]:
                for tier in schedule.size_tiers or [None]:
                    terms = resolve_fees(schedule, category, day, tier)
                    assert all(terms.sources.get(f) for f in ("referral_tiers", "payment_fee_rate"))
        for _, entry in schedule.entries():
            assert all(key in schedule.sources for key in entry.source)
            assert not entry.assumed or entry.note, "an assumed figure says why in its note"


def test_derived_figures_follow_their_stated_rule():
    # amazon_us small_standard: 2025 below-10 band = 3.50 - 0.77; 2026 = 2025 + Amazon's
    # announced average change (below 10 +0.12, 10-50 +0.25, above 50 +0.51).
    tier = fee_schedule("amazon_us").size_tiers["small_standard"]
    y2025, y2026, fuel = (e.bands for e in tier.fulfilment)
    assert y2025[0].fee == approx(y2025[1].fee - 0.77)
    expected = [approx(y2025[0].fee + 0.12), approx(y2025[1].fee + 0.25), approx(y2025[1].fee + 0.51)]
    assert [b.fee for b in y2026] == expected
    assert fuel == y2026
    large = fee_schedule("amazon_us").size_tiers["large_standard"]
    l2025, l2026, _ = (e.bands for e in large.fulfilment)
    assert l2025[0].fee == approx(l2025[1].fee - 0.77)
    assert l2026[0].fee == l2025[0].fee and l2026[2].fee == approx(l2026[1].fee + 0.31)
    # amazon_de: the Q4 2025 entry = the base + EUR 0.26.
    for tier in fee_schedule("amazon_de").size_tiers.values():
        base, peak, _ = (e.bands[0].fee for e in tier.fulfilment)
        assert peak == approx(base + 0.26)


# --------------------------------------------------------------------------------------
# Validation and errors
# --------------------------------------------------------------------------------------


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(FeeError, match=r"unknown fee schedule 'amazon_fr'; known schedules: amazon_de, amazon_us"):
        resolve_fees("amazon_fr", "charging", SUMMER_2025)
    with pytest.raises(
        FeeError,
        match=r"unknown fee category 'toys' .* known categories: apparel, "
        r"consumer_electronics, electronics_accessories \(aliases: audio, charging",
    ):
        resolve_fees("amazon_us", "toys", SUMMER_2025)
    with pytest.raises(FeeError, match=r"unknown size tier 'huge' .* known size tiers: large_standard, small_standard"):
        resolve_fees("amazon_us", "charging", SUMMER_2025, "huge")
    with pytest.raises(FeeError, match=r"no referral \(electronics_accessories\) fee in force on 2024-12-31"):
        resolve_fees("amazon_us", "charging", "2024-12-31")
    with pytest.raises(FeeError, match="YYYY-MM-DD"):
        resolve_fees("amazon_us", "charging", "June 2025")
    with pytest.raises(FeeError, match="price must be a finite number >= 0"):
        quote_sale("amazon_us", "charging", -1, SUMMER_2025)


def test_check_coverage_for_a_horizon():
    check_coverage("amazon_us", "charging", "2025-01-01", "2026-12-31", "small_standard")
    check_coverage("amazon_de", "audio", "2025-01-01", "2027-06-30")
    with pytest.raises(FeeError, match="in force on 2024-12-01"):
        check_coverage("amazon_us", "charging", "2024-12-01", "2025-12-31")
    with pytest.raises(FeeError, match="unknown fee category 'toys'"):
        check_coverage("amazon_us", "toys", "2025-01-01", "2025-12-31")


MINIMAL = """
sources:
  s1: {title: T, url: https://example.org, publisher: P, read: 2026-12-02}
schedules:
  mine:
    kind: marketplace
    marketplace: example
    region: US
    currency: USD
    referral_base: net_of_sales_tax
    default_size_tier: box
    categories:
      gadgets:
        description: d
        aliases: [widgets]
        referral:
          - {from: 2025-01-01, rule: marginal, tiers: [{up_to: 50, rate: 0.1}, {up_to: null, rate: 0.05}],
             minimum: 0.5, source: s1, checked: 2026-12-02, confidence: M}
        returns_processing:
          - {from: 2025-01-01, per_unit: 0, source: s1, checked: 2026-12-02, confidence: L, assumed: true, note: n}
    size_tiers:
      box:
        description: d
        storage_class: standard
        unit_volume: 1.0
        volume_unit: ft3
        unit_note: one cubic foot
        fulfilment:
          - {from: 2025-01-01, fee_per_unit: 2.0, source: s1, checked: 2026-12-02, confidence: M}
        inbound_placement:
          - {from: 2025-01-01, per_unit: 0.1, source: s1, checked: 2026-12-02, confidence: M}
    storage:
      standard:
        - {from: 2025-01-01, per: m3, off_peak: 10, peak: 20, peak_months: [12],
           source: s1, checked: 2026-12-02, confidence: M}
    refund_admin:
      - {from: 2025-01-01, rate: 0.2, maximum: 5, source: s1, checked: 2026-12-02, confidence: M}
    payment:
      - {from: 2025-01-01, rate: 0, fixed: 0, source: s1, checked: 2026-12-02, confidence: M}
"""


def _write(tmp_path, text):
    path = tmp_path / "fees.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_own_file_resolves_and_converts_volume_units(tmp_path):
    schedule = read_fee_file(_write(tmp_path, MINIMAL))["mine"]
    terms = resolve_fees(schedule, "widgets", "2025-03-01")
    assert terms.referral_fee(80.0) == approx(6.5)  # 0.1 * 50 + 0.05 * 30
    assert terms.referral_fee(2.0) == approx(0.5)  # 0.2 < minimum 0.5
    assert terms.fulfilment_fee_per_unit == 2.0
    # 1 ft3 = 0.3048**3 m3 = 0.0283168 m3: EUR 10 per m3 -> 0.283168 per unit-month
    assert terms.storage_for_month(3) == approx(10 * 0.3048**3) and terms.storage_for_month(12) == approx(
        20 * 0.3048**3
    )


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            "{up_to: 50, rate: 0.1}, {up_to: null, rate: 0.05}",
            "{up_to: 50, rate: 0.1}, {up_to: 40, rate: 0.05}",
            "the last referral tier must be open",
        ),
        (
            "{up_to: 50, rate: 0.1}, {up_to: null, rate: 0.05}",
            "{up_to: 50, rate: 0.1}, {up_to: 40, rate: 0.05}, {up_to: null, rate: 0.01}",
            "strictly increasing up_to",
        ),
        (
            "source: s1, checked: 2026-12-02, confidence: M}\n        returns",
            "source: nowhere, checked: 2026-12-02, confidence: M}\n        returns",
            "unknown source nowhere",
        ),
        (
            "default_size_tier: box",
            "default_size_tier: crate",
            "default_size_tier 'crate' is not one of the size tiers",
        ),
        (
            "confidence: M}\n    payment:",
            "confidence: M}\n      - {from: 2025-06-01, rate: 0.1, maximum: 5, source: s1, checked: 2026-12-02, "
            "confidence: M}"
            "\n    payment:",
            "refund_admin: entries 2025-01-01 to open and 2025-06-01 to open overlap",
        ),
        ("rate: 0.2, maximum: 5", "rate: 1.2, maximum: 5", "less than or equal to 1"),
    ],
)
def test_invalid_files_are_refused_with_the_reason(tmp_path, old, new, message):
    assert old in MINIMAL
    with pytest.raises(FeeError, match=message):
        read_fee_file(_write(tmp_path, MINIMAL.replace(old, new, 1)))


OTHER_CATEGORY = """      other:
        description: d
        aliases: [widgets]
        referral:
          - {from: 2025-01-01, rule: marginal, tiers: [{up_to: null, rate: 0.1}], minimum: 0,
             source: s1, checked: 2026-12-02, confidence: M}
        returns_processing:
          - {from: 2025-01-01, per_unit: 0, source: s1, checked: 2026-12-02, confidence: M}
"""


def test_check_coverage_finds_a_gap_between_entries(tmp_path):
    gap = MINIMAL.replace(
        "          - {from: 2025-01-01, rule: marginal,",
        "          - {from: 2025-07-01, rule: marginal, tiers: [{up_to: null, rate: 0.1}], minimum: 0,\n"
        "             source: s1, checked: 2026-12-02, confidence: M}\n"
        "          - {from: 2025-01-01, to: 2025-06-01, rule: marginal,",
        1,
    )
    schedule = read_fee_file(_write(tmp_path, gap))["mine"]
    check_coverage(schedule, "gadgets", "2025-01-01", "2025-05-31")
    with pytest.raises(FeeError, match=r"no referral \(gadgets\) fee in force on 2025-06-01"):
        check_coverage(schedule, "gadgets", "2025-01-01", "2025-12-31")


def test_alias_used_by_two_categories_is_refused(tmp_path):
    text = MINIMAL.replace("    size_tiers:", OTHER_CATEGORY + "    size_tiers:", 1)
    with pytest.raises(FeeError, match="alias 'widgets' is used by gadgets and other"):
        read_fee_file(_write(tmp_path, text))


# --------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------


def test_cli_list_show_quote(capsys):
    assert fees_cli.main(["fees", "list"]) == 0
    out = capsys.readouterr().out
    assert "amazon_us" in out and "amazon_de" in out and "stripe_eea" in out
    assert fees_cli.main(["fees", "list", "--json"]) == 0
    assert {row["name"] for row in json.loads(capsys.readouterr().out)} >= {"amazon_us", "amazon_de"}
    assert fees_cli.main(["fees", "show", "amazon_us", "--category", "charging", "--date", "2025-06-01"]) == 0
    out = capsys.readouterr().out
    assert "15% of the portion up to USD 100; 8% of any portion above USD 100" in out
    assert "source: Refund administration fee" in out and "apparel" not in out
    assert fees_cli.main(["fees", "show", "amazon_de", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["currency"] == "EUR" and data["sources"] and data["entries"]
    assert (
        fees_cli.main(
            ["fees", "quote", "amazon_us", "--category", "charging", "--price", "120", "--date", "2025-06-01"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "referral fee          USD      16.60" in out
    assert "15% x USD 100.00 = USD 15.00 + 8% x USD 20.00 = USD 1.60" in out
    assert (
        fees_cli.main(
            ["fees", "quote", "amazon_us", "--category", "charging", "--price", "1.5", "--date", "2025-06-01", "--json"]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["referral"] == approx(0.30) and data["referral_minimum_applies"] is True


def test_cli_registered_in_cbecsim(capsys):
    assert (
        main_cli.main(["fees", "quote", "stripe_us", "--category", "x", "--price", "40", "--date", "2025-06-01"]) == 0
    )
    assert "payment fee           USD       1.46" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fees", "show", "amazon_fr"], "error: unknown fee schedule 'amazon_fr'; known schedules: amazon_de,"),
        (
            ["fees", "quote", "amazon_fr", "--category", "charging", "--price", "5"],
            "error: unknown fee schedule 'amazon_fr'",
        ),
        (["fees", "quote", "amazon_us", "--category", "toys", "--price", "5"], "error: unknown fee category 'toys'"),
        (
            ["fees", "quote", "amazon_us", "--category", "charging", "--price", "five"],
            "error: --price must be a number",
        ),
        (
            ["fees", "quote", "amazon_us", "--category", "charging", "--price", "5", "--date", "2025-13-01"],
            "error: --date must be a date as YYYY-MM-DD",
        ),
        (["fees", "show", "amazon_us", "--category", "toys"], "error: unknown fee category 'toys'"),
        (["fees", "quote", "amazon_us", "--price", "5"], "error: the following arguments are required: --category"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(capsys, argv, message):
    assert fees_cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), captured.err
    assert captured.out == ""


def test_fee_terms_are_frozen():
    terms = resolve_fees("amazon_us", "charging", dt.date(2025, 6, 1))
    with pytest.raises(dataclasses_frozen_error()):
        terms.referral_min = 0.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        terms.sources["referral_tiers"] = "x"  # type: ignore[index]


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError
