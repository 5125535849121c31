"""Worked examples of issue 14, computed by hand from the official texts.

Each expected figure carries its arithmetic and the clause it comes from. Values are the
customs value of the whole parcel; per-unit figures spread the parcel's duty over its
units.
"""

from __future__ import annotations

import pytest

from cbecsim.policies import quote_duty

approx = pytest.approx


# --------------------------------------------------------------------------------------
# US postal parcel from China, USD 25, under each election
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, expected, applied",
    [
        # EO 14256 sec. 2 as amended by EO 14266 of 2025-04-09 (in force for postal items from
        # 2025-05-02): "120 percent of the value" or "$100 per postal item" (the $200 step of
        # 2025-06-01 never came: EO 14298).
        ("ad_valorem", 30.00, "ad_valorem"),  # 1.20 x 25 = 30.00
        ("specific", 100.00, "specific"),  # USD 100 per postal item (= package)
        ("cheapest_per_parcel", 30.00, "ad_valorem"),  # min(30, 100) = 30
        (None, 30.00, "ad_valorem"),  # the default election, ad valorem (an assumption, stated)
    ],
)
def test_us_postal_cn_2025_05_10(method, expected, applied):
    quote = quote_duty("US", "CN", "postal", 25, "USD", "2025-05-10", category="charging", postal_method=method)
    assert quote.duty == approx(expected)
    assert quote.postal_method == applied
    assert quote.fees == 0.0  # no CBP entry for postal items: the carrier remits


@pytest.mark.parametrize(
    "method, expected, applied",
    [
        # EO 14298 sec. 3 (from 2025-05-14): "54 percent" or "$100 per postal item".
        ("ad_valorem", 13.50, "ad_valorem"),  # 0.54 x 25 = 13.50
        ("specific", 100.00, "specific"),  # USD 100 per package
        ("cheapest_per_parcel", 13.50, "ad_valorem"),  # min(13.50, 100)
    ],
)
def test_us_postal_cn_2025_06_10(method, expected, applied):
    quote = quote_duty("US", "CN", "postal", 25, "USD", "2025-06-10", category="charging", postal_method=method)
    assert quote.duty == approx(expected)
    assert quote.postal_method == applied


def test_us_postal_cn_2025_06_10_dear_parcel_shows_why_the_election_matters():
    # USD 500 item: ad valorem 0.54 x 500 = 270; specific USD 100. A carrier that elected ad
    # valorem pays 270, one that elected specific 100; 'cheapest per parcel' (100) is a bound.
    assert quote_duty("US", "CN", "postal", 500, "USD", "2025-06-10").duty == approx(270.0)
    assert quote_duty("US", "CN", "postal", 500, "USD", "2025-06-10", postal_method="specific").duty == approx(100.0)


# --------------------------------------------------------------------------------------
# US parcel from Vietnam, 2025-09-01
# --------------------------------------------------------------------------------------


def test_us_parcel_vn_2025_09_01():
    # A USD 25 charger (HTSUS 8504.40.95, column 1 general rate Free) by courier:
    # * de minimis suspended for all countries from 2025-08-29 (EO 14324 sec. 2);
    # * reciprocal duty for Vietnam 20% from 2025-08-07 (EO of 2025-07-31, Annex I);
    # * no Section 301 (China only), no fentanyl duty (China, Canada, Mexico only).
    # Duty = (0 + 0.20) x 25 = 5.00.
    # Entry: informal entry MPF USD 2.62 (class code 311a, FY2025, FR Doc 2024-15990); the
    # UPS processing fee starts 2025-09-08. Fees = 2.62.
    quote = quote_duty("US", "VN", "parcel", 25, "USD", "2025-09-01", category="charging")
    assert quote.duty == approx(5.00)
    assert quote.fees == approx(2.62)
    assert quote.total == approx(7.62)
    # The same charger from China that day: 301 25% + fentanyl 20% + reciprocal 10% = 55% -> 13.75
    assert quote_duty("US", "CN", "parcel", 25, "USD", "2025-09-01", category="charging").duty == approx(13.75)


