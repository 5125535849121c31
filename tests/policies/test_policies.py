"""Policy library: worked examples computed by hand from the rules in FACTS.md.

Every expected number has its arithmetic beside it. Conventions: ``value`` is the customs
value of one item/parcel net of VAT; dates are the day of import; a regime entry is in
force on [from, to). "MFN 0%" is the library's stated assumption (MFN is not in FACTS.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import textwrap

import pytest

from cbecsim.config import DutyChange
from cbecsim.policies import (
    PolicyError,
    list_regime_sets,
    load_regime_set,
    quote_duty,
    read_regime_file,
    to_duty_changes,
)
from cbecsim.policies import cli as policies_cli

approx = pytest.approx


def duty(dest, origin, mode, value, currency, date, category=None, **kw):
    return quote_duty(dest, origin, mode, value, currency, date, category=category, **kw).duty


# --------------------------------------------------------------------------------------
# United States
# --------------------------------------------------------------------------------------

# Rates used below (sources in policies/data/us.yaml): HTSUS MFN 8504.40.95 Free,
# 8518.30.20 Free, 8507.60.00 3.4%; Section 301 List 3 25% (charging), List 4A 7.5%
# (audio; batteries until 2025-12-31, 25% from 2026-01-01); IEEPA on CN/HK: fentanyl 10%
# (02-04), 20% (03-04), 10% (Busan, 11-10); reciprocal 10% baseline (04-05, EO 14257),
# 84% (04-09, EO 14259), 125% (04-10, EO 14266), 10% (05-14, EO 14298); Section 122 10%
# (2026-02-24 .. 07-24).


@pytest.mark.parametrize(
    "day, expected",
    [
        ("2025-05-01", 0.0),  # CN de minimis still applies: 25 <= 800 -> no duty
        (
            "2025-05-02",
            42.50,
        ),  # de minimis ends for CN (EO 14256): 301 25% + fentanyl 20% + reciprocal 125% = 170%; 1.70 * 25
        ("2025-05-03", 42.50),
        ("2025-05-13", 42.50),  # day before Geneva
        ("2025-05-14", 13.75),  # Geneva: 25 + 20 + 10 = 55%; 0.55 * 25 = 13.75
        ("2025-05-15", 13.75),
        ("2025-11-09", 13.75),  # day before Busan
        ("2025-11-10", 11.25),  # Busan: 25 + fentanyl 10 + reciprocal 10 = 45%; 0.45 * 25 = 11.25
        ("2025-11-11", 11.25),
        ("2026-01-01", 11.25),  # us_2026 continues the Busan rates
        ("2026-02-23", 11.25),  # day before IEEPA collection ends (CSMS 67834313)
        ("2026-02-24", 8.75),  # Section 122 10%: 25 + 10 = 35%; 0.35 * 25 = 8.75
        ("2026-02-25", 8.75),
        ("2026-07-23", 8.75),  # last day of Section 122 (ends 2026-07-24 12:01 a.m.)
    ],
)
def test_us_parcel_cn_chargers_usd25(day, expected):
    assert duty("US", "CN", "parcel", 25, "USD", day, "charging") == approx(expected)


@pytest.mark.parametrize(
    "day, expected",
    [
        ("2025-01-01", 2.50),  # Section 301 List 3 only (MFN 8504.40.95 Free): 0.25 * 10 = 2.50
        ("2025-02-03", 2.50),
        ("2025-02-04", 3.50),  # + fentanyl 10%: 0.35 * 10
        ("2025-03-03", 3.50),
        ("2025-03-04", 4.50),  # fentanyl 20%: 0.45 * 10
        ("2025-04-04", 4.50),
        ("2025-04-05", 5.50),  # + 10% reciprocal baseline from 2025-04-05 (EO 14257): 0.25+0.20+0.10 = 0.55 * 10
        ("2025-04-07", 5.50),  # the review's case: chargers 55% on 2025-04-07, not 45%
        ("2025-04-08", 5.50),
        ("2025-04-09", 12.90),  # reciprocal 84% (34% raised to 84% at the same 12:01 a.m.): 0.25+0.20+0.84 = 1.29 * 10
        ("2025-04-10", 17.00),  # reciprocal 125%: 0.25+0.20+1.25 = 1.70 * 10
        ("2025-05-01", 17.00),  # bulk: no de minimis even before 2025-05-02
        ("2025-05-13", 17.00),
        ("2025-05-14", 5.50),  # Geneva: 0.25+0.20+0.10 = 0.55 * 10
        ("2025-11-09", 5.50),
        ("2025-11-10", 4.50),  # Busan: 0.25+0.10+0.10 = 0.45 * 10
        ("2026-02-23", 4.50),
        ("2026-02-24", 3.50),  # Section 122: 0.25+0.10 = 0.35 * 10
        ("2026-02-25", 3.50),
    ],
)
def test_us_bulk_cn_chargers_import_value_usd10(day, expected):
    assert duty("US", "CN", "bulk", 10, "USD", day, "charging") == approx(expected)


@pytest.mark.parametrize(
    "day, category, expected",
    [
        ("2025-01-01", "audio", 3.00),  # List 4A 7.5% (MFN 8518.30.20 Free): 0.075 * 40 = 3.00
        ("2025-05-14", "audio", 15.00),  # 7.5 + 20 + 10 = 37.5%: 0.375 * 40
        ("2026-02-24", "audio", 7.00),  # 7.5 + Section 122 10 = 17.5%: 0.175 * 40
        # Power banks, HTSUS 8507.60.0020: MFN 3.4% + Section 301 7.5% (List 4A) in 2025 ...
        ("2025-01-01", "batteries", 4.36),  # (0.034 + 0.075) * 40 = 4.36
        ("2025-12-31", "batteries", 12.36),  # + fentanyl 10 + reciprocal 10: (0.034+0.075+0.20) * 40 = 12.36
        # ... Section 301 on lithium-ion non-EV batteries 25% from 2026-01-01 (four-year review)
        ("2026-01-01", "batteries", 19.36),  # (0.034 + 0.25 + 0.20) * 40 = 19.36
        ("2026-02-24", "batteries", 15.36),  # (0.034 + 0.25 + 0.10 Section 122) * 40 = 15.36
    ],
)
def test_us_bulk_cn_audio_and_batteries(day, category, expected):
    assert duty("US", "CN", "bulk", 40, "USD", day, category) == approx(expected)


def test_us_category_without_301_mapping_gets_ieepa_only_and_says_so():
    # 2025-05-14 parcel, no Section 301 layer for 'toys' (MFN assumed 0%): fentanyl 20 + reciprocal 10
    # = 30%; 0.30 * 25 = 7.50
    quote = quote_duty("US", "CN", "parcel", 25, "USD", "2025-05-14", category="toys")
    assert quote.duty == approx(7.50)
    assert "not mapped" in quote.rule and "MFN 0% (assumed)" in quote.rule
    no_category = quote_duty("US", "CN", "parcel", 25, "USD", "2025-05-14")
    assert no_category.duty == approx(7.50)
    assert "no category given" in no_category.rule


def test_us_de_minimis_800_is_inclusive_and_bulk_is_never_exempt():
    # 2025-04-10 (CN de minimis still on): 800.00 <= 800 -> exempt ("valued at $800 or less")
    assert duty("US", "CN", "parcel", 800, "USD", "2025-04-10", "charging") == 0.0
    # 800.01 > 800 -> all duties: 1.70 * 800.01 = 1360.017
    assert duty("US", "CN", "parcel", 800.01, "USD", "2025-04-10", "charging") == approx(1360.017)
    # Same day, same USD 10 goods: a parcel is exempt, a bulk import pays 170% = 17.00
    assert duty("US", "CN", "parcel", 10, "USD", "2025-04-10", "charging") == 0.0
    assert duty("US", "CN", "bulk", 10, "USD", "2025-04-10", "charging") == approx(17.00)
    bulk = quote_duty("US", "CN", "bulk", 10, "USD", "2025-04-10", category="charging")
    assert not any(line.kind == "exemption" for line in bulk.breakdown)
    assert "bulk import, always dutiable" in bulk.rule


def test_us_hong_kong_pays_ieepa_but_not_section_301():
    # HK: IEEPA as China (EO 14256 'products of the PRC (which include products of Hong Kong)'),
    # no Section 301 (CBP FAQ on EO 13936). 2025-05-02 parcel charger: (0.20 + 1.25) * 25 = 36.25
    assert duty("US", "HK", "parcel", 25, "USD", "2025-05-02", "charging") == approx(36.25)
    # Geneva, bulk: IEEPA 30% only: 0.30 * 10 = 3.00 (CN pays 5.50 with List 3)
    assert duty("US", "HK", "bulk", 10, "USD", "2025-05-14", "charging") == approx(3.00)


@pytest.mark.parametrize(
    "origin, day, expected",
    [
        # Vietnam, bulk USD 10 charger (MFN Free): reciprocal by date
        ("VN", "2025-04-04", 0.0),  # before the reciprocal duty
        ("VN", "2025-04-05", 1.00),  # 10% baseline: 0.10 * 10
        ("VN", "2025-04-09", 4.60),  # Annex I 46% for one day: 0.46 * 10
        ("VN", "2025-04-10", 1.00),  # paused back to 10% (CSMS 64701128)
        ("VN", "2025-08-06", 1.00),
        ("VN", "2025-08-07", 2.00),  # Annex I of 2025-07-31: 20%
        ("VN", "2026-02-23", 2.00),
        ("VN", "2026-02-24", 1.00),  # Section 122 10%
        # India: 25% from 08-07, + 25% Russian-oil duty from 08-27, that duty ends 2026-02-07
        ("IN", "2025-08-07", 2.50),
        ("IN", "2025-08-27", 5.00),
        ("IN", "2026-02-06", 5.00),
        ("IN", "2026-02-07", 2.50),
        ("IN", "2026-02-24", 1.00),
        # Mexico, USMCA-qualifying goods: no IEEPA duty, exempt from Section 122, MFN Free (S)
        ("MX", "2025-05-01", 0.0),
        ("MX", "2026-03-01", 0.0),
        # Transshipped goods (user code XT): 40% in lieu of the reciprocal rate from 2025-08-07
        ("XT", "2025-08-06", 1.00),  # before: the rest-of-world fallback, 10%
        ("XT", "2025-08-07", 4.00),
        ("XT", "2026-02-24", 1.00),
        # Rest of the world (DE): the 10% baseline, then Section 122
        ("DE", "2025-04-04", 0.0),
        ("DE", "2025-04-05", 1.00),
        ("DE", "2025-12-31", 1.00),
        ("DE", "2026-02-24", 1.00),
    ],
)
def test_us_bulk_by_origin(origin, day, expected):
    assert duty("US", origin, "bulk", 10, "USD", day, "charging") == approx(expected)


def test_us_mexico_without_usmca_is_an_example_set():
    # Non-qualifying goods: IEEPA 25% on Mexico from 2025-03-04 (EO 14194): 0.25 * 10 = 2.50
    sets = ["us_2025_mx_non_usmca_example"]
    assert duty("US", "MX", "bulk", 10, "USD", "2025-03-03", "charging", regime_sets=sets) == 0.0
    assert duty("US", "MX", "bulk", 10, "USD", "2025-03-04", "charging", regime_sets=sets) == approx(2.50)
    # 2026 from 02-24: no USMCA exemption from the surcharge: 0.10 * 10 = 1.00
    assert duty(
        "US", "MX", "bulk", 10, "USD", "2026-03-01", "charging", regime_sets=["us_2026_mx_non_usmca_example"]
    ) == approx(1.00)
    # The same set treats CN exactly like us_2025 (entries shared)
    assert duty("US", "CN", "bulk", 10, "USD", "2025-05-14", "charging", regime_sets=sets) == approx(5.50)


@pytest.mark.parametrize(
    "day, value, expected",
    [
        ("2025-08-28", 25, 0.0),  # other origins: de minimis until 2025-08-29, 25 <= 800
        ("2025-08-28", 900, 90.0),  # 900 > 800: the 10% baseline, 0.10 * 900 (MFN assumed 0% for 'all')
        ("2025-08-29", 25, 2.50),  # de minimis suspended (EO 14324): 0.10 * 25
        ("2026-02-23", 25, 2.50),
        ("2026-02-24", 25, 2.50),  # Section 122 10%
    ],
)
def test_us_parcel_other_origin(day, value, expected):
    assert duty("US", "DE", "parcel", value, "USD", day) == approx(expected)


def test_us_other_origin_de_minimis_suspension_is_visible_in_the_rule():
    before = quote_duty("US", "DE", "parcel", 25, "USD", "2025-08-28")
    after = quote_duty("US", "DE", "parcel", 25, "USD", "2025-08-29")
    assert [line.kind for line in before.breakdown] == ["exemption"]
    assert "de minimis: value at or under USD 800" in before.rule
    assert "does not apply" in after.rule and after.entry_id == "row-parcel-bulk-reciprocal-10"


@pytest.mark.parametrize(
    "day, value, method, expected, chosen",
    [
        ("2025-05-01", 25, None, 0.0, "de minimis"),  # 25 <= 800, CN de minimis until 05-02
        ("2025-05-02", 25, None, 30.00, "ad valorem option"),  # default election ad valorem: 1.20 * 25
        ("2025-05-02", 25, "specific", 100.00, "specific option"),  # USD 100 per package
        ("2025-05-02", 500, "cheapest_per_parcel", 100.00, "specific option"),  # min(600, 100)
        ("2025-05-14", 25, None, 13.50, "ad valorem option"),  # 0.54 * 25
        ("2025-05-14", 500, None, 270.00, "ad valorem option"),  # the election holds for dear parcels too
        ("2025-05-14", 500, "cheapest_per_parcel", 100.00, "specific option"),  # min(270, 100)
        ("2025-08-29", 25, None, 7.50, "method A"),  # A: IEEPA 30% * 25
        ("2025-08-29", 25, "specific", 200.00, "method B"),  # B: 30% > 25% -> USD 200
        ("2025-08-29", 1000, "cheapest_per_parcel", 200.00, "method B"),  # min(300, 200)
        ("2025-11-10", 25, None, 5.00, "method A"),  # A: IEEPA 20% * 25
        ("2025-11-10", 25, "specific", 160.00, "method B"),  # B: 16-25% band -> USD 160
        ("2026-02-23", 1000, "cheapest_per_parcel", 160.00, "method B"),
        ("2026-02-24", 25, None, 2.50, "Section 122"),  # postal duty = the surcharge rate (EO 14388): 0.10 * 25
        ("2026-02-25", 25, "specific", 2.50, "not offered"),  # no specific method any more
    ],
)
def test_us_postal_cn_by_election(day, value, method, expected, chosen):
    quote = quote_duty("US", "CN", "postal", value, "USD", day, category="charging", postal_method=method)
    assert quote.duty == approx(expected)
    assert chosen in quote.rule


def test_us_postal_rule_names_the_election_and_its_basis():
    quote = quote_duty("US", "CN", "postal", 25, "USD", "2025-06-01")
    assert quote.rule.startswith("US postal, CN, 2025-06-01: ")
    assert "54% of value (ad valorem option" in quote.rule and "default election" in quote.rule
    assert "assumption" in quote.rule and quote.postal_method == "ad_valorem"
    # A postal quote pays the postal duty only, never the Section 301 layer nor entry fees
    assert quote.fees == 0.0 and not any("301" in line.basis for line in quote.breakdown)


@pytest.mark.parametrize(
    "origin, ad_valorem, specific",
    [
        ("VN", 5.00, 160.0),  # IEEPA 20%: A 0.20 * 25; B 16-25% band
        ("IN", 12.50, 200.0),  # IEEPA 50%: A 0.50 * 25; B above 25%
        ("DE", 2.50, 80.0),  # IEEPA 10%: A 0.10 * 25; B under 16%
        ("MX", 0.0, 80.0),  # USMCA goods, IEEPA 0%: A 0; B under 16% -> USD 80
        ("XT", 10.00, 200.0),  # transshipment 40%
    ],
)
def test_us_postal_other_origins_after_august(origin, ad_valorem, specific):
    assert duty("US", origin, "postal", 25, "USD", "2025-09-01") == approx(ad_valorem)
    assert duty("US", origin, "postal", 25, "USD", "2025-09-01", postal_method="specific") == approx(specific)


def test_us_postal_before_may_follows_parcel_rules_above_de_minimis():
    # 2025-04-20, USD 900 postal item: above 800 -> 1.70 * 900 = 1530 (no postal options yet)
    assert duty("US", "CN", "postal", 900, "USD", "2025-04-20", "charging") == approx(1530.0)


def test_us_entry_and_broker_fees_on_dutiable_parcels_only():
    # A dutiable CN parcel on 2025-05-02 pays the FY2025 informal-entry MPF USD 2.62 (FR Doc 2024-15990)
    assert quote_duty("US", "CN", "parcel", 25, "USD", "2025-05-02", category="charging").fees == approx(2.62)
    # An exempt parcel (DE, 2025-08-28, 25 <= 800) needs no entry: no fee
    assert quote_duty("US", "DE", "parcel", 25, "USD", "2025-08-28").fees == 0.0
    # From 2025-09-08 the UPS processing fee USD 2.50 (L); from 2025-10-01 MPF USD 2.69 (FR Doc 2025-13869)
    assert quote_duty("US", "DE", "parcel", 25, "USD", "2025-09-08").fees == approx(2.62 + 2.50)
    assert quote_duty("US", "DE", "parcel", 25, "USD", "2025-10-01").fees == approx(2.69 + 2.50)
    assert quote_duty("US", "DE", "parcel", 25, "USD", "2026-03-01").fees == approx(2.69 + 2.50)
    # Never on bulk
    assert quote_duty("US", "CN", "bulk", 10, "USD", "2025-10-01").fees == 0.0


def test_us_items_spread_duty_over_units():
    # 4 chargers in one USD 100 parcel on 2025-05-14: 0.55 * 100 = 55 per parcel, 13.75 per unit
    quote = quote_duty("US", "CN", "parcel", 100, "USD", "2025-05-14", category="charging", items=4)
    assert (quote.duty, quote.duty_per_unit) == approx((55.0, 13.75))
    # Postal specific duty is per package, whatever the units: USD 100 / 4 = 25 per unit
    postal = quote_duty("US", "CN", "postal", 100, "USD", "2025-05-14", items=4, postal_method="specific")
    assert (postal.duty, postal.duty_per_unit) == approx((100.0, 25.0))


def test_us_section_122_drawback_and_announced():
    quote = quote_duty("US", "CN", "bulk", 10, "USD", "2026-03-01", category="charging")
    entry = next(e for e in load_regime_set("us_2026").entries if e.id == quote.entry_id)
    assert entry.duty_drawback_rate == 0.99  # CSMS 67844987: drawback available; 99% (19 U.S.C. 1313)
    assert quote.announced == dt.date(2026, 2, 20)  # the proclamation of 2026-02-20
    assert "CSMS 67844987" in quote.primary_source


def test_us_section_122_15pct_only_in_example_set():
    # Default: 0.25 + 0.10 = 0.35 * 10 = 3.50; example: 0.25 + 0.15 = 0.40 * 10 = 4.00
    assert duty("US", "CN", "bulk", 10, "USD", "2026-03-01", "charging") == approx(3.50)
    example = quote_duty(
        "US", "CN", "bulk", 10, "USD", "2026-03-01", category="charging", regime_sets=["us_2026_s122_15pct_example"]
    )
    assert example.duty == approx(4.00)
    assert example.confidence == "L"


def test_us_coverage_ends_on_2026_07_24_and_says_why():
    with pytest.raises(PolicyError, match="outside the library's coverage for US.*NOT KNOWN"):
        quote_duty("US", "CN", "parcel", 25, "USD", "2026-07-24", category="charging")
    # The unconfirmed continuation: MFN + Section 301 only, de minimis suspended by CBP rule
    later = quote_duty(
        "US", "CN", "parcel", 25, "USD", "2026-08-01", category="charging", regime_sets=["us_2026h2_mfn301_example"]
    )
    assert later.duty == approx(6.25) and later.confidence == "L"  # 0.25 * 25


# --------------------------------------------------------------------------------------
# European Union
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day, value, headings, expected_duty, expected_vat",
    [
        ("2025-12-31", 40, 1, 0.0, 8.52),  # relief: 40 <= 150; VAT 0.213 * 40 = 8.52 at checkout
        ("2026-01-01", 40, 1, 0.0, 8.52),  # eu_2026 starts, same rule
        ("2026-06-30", 40, 1, 0.0, 8.52),  # last day of the relief
        ("2026-07-01", 40, 1, 3.0, 8.52),  # fixed duty EUR 3 x 1 heading; VAT on value (IOSS)
        ("2026-07-01", 40, 2, 6.0, 8.52),  # 1 silk + 2 wool blouses = 2 headings: 3 x 2 = 6
        ("2026-07-02", 40, 1, 3.0, 8.52),
        ("2026-07-01", 149.99, 1, 3.0, 31.94787),  # 149.99 <= 150 -> EUR 3; 0.213 * 149.99 = 31.94787
        # 150.00 pays the EUR 3: Reg. (EU) 2026/382 covers consignments "not exceeding EUR 150"
        # (the Council's press release said "less than"). VAT: IOSS at checkout, 0.213 * 150 = 31.95
        ("2026-07-01", 150, 1, 3.0, 31.95),
        # 150.01: above the limit, the normal tariff (MFN 0% assumed); import VAT 0.213 * (150.01 + 0)
        ("2026-07-01", 150.01, 1, 0.0, 31.95213),
        ("2026-06-30", 150, 1, 0.0, 31.95),  # before: relief covers <= 150 -> exempt
        ("2026-06-30", 150.01, 1, 0.0, 31.95213),  # above relief: MFN 0%; import VAT 0.213 * (150.01 + 0)
        ("2028-06-30", 40, 1, 3.0, 8.52),  # last day of the interim duty
    ],
)
def test_eu_parcel(day, value, headings, expected_duty, expected_vat):
    quote = quote_duty("EU", "CN", "parcel", value, "EUR", day, headings=headings)
    assert quote.duty == approx(expected_duty)
    assert quote.vat == approx(expected_vat)
    assert quote.fees == 0.0
    assert quote.total == approx(expected_duty + expected_vat)


def test_eu_boundary_rules_are_named():
    above = quote_duty("EU", "CN", "parcel", 150.01, "EUR", "2026-07-01")
    assert "not at or under EUR 150" in above.rule and "normal tariff" in above.rule
    assert "of EUR 150 or less" in quote_duty("EU", "CN", "parcel", 150, "EUR", "2026-07-01").rule
    under = quote_duty("EU", "CN", "parcel", 40, "EUR", "2026-07-01", headings=2)
    assert "EUR 3 x 2 tariff sub-headings" in under.rule


def test_eu_fixed_duty_converts_at_the_dated_rate():
    # The FX series ends 2026-06 (Fed G.5 via FRED: 0.8684 EUR per USD), used for later days:
    # EUR 3 = 3 / 0.8684 = USD 3.45463; a USD 40 parcel = EUR 34.74 <= 150
    quote = quote_duty("EU", "CN", "parcel", 40, "USD", "2026-07-01")
    assert quote.duty == approx(3 / 0.8684)
    assert quote.fx_months == ["2026-06 (latest)"] and "FX: monthly average 2026-06 (latest)" in quote.rule
    # Not the old fixed 1.08 table (USD 3.24)
    assert quote.duty > 3.4


def test_eu_bulk_pays_no_fixed_duty_and_recoverable_import_vat():
    # Bulk (B2B) is never low-value relief nor fixed duty: MFN 0% (assumed) -> 0;
    # import VAT 0.213 * (40 + 0) = 8.52, recoverable
    quote = quote_duty("EU", "CN", "bulk", 40, "EUR", "2026-07-01")
    assert quote.duty == 0.0 and quote.vat == approx(8.52)
    assert "recoverable" in quote.rule
    assert not any("fixed duty" in line.basis for line in quote.breakdown)


def test_eu_end_of_coverage():
    with pytest.raises(PolicyError, match="outside the library's coverage for EU"):
        quote_duty("EU", "CN", "parcel", 40, "EUR", "2028-07-01")
    with pytest.raises(PolicyError, match="outside the library's coverage"):
        quote_duty("EU", "CN", "parcel", 40, "EUR", "2024-12-31")


@pytest.mark.parametrize(
    "day, value, mode, expected",
    [
        # (duty, vat, fees)
        ("2025-12-31", 40, "parcel", (0.0, 8.52, 0.0)),  # eu_2025: no fee yet; VAT 0.213 * 40
        ("2026-01-01", 40, "parcel", (0.0, 8.80, 2.0)),  # Italy: VAT 0.22 * 40 = 8.80; fee EUR 2
        ("2026-01-02", 40, "parcel", (0.0, 8.80, 2.0)),
        ("2026-07-01", 40, "parcel", (3.0, 8.80, 2.0)),  # + EUR 3 fixed duty
        ("2026-01-01", 150, "parcel", (0.0, 33.0, 2.0)),  # fee on consignments <= 150: 0.22 * 150 = 33
        ("2026-01-01", 150.01, "parcel", (0.0, 33.0022, 0.0)),  # no fee above 150; import VAT 0.22 * 150.01
        ("2026-01-01", 40, "bulk", (0.0, 8.80, 0.0)),  # no fee on bulk
    ],
)
def test_eu_italy_handling_fee(day, value, mode, expected):
    quote = quote_duty("EU", "CN", mode, value, "EUR", day, regime_sets=["eu_2025", "eu_2026_it"])
    assert (quote.duty, quote.vat, quote.fees) == approx(expected)


def test_eu_romania_handling_fee_in_ron_and_eur():
    # RON 25 per parcel; in EUR at the 2026-01 monthly rates (RON 4.3382 and EUR 0.8515 per USD):
    # 25 / 4.3382 USD = 25 * 0.8515 / 4.3382 EUR = 4.906989
    assert quote_duty("EU", "CN", "parcel", 40, "EUR", "2026-01-01", regime_sets="eu_2026_ro").fees == approx(
        25 * 0.8515 / 4.3382
    )
    # Quoted in RON the fee is exactly RON 25
    assert quote_duty("EU", "CN", "parcel", 200, "RON", "2026-01-01", regime_sets="eu_2026_ro").fees == approx(25.0)


# --------------------------------------------------------------------------------------
# United Kingdom
# --------------------------------------------------------------------------------------


def test_uk_gbp_135_boundary():
    # <= GBP 135: no duty, 20% VAT at the point of sale on the value: 0.20 * 135 = 27.00
    at = quote_duty("UK", "CN", "parcel", 135, "GBP", "2025-06-01")
    assert (at.duty, at.vat) == approx((0.0, 27.0))
    assert "de minimis" in at.rule and "point of sale" in at.rule
    # 135.01: relief no longer applies -> MFN 0% (assumed); import VAT 0.20 * (135.01 + 0) = 27.002
    above = quote_duty("UK", "CN", "parcel", 135.01, "GBP", "2025-06-01")
    assert (above.duty, above.vat) == approx((0.0, 27.002))
    assert "at import" in above.rule and not any(line.kind == "exemption" for line in above.breakdown)


def test_uk_dates_alias_and_bulk():
    with pytest.raises(PolicyError, match="outside"):
        quote_duty("UK", "CN", "parcel", 20, "GBP", "2024-12-31")
    assert quote_duty("GB", "CN", "parcel", 20, "GBP", "2025-01-01").vat == approx(4.0)  # 0.20 * 20
    assert quote_duty("UK", "CN", "parcel", 20, "GBP", "2029-02-28").vat == approx(4.0)
    with pytest.raises(PolicyError, match="outside"):
        quote_duty("UK", "CN", "parcel", 20, "GBP", "2029-03-01")
    bulk = quote_duty("UK", "CN", "bulk", 100, "GBP", "2025-06-01")
    assert (bulk.duty, bulk.vat) == approx((0.0, 20.0))  # MFN 0% assumed; VAT 0.20 * 100


def test_uk_boundary_with_a_user_mfn_rate(tmp_path):
    # A user file overriding the UK MFN to 10% makes the GBP 135 boundary visible in duty:
    # 135 -> exempt (0); 135.01 -> 0.10 * 135.01 = 13.501; bulk 100 -> 10.00 (never exempt)
    path = tmp_path / "uk_mfn.yaml"
    path.write_text(
        textwrap.dedent("""
        destination: UK
        currency: GBP
        sets:
          uk_mfn10_test:
            entries:
              - {id: parcel, from: 2025-01-01, to: null, origins: all, modes: [parcel, bulk],
                 de_minimis: {threshold: 135, currency: GBP, applies: true},
                 ad_valorem: [{basis: MFN, rate: 0.10}],
                 source: test, checked: 2026-11-25, confidence: L}
    """)
    )
    sets = read_regime_file(path)
    assert duty("UK", "CN", "parcel", 135, "GBP", "2025-06-01", regime_sets=[sets["uk_mfn10_test"]]) == 0.0
    assert duty("UK", "CN", "parcel", 135.01, "GBP", "2025-06-01", regime_sets=[sets["uk_mfn10_test"]]) == approx(
        13.501
    )
    assert duty("UK", "CN", "bulk", 100, "GBP", "2025-06-01", regime_sets=[sets["uk_mfn10_test"]]) == approx(10.0)


# --------------------------------------------------------------------------------------
# Brazil
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, expected_ii, expected_icms",
    [
        (40, 8.0, 48 * 0.17 / 0.83),  # II 0.20 * 40 = 8; ICMS (40 + 8) * 0.17 / 0.83 = 9.83133
        (50, 10.0, 60 * 0.17 / 0.83),  # <= 50: 0.20 * 50 = 10; ICMS 60 * 0.17 / 0.83 = 12.28916
        (50.01, 10.006, 60.016 * 0.17 / 0.83),  # > 50: 0.60 * 50.01 - 20 = 10.006; ICMS 60.016 * 0.2048193
        (100, 40.0, 140 * 0.17 / 0.83),  # 0.60 * 100 - 20 = 40; ICMS 140 * 0.17 / 0.83 = 28.67470
        (3000, 1780.0, 4780 * 0.17 / 0.83),  # 0.60 * 3000 - 20 = 1780
    ],
)
def test_brazil_remessa_conforme(value, expected_ii, expected_icms):
    quote = quote_duty("BR", "CN", "parcel", value, "USD", "2025-03-01")
    assert quote.duty == approx(expected_ii)
    assert quote.vat == approx(expected_icms)
    # Reading of "17% ICMS on a tax-inclusive base": ICMS is 17% of a base that includes
    # itself, ICMS = 0.17 * (value + II + ICMS)  <=>  ICMS = (value + II) * 0.17 / (1 - 0.17)
    assert quote.vat / (value + quote.duty + quote.vat) == approx(0.17)


def test_brazil_dates_currency_and_limits():
    with pytest.raises(PolicyError, match="outside"):
        quote_duty("BR", "CN", "parcel", 40, "USD", "2024-07-31")
    assert duty("BR", "CN", "parcel", 40, "USD", "2024-08-01") == approx(8.0)  # 0.20 * 40
    assert duty("BR", "CN", "parcel", 40, "USD", "2024-08-02") == approx(8.0)
    # BRL 100 = USD 18 (0.18 USD/BRL) <= 50: II 0.20 * 100 = BRL 20; ICMS 120 * 0.17 / 0.83 = 24.5783
    in_brl = quote_duty("BR", "CN", "parcel", 100, "BRL", "2025-03-01")
    assert (in_brl.duty, in_brl.vat) == approx((20.0, 120 * 0.17 / 0.83))
    assert duty("BR", "CN", "postal", 40, "USD", "2025-03-01") == approx(8.0)  # post follows the same rule
    with pytest.raises(PolicyError, match="above USD 3,000"):
        quote_duty("BR", "CN", "parcel", 3000.01, "USD", "2025-03-01")
    bulk = quote_duty("BR", "CN", "bulk", 100, "USD", "2025-03-01")  # MFN 0% assumed, no ICMS modelled
    assert (bulk.duty, bulk.vat) == (0.0, 0.0)


# --------------------------------------------------------------------------------------
# Mexico
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day, expected",
    [
        ("2025-01-01", 190.0),  # RGCE 2025 rule 3.7.35: 19% * MXN 1000
        ("2025-07-01", 190.0),  # the old library's 33.5% date was wrong
        ("2025-08-14", 190.0),
        ("2025-08-15", 335.0),  # Cuarta Resolucion (DOF 2025-07-28), in force 2025-08-15: 33.5% * 1000
        ("2025-12-31", 335.0),
    ],
)
def test_mexico_courier_cn(day, expected):
    assert duty("MX", "CN", "parcel", 1000, "MXN", day) == approx(expected)


def test_mexico_dates_scope_and_tmec():
    quote = quote_duty("MX", "CN", "parcel", 1000, "MXN", "2025-08-15")
    assert quote.confidence == "H" and quote.announced == dt.date(2025, 7, 28)
    with pytest.raises(PolicyError, match="outside"):
        quote_duty("MX", "CN", "parcel", 1000, "MXN", "2024-12-31")
    with pytest.raises(PolicyError, match="outside.*2026 were not checked"):
        quote_duty("MX", "CN", "parcel", 1000, "MXN", "2026-01-01")
    # Every origin without T-MEC treatment pays the global rate (not CN only): 0.335 * 1000
    assert duty("MX", "DE", "parcel", 1000, "MXN", "2025-09-01") == approx(335.0)
    # T-MEC goods from the US, values in USD: <= 50 exempt; 50-117 17%; above 19%
    assert duty("MX", "US", "parcel", 50, "USD", "2025-09-01") == 0.0
    assert duty("MX", "US", "parcel", 100, "USD", "2025-09-01") == approx(17.0)
    assert duty("MX", "US", "parcel", 200, "USD", "2025-09-01") == approx(38.0)
    with pytest.raises(PolicyError, match="above USD 2,500"):
        quote_duty("MX", "CN", "parcel", 2500.01, "USD", "2025-09-01")
    assert duty("MX", "CN", "bulk", 1000, "MXN", "2025-07-01") == 0.0  # MFN 0% assumed


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dest="XX"), "unknown destination 'XX'"),
        (dict(date="2024-12-31"), "outside the library's coverage for US"),
        (dict(date="2026-07-24"), "outside the library's coverage for US"),
        (dict(value=-1), "value must be >= 0"),
        (dict(value=float("nan")), "finite"),
        (dict(headings=0), "headings must be >= 1"),
        (dict(mode="sea"), "unknown mode 'sea'"),
        (dict(currency="XYZ"), "unknown currency 'XYZ'"),
        (dict(items=0), "items must be >= 1"),
        (dict(items=2, headings=3), "headings .3. cannot exceed items .2."),
        (dict(mode="postal", postal_method="cheaper"), "unknown postal method 'cheaper'"),
        (dict(date="2025-13-01"), "YYYY-MM-DD"),
        (dict(origin="China"), "two-letter ISO"),
        (dict(regime_sets=["nope"]), "known sets: .*us_2025"),
        (dict(regime_sets=["eu_2026"]), "is for EU, not US"),
    ],
)
def test_bad_questions_raise_policy_error(kwargs, message):
    args = dict(dest="US", origin="CN", mode="parcel", value=25, currency="USD", date="2025-06-01")
    args.update(kwargs)
    with pytest.raises(PolicyError, match=message):
        quote_duty(**args)
    assert issubclass(PolicyError, ValueError)


# --------------------------------------------------------------------------------------
# Data files
# --------------------------------------------------------------------------------------


def test_every_entry_names_primary_source_checked_date_and_confidence():
    names = {info.name for info in list_regime_sets()}
    assert {"us_2025", "us_2026", "eu_2025", "eu_2026", "uk_2025", "mx_2025", "br_2024", "br_2025_icms20"} <= names
    for name in names:
        regime_set = load_regime_set(name)
        for entry in (*regime_set.entries, *regime_set.parcel_fees):
            assert entry.source.strip()
            # A primary source, or an explicit reason why none was located
            assert entry.primary_source and entry.primary_source.strip(), (name, entry.id)
            # Read for issue 14 (2026-12-02) or, for the national EU fees not re-read, at the first check
            assert entry.checked in {dt.date(2026, 12, 2), dt.date(2026, 11, 25)}, (name, entry.id)
            assert entry.confidence in {"H", "M", "L", "M-H", "L-M"}
            if entry.announced is not None:
                assert entry.announced <= entry.start, (name, entry.id)


def test_unconfirmed_15pct_section_122_is_not_in_default_sets():
    for info in list_regime_sets():
        rates = {
            layer.rate
            for e in load_regime_set(info.name).entries
            for layer in e.ad_valorem
            if layer.basis == "Section 122"
        }
        if info.status == "default":
            assert 0.15 not in rates
        if info.name == "us_2026_s122_15pct_example":
            assert info.status == "example" and rates == {0.15}


def test_list_regime_sets_reports_dates_and_counts():
    info = {i.name: i for i in list_regime_sets()}
    assert (info["us_2025"].destination, info["us_2025"].start, info["us_2025"].end) == (
        "US",
        dt.date(2025, 1, 1),
        dt.date(2026, 1, 1),
    )
    assert info["us_2025"].entries == len(load_regime_set("us_2025").entries)
    assert info["br_2024"].end is None and info["eu_2026_it"].member_state == "IT"


def test_unknown_set_lists_known_names():
    with pytest.raises(PolicyError, match="unknown regime set 'us_1999'; known sets: br_2024"):
        load_regime_set("us_1999")


OVERLAP = """
destination: US
currency: USD
sets:
  overlap_test:
    entries:
      - {id: first, from: 2025-01-01, to: 2025-03-01, origins: [CN], modes: [parcel, bulk],
         ad_valorem: [{basis: MFN, rate: 0.0}], source: test, checked: 2026-11-25, confidence: L}
      - {id: second, from: 2025-02-01, to: null, origins: [CN, VN], modes: [parcel],
         ad_valorem: [{basis: MFN, rate: 0.0}], source: test, checked: 2026-11-25, confidence: L}