# --------------------------------------------------------------------------------------
# EU parcel of 3 units in 2 sub-headings at EUR 40, 2026-07-01
# --------------------------------------------------------------------------------------


def test_eu_parcel_3_units_2_headings_ioss():
    # Council Regulation (EU) 2026/382, from 2026-07-01: EUR 3 per item by tariff
    # classification in a consignment of EUR 150 or less (Baker McKenzie: 1 T-shirt + 1
    # watch = EUR 6; 5 T-shirts = EUR 3). 3 units in 2 sub-headings: 2 x EUR 3 = EUR 6,
    # EUR 2 per unit. IOSS: VAT at checkout on the value, EU average 21.3% x 40 = 8.52.
    quote = quote_duty("EU", "CN", "parcel", 40, "EUR", "2026-07-01", items=3, headings=2)
    assert (quote.duty, quote.duty_per_unit) == approx((6.0, 2.0))
    assert quote.vat == approx(8.52)


def test_eu_parcel_3_units_2_headings_non_ioss():
    # The adopted rule applies whatever the VAT scheme (IOSS, special arrangements, standard
    # import VAT: WiseTech, Manuel Samper, Baker McKenzie 2026-07-02), so the duty is the same
    # EUR 6. Without IOSS the VAT is import VAT on value + duty: 0.213 x (40 + 6) = 9.798.
    quote = quote_duty("EU", "CN", "parcel", 40, "EUR", "2026-07-01", items=3, headings=2, ioss=False)
    assert (quote.duty, quote.duty_per_unit) == approx((6.0, 2.0))
    assert quote.vat == approx(0.213 * 46)
    assert "collected at import" in quote.rule


# --------------------------------------------------------------------------------------
# Brazil, a USD 100 item in an ICMS-20% state
# --------------------------------------------------------------------------------------


def test_br_usd100_in_an_icms20_state():
    # Portaria MF 1.086/2024: USD 50.01 to 3,000 pays 60% with USD 20.00 to deduct:
    # II = 0.60 x 100 - 20 = 40.00.
    # ICMS 20% (ten states from 2025-04-01, e.g. Bahia), tax-inclusive ("por dentro"):
    # ICMS = 0.20 x (100 + 40) / (1 - 0.20) = 28 / 0.8 = 35.00 (so ICMS = 20% of 175).
    quote = quote_duty("BR", "CN", "parcel", 100, "USD", "2025-06-01", regime_sets=["br_2025_icms20"])
    assert quote.duty == approx(40.0)
    assert quote.vat == approx(35.0)
    assert quote.vat / (100 + quote.duty + quote.vat) == approx(0.20)
    # In a 17% state: ICMS = 0.17 x 140 / 0.83 = 28.6747
    assert quote_duty("BR", "CN", "parcel", 100, "USD", "2025-06-01").vat == approx(0.17 * 140 / 0.83)


# --------------------------------------------------------------------------------------
# Mexico, 2025-08-01 and 2025-08-20
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day, rate",
    [
        # RGCE 2025 rule 3.7.35 (DOF 2024-12-30): tasa global 19%.
        ("2025-08-01", 0.19),
        # Cuarta Resolucion de Modificaciones a las RGCE 2025 (DOF 2025-07-28), rule 3.7.35
        # fr. I: 33.5% for courier imports up to USD 2,500, in force 2025-08-15.
        ("2025-08-20", 0.335),
    ],
)
def test_mx_parcel_from_china(day, rate):
    # A MXN 1,000 courier parcel from China (USD 1000 / 18.7063 = 53.46, under USD 2,500):
    # duty = rate x 1000 (190.00, then 335.00); the global rate includes IVA.
    quote = quote_duty("MX", "CN", "parcel", 1000, "MXN", day)
    assert quote.duty == approx(rate * 1000)
    assert quote.vat == 0.0