"""


def test_overlapping_entries_raise_naming_both(tmp_path):
    path = tmp_path / "overlap.yaml"
    path.write_text(OVERLAP)
    with pytest.raises(PolicyError, match=r"'first' \(2025-01-01 to 2025-03-01\) and 'second'.*overlap"):
        read_regime_file(path)


def test_adjacent_entries_and_fallbacks_do_not_overlap(tmp_path):
    path = tmp_path / "ok.yaml"
    # 'second' starts the day 'first' ends (end excluded), and 'other' is the origins-all
    # fallback, which does not clash with entries naming CN.
    path.write_text(
        OVERLAP.replace("from: 2025-02-01", "from: 2025-03-01")
        + textwrap.indent(
            textwrap.dedent("""
        - {id: other, from: 2025-01-01, to: null, origins: all, modes: [parcel],
           ad_valorem: [{basis: MFN, rate: 0.05}], source: test, checked: 2026-11-25, confidence: L}
    """),
            "      ",
        )
    )
    sets = read_regime_file(path)
    assert [e.id for e in sets["overlap_test"].entries] == ["first", "second", "other"]
    # DE falls back to 'other': 0.05 * 100 = 5
    assert duty("US", "DE", "parcel", 100, "USD", "2025-06-01", regime_sets=[sets["overlap_test"]]) == approx(5.0)


def test_invalid_entry_is_reported_with_its_id(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(OVERLAP.replace("confidence: L}\n      - {id: second", "confidence: X}\n      - {id: second"))
    with pytest.raises(PolicyError, match=r"id first.*confidence"):
        read_regime_file(path)


# --------------------------------------------------------------------------------------
# Engine format
# --------------------------------------------------------------------------------------


def replay(changes, region, category, origin, kind, day):
    """The engine's rule (compile._regime_changes): apply changes in date order, list
    order within a date; a change touches matching (region, category, origin, kind)."""
    state = {
        "ad_valorem_rate": 0.0,
        "de_minimis": False,
        "de_minimis_threshold": 0.0,
        "low_value_duty_per_item": 0.0,
        "specific_duty_per_item": 0.0,
    }
    for change in sorted(changes, key=lambda c: c["date"]):  # stable: list order within a date
        if change["date"] > day:
            break
        if change["region"] != region:
            continue
        if "origins" in change and origin not in change["origins"]:
            continue
        if "categories" in change and category not in change["categories"]:
            continue
        if "kinds" in change and kind not in change["kinds"]:
            continue
        state.update({k: v for k, v in change["set"].items() if v is not None})
    return state


@pytest.mark.parametrize(
    "day, category, expected_rate",
    [
        ("2025-01-01", "charging", 0.25),  # 301 List 3
        ("2025-02-03", "charging", 0.25),
        ("2025-02-04", "charging", 0.35),  # + fentanyl 10
        ("2025-03-04", "charging", 0.45),  # fentanyl 20
        ("2025-04-05", "charging", 0.55),  # + reciprocal 10% baseline
        ("2025-04-09", "charging", 1.29),  # + reciprocal 84
        ("2025-04-10", "charging", 1.70),  # reciprocal 125
        ("2025-05-13", "charging", 1.70),
        ("2025-05-14", "charging", 0.55),  # Geneva
        ("2025-11-10", "charging", 0.45),  # Busan
        ("2025-05-14", "audio", 0.375),  # 7.5 + 20 + 10
        ("2025-05-14", "toys", 0.30),  # no 301 list mapped: 20 + 10
        ("2025-05-14", "batteries", 0.409),  # MFN 3.4 + 301 7.5 + 20 + 10
    ],
)
def test_to_duty_changes_replays_us_2025_ad_valorem(day, category, expected_rate):
    changes, unsupported = to_duty_changes(["us_2025"], ["US"])
    for kind in ("parcel", "bulk"):
        assert replay(changes, "US", category, "CN", kind, day)["ad_valorem_rate"] == approx(expected_rate)


def test_to_duty_changes_de_minimis_and_formats():
    changes, unsupported = to_duty_changes(["us_2025"], ["US"])
    for change in changes:
        DutyChange.model_validate(change)  # the engine's own config model accepts every change
    assert replay(changes, "US", "charging", "CN", "parcel", "2025-05-01")["de_minimis"] is True
    assert replay(changes, "US", "charging", "CN", "parcel", "2025-05-02")["de_minimis"] is False
    assert replay(changes, "US", "charging", "CN", "bulk", "2025-01-01")["de_minimis"] is False
    de = replay(changes, "US", "charging", "DE", "parcel", "2025-08-28")
    assert (de["de_minimis"], de["de_minimis_threshold"], de["ad_valorem_rate"]) == (True, 800.0, 0.10)
    assert replay(changes, "US", "charging", "DE", "parcel", "2025-08-29")["de_minimis"] is False
    # DE's fallback changes never overwrite CN's: CN still at 55% on 2025-09-01
    assert replay(changes, "US", "charging", "CN", "parcel", "2025-09-01")["ad_valorem_rate"] == approx(0.55)
    assert not any("postal duty options" in note for note in unsupported)  # emitted as kind postal
    assert any("2026-01-01" in note and "keeps the last regime" in note for note in unsupported)
    # An engine without the postal kind: nothing postal is emitted and the notes say so
    parcel_bulk, notes = to_duty_changes(["us_2025"], ["US"], kinds=("parcel", "bulk"))
    assert all("postal" not in change["kinds"] for change in parcel_bulk)
    assert any("postal duty options of 9 entries" in note for note in notes)


def test_to_duty_changes_matches_quotes_on_every_boundary():
    # Replayed rate x value must equal quote_duty's bulk duty on each regime date.
    changes, _ = to_duty_changes(["us_2025", "us_2026"], ["US"])
    days = sorted({c["date"] for c in changes})
    assert "2026-02-24" in days
    for day in days:
        for category in ("charging", "audio", "batteries", "toys"):
            for origin in ("CN", "HK", "VN", "IN", "MX", "XT", "DE"):
                rate = replay(changes, "US", category, origin, "bulk", day)["ad_valorem_rate"]
                assert rate * 100 == approx(duty("US", origin, "bulk", 100, "USD", day, category)), (
                    day,
                    category,
                    origin,
                )


def test_to_duty_changes_eu_fixed_duty_and_region_filter():
    changes, unsupported = to_duty_changes(["us_2025", "eu_2025", "eu_2026"], ["EU"])
    assert changes and {c["region"] for c in changes} == {"EU"}
    before = replay(changes, "EU", "charging", "CN", "parcel", "2026-06-30")
    after = replay(changes, "EU", "charging", "CN", "parcel", "2026-07-01")
    assert (before["de_minimis"], before["de_minimis_threshold"], before["low_value_duty_per_item"]) == (
        True,
        150.0,
        0.0,
    )
    assert (after["de_minimis"], after["de_minimis_threshold"], after["low_value_duty_per_item"]) == (True, 150.0, 3.0)
    assert (after["low_value_duty_per_heading"], after["low_value_duty_ioss_only"]) == (3.0, False)
    assert all(c["currency"] == "EUR" for c in changes if "parcel" in c["kinds"])
    assert replay(changes, "EU", "charging", "CN", "bulk", "2026-07-01")["de_minimis"] is False
    assert any("VAT 21.3%" in note for note in unsupported)


def test_to_duty_changes_reports_what_it_cannot_express():
    changes, unsupported = to_duty_changes(["br_2024", "eu_2026_it", "mx_2025"], ["BR", "EU", "MX"])
    assert any("60% minus USD 20" in note for note in unsupported)
    assert any("ICMS 17%" in note for note in unsupported)
    assert any("Italy handling fee" in note for note in unsupported)
    mx = replay(changes, "MX", "charging", "CN", "parcel", "2025-08-15")
    assert mx["ad_valorem_rate"] == approx(0.335)
    assert replay(changes, "MX", "charging", "CN", "parcel", "2025-08-14")["ad_valorem_rate"] == approx(0.19)


def test_to_duty_changes_refuses_overlapping_sets():
    with pytest.raises(PolicyError, match="overlap"):
        to_duty_changes(["us_2026", "us_2026_s122_15pct_example"], ["US"])


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------

CLI = [sys.executable, "-m", "cbecsim.policies.cli", "policies"]


def test_cli_json_output_parses():
    result = subprocess.run(
        CLI
        + [
            "duty",
            "--dest",
            "US",
            "--origin",
            "CN",
            "--mode",
            "parcel",
            "--value",
            "25",
            "--currency",
            "USD",
            "--date",
            "2025-06-01",
            "--category",
            "charging",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # exactly one JSON object on stdout
    assert {"duty", "vat", "fees", "total", "currency", "rule", "source"} <= set(data)
    assert data["duty"] == approx(13.75)  # 55% of USD 25
    assert data["duty_per_unit"] == approx(13.75) and data["items"] == 1
    assert data["currency"] == "USD" and "EO 14298" in data["primary_source"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--dest", "US", "--origin", "CN", "--mode", "parcel", "--value", "-5", "--date", "2025-06-01"],
            "value must be >= 0",
        ),
        (
            ["--dest", "XX", "--origin", "CN", "--mode", "parcel", "--value", "5", "--date", "2025-06-01"],
            "unknown destination",
        ),
        (
            ["--dest", "US", "--origin", "CN", "--mode", "parcel", "--value", "abc", "--date", "2025-06-01"],
            "--value must be a number",
        ),
        (
            ["--dest", "US", "--origin", "CN", "--mode", "parcel", "--value", "5", "--date", "2030-01-01"],
            "outside the library",
        ),
    ],
)
def test_cli_bad_input_exits_2_without_traceback(argv, message):
    result = subprocess.run(CLI + ["duty"] + argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_cli_in_process_commands(capsys):
    assert policies_cli.main(["policies", "list"]) == 0
    assert "us_2026_s122_15pct_example" in capsys.readouterr().out
    assert policies_cli.main(["policies", "show", "us_2025"]) == 0
    out = capsys.readouterr().out
    assert "primary source: EO 14259" in out and "checked 2026-12-02" in out and "cn-reciprocal-84" in out
    assert "parcel fee mpf-informal-fy2025" in out and "announced 2025-04-08" in out
    assert policies_cli.main(["policies", "show", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown regime set 'nope'")
    assert (
        policies_cli.main(
            [
                "policies",
                "duty",
                "--dest",
                "EU",
                "--origin",
                "CN",
                "--mode",
                "parcel",
                "--value",
                "40",
                "--currency",
                "EUR",
                "--date",
                "2026-07-01",
                "--headings",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "duty  EUR         6.00" in out  # EUR 3 x 2 headings
    assert policies_cli.main(["policies", "duty", "--dest", "US"]) == 2  # missing options
    assert capsys.readouterr().err.startswith("error: the following arguments are required")


def test_cli_help_explains_every_option(capsys):
    assert policies_cli.main(["policies", "duty", "--help"]) == 0
    text = capsys.readouterr().out
    for option in (
        "--dest",
        "--origin",
        "--mode",
        "--value",
        "--currency",
        "--date",
        "--category",
        "--items",
        "--headings",
        "--ioss",
        "--no-ioss",
        "--postal-method",
        "--sets",
        "--json",
    ):
        assert option in text
    words = " ".join(text.split())  # argparse wraps to the terminal width
    assert "cheapest_per_parcel is a bound" in words and "never de minimis" in words


def test_cli_registers_into_an_existing_parser(capsys):
    parser = argparse.ArgumentParser(prog="cbecsim")
    commands = parser.add_subparsers(dest="command", required=True)
    policies_cli.register(commands)
    args = parser.parse_args(
        [
            "policies",
            "duty",
            "--dest",
            "BR",
            "--origin",
            "CN",
            "--mode",
            "parcel",
            "--value",
            "100",
            "--date",
            "2025-01-01",
            "--json",
        ]
    )
    assert args.handler(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["duty"] == approx(40.0)  # 0.60 * 100 - 20


@pytest.mark.parametrize("origin", ["CN", "HK", "VN", "IN", "MX", "XT", "DE"])
def test_to_duty_changes_postal_kind_matches_quotes(origin):
    # For every change date: the replayed postal fields give the quote's postal duty under
    # each election, for a USD 25 and a USD 1000 postal item (value below / above the
    # break-even of the two methods).
    changes, _ = to_duty_changes(["us_2025", "us_2026"], ["US"])
    for day in sorted({c["date"] for c in changes}):
        state = replay(changes, "US", "charging", origin, "postal", day)
        for value in (25.0, 1000.0):
            quote = quote_duty("US", origin, "postal", value, "USD", day, category="charging")
            if quote.postal_method is None:  # no postal options in force: parcel rules
                continue
            exempt = state["de_minimis"] and value <= state["de_minimis_threshold"]
            assert not exempt
            assert state["ad_valorem_rate"] * value == approx(quote.duty), (day, value)
            specific = quote_duty(
                "US", origin, "postal", value, "USD", day, category="charging", postal_method="specific"
            )
            if state["postal_specific_available"]:
                assert state["postal_specific_per_package"] == approx(specific.duty), (day, value)
            else:
                assert specific.duty == approx(quote.duty)  # falls back to the ad valorem method


def test_to_duty_changes_fees_and_announced():
    changes, _ = to_duty_changes(["us_2025", "us_2026"], ["US"])
    for change in changes:
        DutyChange.model_validate(change)
    state = lambda day: replay(changes, "US", "charging", "DE", "parcel", day)
    assert (state("2025-01-01")["entry_fee_per_parcel"], state("2025-09-30")["entry_fee_per_parcel"]) == (2.62, 2.62)
    assert state("2025-10-01")["entry_fee_per_parcel"] == 2.69  # FY2026 (FR Doc 2025-13869)
    assert "broker_fee_per_parcel" not in state("2025-09-07")
    assert state("2025-09-08")["broker_fee_per_parcel"] == 2.50
    assert state("2026-03-01")["entry_fee_per_parcel"] == 2.69
    assert not any("entry_fee_per_parcel" in c["set"] and "bulk" in c["kinds"] for c in changes)
    # Announcement dates travel with the changes: the Section 122 proclamation of 2026-02-20
    s122 = [c for c in changes if c["date"] == "2026-02-24" and "CN" in c.get("origins", [])]
    assert s122 and all(c["announced"] == "2026-02-20" for c in s122)
    assert state("2026-03-01")["duty_drawback_rate"] == 0.99
    assert state("2025-06-01")["duty_drawback_rate"] == 0.0


def test_coverage_gaps_are_records_of_the_notes():
    from cbecsim.policies import coverage_gaps

    _, notes = to_duty_changes(["us_2026"], ["US"])
    gaps = coverage_gaps(["us_2026"], ["US"])
    assert gaps and all(gap.note in notes for gap in gaps)
    cn = [g for g in gaps if g.origins == ("CN",) and g.kind == "parcel"]
    assert cn and cn[0].date == dt.date(2026, 7, 24) and "NOT KNOWN" in cn[0].note
    assert coverage_gaps(["us_2026"], ["US"], until=dt.date(2026, 7, 23)) == []
