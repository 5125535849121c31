"""Worked duty examples computed by hand from the rules, through the kernel and a run."""

import numpy as np
import pytest

import cbecsim
from cbecsim.compile import compile_scenario
from cbecsim.kernels import layout as L
from cbecsim.kernels.tariff import direct_duty_per_unit, duty_per_unit, landed_cost_per_unit, parcel_duty
from helpers import CONFIGS, short

PARCEL, BULK, POSTAL = L.KIND_PARCEL, L.KIND_BULK, L.KIND_POSTAL
ONE_ITEM = np.array([[1.0, 1.0, 1.0]])  # the default basket: one unit, one sub-heading


def _regime_row(**columns):
    row = np.zeros(L.N_REGIME_COLUMNS)
    for name, value in columns.items():
        row[getattr(L, "RG_" + name.upper())] = value
    return row


def test_parcel_under_de_minimis_pays_nothing():
    # US, USD 25 charger, Section 321 threshold USD 800 applies: exempt, whatever the rate.
    assert duty_per_unit(PARCEL, 25.0, 0.25, 0.0, 1.0, 800.0, 0.0) == 0.0


def test_parcel_above_de_minimis_pays_ad_valorem():
    # USD 900 > USD 800: 25% x 900 = 225.
    assert duty_per_unit(PARCEL, 900.0, 0.25, 0.0, 1.0, 800.0, 0.0) == pytest.approx(225.0)
    # At exactly the threshold the parcel is still exempt ("at or under").
    assert duty_per_unit(PARCEL, 800.0, 0.25, 0.0, 1.0, 800.0, 0.0) == 0.0


def test_parcel_after_de_minimis_ends():
    # 2025-04-10 stack on a CN charger: 301 25% + IEEPA 145% = 170%; 170% x 25 = 42.50.
    assert duty_per_unit(PARCEL, 25.0, 1.70, 0.0, 0.0, 800.0, 0.0) == pytest.approx(42.50)
    # After the Geneva truce: 25% + 30% = 55%; 55% x 25 = 13.75.
    assert duty_per_unit(PARCEL, 25.0, 0.55, 0.0, 0.0, 800.0, 0.0) == pytest.approx(13.75)


def test_eu_per_item_duty():
    # EU from 2026-07-01: a EUR 40 parcel (<= EUR 150) pays EUR 3 = USD 3.24 at 1.08 USD/EUR,
    # not 0% ad valorem; a EUR 160 parcel is above the relief and pays ad valorem (0% here).
    threshold, fixed = 150 * 1.08, 3 * 1.08
    assert duty_per_unit(PARCEL, 40 * 1.08, 0.0, 0.0, 1.0, threshold, fixed) == pytest.approx(3.24)
    assert duty_per_unit(PARCEL, 160 * 1.08, 0.0, 0.0, 1.0, threshold, fixed) == 0.0


def test_bulk_import_valued_at_cost_and_never_exempt():
    # Bulk, unit cost USD 6 at 55%: 0.55 x 6 = 3.30, de minimis notwithstanding.
    assert duty_per_unit(BULK, 6.0, 0.55, 0.0, 1.0, 800.0, 0.0) == pytest.approx(3.30)
    # A per-item specific duty adds: 3.30 + 0.50 = 3.80.
    assert duty_per_unit(BULK, 6.0, 0.55, 0.50, 1.0, 800.0, 0.0) == pytest.approx(3.80)
    # Landed cost of that unit with USD 0.60 freight and USD 0.20 handling: 6 + 0.6 + 3.3 + 0.2.
    regime = _regime_row(ad_valorem=0.55, de_minimis=1.0, threshold=800.0)
    landed, duty = landed_cost_per_unit(BULK, 6.0, 30.0, 0.6, 0.2, regime, ONE_ITEM, 0, 1.0)
    assert duty == pytest.approx(3.30) and landed == pytest.approx(10.10)
    # The same unit as a parcel is valued at its USD 30 net price and exempt under USD 800.
    landed, duty = landed_cost_per_unit(PARCEL, 6.0, 30.0, 4.5, 0.0, regime, ONE_ITEM, 0, 1.0)
    assert duty == 0.0 and landed == pytest.approx(10.5)


# -- Issue 14: postal methods, baskets, IOSS, entry fees (worked by hand) ---------------


def test_us_postal_parcel_from_cn_under_each_election():
    # EO 14256/14266 (from 2025-05-02): postal items from CN pay 120% of value or USD 100
    # per package; EO 14298 (from 2025-05-14): 54% or USD 100. A USD 25 item, one per package.
    may10 = _regime_row(ad_valorem=1.20, postal_specific=100.0, postal_specific_available=1.0)
    june10 = _regime_row(ad_valorem=0.54, postal_specific=100.0, postal_specific_available=1.0)
    for row, ad_valorem in ((may10, 30.0), (june10, 13.5)):
        assert parcel_duty(POSTAL, 25.0, 1.0, 1.0, row, L.POSTAL_AD_VALOREM, 1.0) == pytest.approx((ad_valorem, 0.0))
        assert parcel_duty(POSTAL, 25.0, 1.0, 1.0, row, L.POSTAL_SPECIFIC, 1.0) == pytest.approx((100.0, 0.0))
        assert parcel_duty(POSTAL, 25.0, 1.0, 1.0, row, L.POSTAL_CHEAPEST, 1.0) == pytest.approx((ad_valorem, 0.0))
        # A courier parcel of the same regime row has no postal option: ad valorem.
        assert parcel_duty(PARCEL, 25.0, 1.0, 1.0, row, L.POSTAL_SPECIFIC, 1.0) == pytest.approx((ad_valorem, 0.0))
    # The specific amount is per package: 4 units of USD 25 in one package pay USD 100,
    # USD 25 a unit; the cheapest method for that USD 100 package is 54% x 100 = 54.
    basket = np.array([[4.0, 1.0, 1.0]])
    assert direct_duty_per_unit(POSTAL, 25.0, june10, basket, L.POSTAL_SPECIFIC, 1.0) == pytest.approx((25.0, 0.0))
    assert direct_duty_per_unit(POSTAL, 25.0, june10, basket, L.POSTAL_CHEAPEST, 1.0) == pytest.approx((13.5, 0.0))
    # From 2026-02-24 no specific method is offered: a carrier that elected it pays ad valorem.
    s122 = _regime_row(ad_valorem=0.10, postal_specific=80.0, postal_specific_available=0.0)
    assert parcel_duty(POSTAL, 25.0, 1.0, 1.0, s122, L.POSTAL_SPECIFIC, 1.0) == pytest.approx((2.5, 0.0))


def test_us_parcel_from_vn_pays_its_rate_and_the_entry_fee():
    # 2025-09-01: de minimis suspended for all origins (EO 14324); VN reciprocal 20% (EO of
    # 2025-07-31), MFN Free on 8504.40.95; informal-entry MPF USD 2.62 (FR Doc 2024-15990).
    row = _regime_row(ad_valorem=0.20, entry_fee=2.62)
    assert parcel_duty(PARCEL, 25.0, 1.0, 1.0, row, 0, 1.0) == pytest.approx((5.0, 2.62))
    # Landed cost of a USD 6 unit with USD 4.50 freight: 6 + 4.5 + 5 + 2.62.
    landed, duty = landed_cost_per_unit(PARCEL, 6.0, 25.0, 4.5, 0.0, row, ONE_ITEM, 0, 1.0)
    assert (landed, duty) == pytest.approx((18.12, 5.0))
    # Two units per parcel share the parcel's fee: USD 1.31 a unit.
    assert direct_duty_per_unit(PARCEL, 25.0, row, np.array([[2.0, 1.0, 1.0]]), 0, 1.0) == pytest.approx((5.0, 1.31))


def test_eu_parcel_of_three_units_in_two_headings():
    # Council Regulation (EU) 2026/382, from 2026-07-01: EUR 3 per distinct tariff
    # sub-heading of a consignment not exceeding EUR 150. 3 units of EUR 40 / 3 each (a EUR
    # 40 parcel) in 2 sub-headings pay EUR 6, EUR 2 a unit. In EUR throughout.
    row = _regime_row(de_minimis=1.0, threshold=150.0, low_value_duty=3.0, low_value_per_heading=3.0,
                      per_heading=1.0)
    basket = np.array([[3.0, 2.0, 1.0]])
    assert parcel_duty(PARCEL, 40.0, 3.0, 2.0, row, 0, 1.0) == pytest.approx((6.0, 0.0))
    assert direct_duty_per_unit(PARCEL, 40.0 / 3.0, row, basket, 0, 1.0) == pytest.approx((2.0, 0.0))
    # The adopted rule applies whatever the VAT scheme: a non-IOSS seller pays the same.
    assert direct_duty_per_unit(PARCEL, 40.0 / 3.0, row, basket, 0, 0.0) == pytest.approx((2.0, 0.0))
    # Under an IOSS-only variant (the Council's 2025-12-12 position), a non-IOSS seller's
    # parcel pays the normal tariff: MFN 0% here, so no duty.
    ioss_only = row.copy()
    ioss_only[L.RG_IOSS_ONLY] = 1.0
    assert direct_duty_per_unit(PARCEL, 40.0 / 3.0, ioss_only, basket, 0, 0.0) == pytest.approx((0.0, 0.0))
    assert direct_duty_per_unit(PARCEL, 40.0 / 3.0, ioss_only, basket, 0, 1.0) == pytest.approx((2.0, 0.0))
    # The threshold is on the parcel's value: 3 units of EUR 60 (EUR 180) pay the tariff,
    # while one unit of EUR 60 pays EUR 3; half the parcels of each kind: (0 + 3) / (3 + 1).
    mixed = np.array([[3.0, 2.0, 0.5], [1.0, 1.0, 0.5]])
    assert direct_duty_per_unit(PARCEL, 60.0, row, mixed, 0, 1.0) == pytest.approx((0.75, 0.0))
    # Per item where no change named the per-heading duty: EUR 3 x 3 units = EUR 9.
    per_item = row.copy()
    per_item[L.RG_PER_HEADING] = 0.0
    assert parcel_duty(PARCEL, 40.0, 3.0, 2.0, per_item, 0, 1.0) == pytest.approx((9.0, 0.0))


def test_regime_steps_on_the_dated_days():
    compiled = compile_scenario(cbecsim.load_scenario(CONFIGS / "us_de_minimis_2025.yaml"))
    us_charging = compiled.market_names.index("US/charging")
    cn = compiled.origins.index("CN")
    start = compiled.dates[0]

    def regime(date):
        return compiled.regime_on((np.datetime64(date) - start.to_datetime64()).astype("timedelta64[D]").astype(int))[
            us_charging, cn, PARCEL
        ]

    assert regime("2025-05-01")[L.RG_DE_MINIMIS] == 1.0
    assert regime("2025-05-02")[L.RG_DE_MINIMIS] == 0.0
    assert regime("2025-04-09")[L.RG_AD_VALOREM] == pytest.approx(1.29)
    assert regime("2025-04-10")[L.RG_AD_VALOREM] == pytest.approx(1.70)
    assert regime("2025-05-13")[L.RG_AD_VALOREM] == pytest.approx(1.70)
    assert regime("2025-05-14")[L.RG_AD_VALOREM] == pytest.approx(0.55)
    assert regime("2025-11-10")[L.RG_AD_VALOREM] == pytest.approx(0.45)


def test_duty_paid_in_a_run_matches_the_hand_rule():
    # Traffic-first sellers ship parcels to US/charging and keep their price until their
    # first review on day 7. With de minimis off and 25% ad valorem from day 0, the duty
    # per unit is 25% of the net price (price = reference 25 x price_index; no VAT).
    scenario = short(days=6, **{"duty_schedule.0.set.de_minimis": False})
    result = cbecsim.run(scenario, replications=2, seed=3)
    chosen = result.sel(market="US/charging").where(result.strategy == "traffic_first", drop=True)
    units = chosen["units_sold"].values
    assert units.sum() > 0
    per_unit = chosen["duty_paid"].values[units > 0] / units[units > 0]
    revenue_per_unit = chosen["revenue"].values[units > 0] / units[units > 0]
    np.testing.assert_allclose(per_unit, 0.25 * revenue_per_unit, rtol=1e-12)


# --------------------------------------------------------------------------------------
# One threshold rule on both sides (issue 14): kernels.rules.low_value_exempt
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, threshold, exempt",
    [
        (150.0, 150.0, True),  # EU: "does not exceed EUR 150" (Reg. 1186/2009 Art. 23; Reg. (EU) 2026/382)
        (150.01, 150.0, False),
        (800.0, 800.0, True),  # US: "valued at $800 or less" (EO 14324 / FR Doc 2025-16802)
        (800.01, 800.0, False),
        (135.0, 135.0, True),  # UK: "not exceeding GBP 135" (HMRC INCHP02080)
        (135.01, 135.0, False),
    ],
)
def test_low_value_exempt_is_at_or_under(value, threshold, exempt):
    from cbecsim.kernels.rules import low_value_exempt

    assert bool(low_value_exempt(value, threshold)) is exempt
    plain = getattr(low_value_exempt, "py_func", low_value_exempt)  # under NUMBA_DISABLE_JIT it is plain already
    assert bool(plain(value, threshold)) is exempt  # the compiled and plain rule agree


def _replayed_regime(changes, region, category, origin, kind, day):
    """The engine's regime fields on ``day`` from the library's changes (date order, list
    order within a date), as the compile step applies them."""
    state = {"ad_valorem_rate": 0.0, "de_minimis": False, "de_minimis_threshold": 0.0,
             "low_value_duty_per_item": 0.0, "specific_duty_per_item": 0.0}
    for change in sorted(changes, key=lambda c: c["date"]):
        if change["date"] > day or change["region"] != region:
            continue
        if "origins" in change and origin not in change["origins"]:
            continue
        if "categories" in change and category not in change["categories"]:
            continue
        if kind not in change["kinds"]:
            continue
        state.update({k: v for k, v in change["set"].items() if v is not None})
    return state


@pytest.mark.parametrize(
    "dest, sets, origin, category, day, currency, values",
    [
        # EU, 2026-07-01: EUR 150.00 pays the EUR 3 flat duty, 150.01 the normal tariff (0%).
        ("EU", ["eu_2026"], "CN", "charging", "2026-07-01", "EUR", (150.0, 150.01)),
        # EU, 2026-06-30: the relief covers EUR 150.00, not 150.01 (MFN 0%: both 0 duty).
        ("EU", ["eu_2026"], "CN", "charging", "2026-06-30", "EUR", (150.0, 150.01)),
        # US, 2025-04-10, a CN charger (170%): USD 800.00 exempt, 800.01 pays 1.70 x 800.01.
        ("US", ["us_2025"], "CN", "charging", "2025-04-10", "USD", (800.0, 800.01)),
    ],
)
def test_engine_kernel_and_quote_agree_at_the_threshold(dest, sets, origin, category, day, currency, values):
    from cbecsim.policies import quote_duty, to_duty_changes

    changes, _ = to_duty_changes(sets, [dest], kinds=("parcel", "bulk"))
    regime = _replayed_regime(changes, dest, category, origin, "parcel", day)
    for value in values:
        engine = duty_per_unit(PARCEL, value, regime["ad_valorem_rate"], regime["specific_duty_per_item"],
                               float(regime["de_minimis"]), regime["de_minimis_threshold"],
                               regime["low_value_duty_per_item"])
        quote = quote_duty(dest, origin, "parcel", value, currency, day, category=category, regime_sets=sets)
        assert engine == pytest.approx(quote.duty), (value, engine, quote.duty)
        # The basket kernel the market step charges gives the same for a one-item parcel.
        row = _regime_row(ad_valorem=regime["ad_valorem_rate"], specific=regime["specific_duty_per_item"],
                          de_minimis=float(regime["de_minimis"]), threshold=regime["de_minimis_threshold"],
                          low_value_duty=regime["low_value_duty_per_item"],
                          low_value_per_heading=regime.get("low_value_duty_per_heading") or 0.0,
                          per_heading=float(regime.get("low_value_duty_per_heading") is not None))
        engine = direct_duty_per_unit(PARCEL, value, row, ONE_ITEM, 0, 1.0)[0]
        assert engine == pytest.approx(quote.duty), (value, engine, quote.duty)


def test_engine_kernel_and_quote_agree_at_gbp_135(tmp_path):
    # The UK library's MFN is 0%, so the boundary shows only with a rate: a user file with
    # MFN 10% (the same format). GBP 135.00 exempt; 135.01 pays 0.10 x 135.01 = 13.501.
    from cbecsim.policies import quote_duty, read_regime_file, to_duty_changes

    path = tmp_path / "uk10.yaml"
    path.write_text(
        "destination: UK\ncurrency: GBP\nsets:\n  uk_mfn10:\n    entries:\n"
        "      - {id: parcel, from: 2025-01-01, to: null, origins: all, modes: [parcel, bulk],\n"
        "         de_minimis: {threshold: 135, currency: GBP, applies: true},\n"
        "         ad_valorem: [{basis: MFN, rate: 0.10}], source: test, checked: 2026-12-02, confidence: L}\n"
    )
    uk = read_regime_file(path)["uk_mfn10"]
    changes, _ = to_duty_changes([uk], ["UK"], kinds=("parcel", "bulk"))
    regime = _replayed_regime(changes, "UK", "charging", "CN", "parcel", "2025-06-01")
    for value, expected in ((135.0, 0.0), (135.01, 13.501)):
        engine = duty_per_unit(PARCEL, value, regime["ad_valorem_rate"], 0.0, float(regime["de_minimis"]),
                               regime["de_minimis_threshold"], regime["low_value_duty_per_item"])
        quote = quote_duty("UK", "CN", "parcel", value, "GBP", "2025-06-01", regime_sets=[uk])
        assert engine == pytest.approx(expected) and quote.duty == pytest.approx(expected)


# --------------------------------------------------------------------------------------
# The kept parcel duty (market.direct_duty_kept): worked out again whenever it can change
# --------------------------------------------------------------------------------------


def test_kept_parcel_duty_is_worked_out_again_when_its_inputs_change():
    from types import SimpleNamespace

    from cbecsim.kernels import market

    kept = getattr(market.direct_duty_kept, "py_func", market.direct_duty_kept)
    work = SimpleNamespace(direct_duty_key=np.full((1, 1, 1), -1, dtype=np.int64),
                           direct_duty=np.zeros((1, 1, 1, 3)))
    ten, thirty = _regime_row(ad_valorem=0.10, entry_fee=0.5), _regime_row(ad_valorem=0.30, entry_fee=0.5)
    assert kept(0, 0, 0, 7, PARCEL, 20.0, ten, ONE_ITEM, 0, 0.0, work) == pytest.approx((2.0, 0.5))
    # Same key and customs value: the kept figures are returned (poisoned here to show it).
    work.direct_duty[0, 0, 0, 1] = 99.0
    assert kept(0, 0, 0, 7, PARCEL, 20.0, ten, ONE_ITEM, 0, 0.0, work)[0] == 99.0
    # A new regime row (another key) or a new customs value is worked out afresh.
    assert kept(0, 0, 0, 8, PARCEL, 20.0, thirty, ONE_ITEM, 0, 0.0, work) == pytest.approx((6.0, 0.5))
    assert kept(0, 0, 0, 8, PARCEL, 30.0, thirty, ONE_ITEM, 0, 0.0, work) == pytest.approx((9.0, 0.5))
    # A stretch's start forgets it (key -1), as prepare_stretch does for a forked world.
    work.direct_duty[0, 0, 0, 1] = 99.0
    work.direct_duty_key[0, 0, 0] = -1
    assert kept(0, 0, 0, 8, PARCEL, 30.0, thirty, ONE_ITEM, 0, 0.0, work) == pytest.approx((9.0, 0.5))


def test_a_tariff_change_between_two_reviews_reaches_the_next_days_sales():
    # bench_core: US parcels at 10% ad valorem, 30% from 2025-07-01. Starting on 06-25 with
    # weekly reviews (days 0, 7), 07-01 is day 6, inside the stretch of days 0-6 that
    # keeps each listing's parcel duty: the kept duty must change that day, not at day 7.
    scenario = cbecsim.load_scenario(CONFIGS / "bench_core.yaml",
                                     {"horizon.start": "2025-06-25", "horizon.end": "2025-07-03"})
    result = cbecsim.run(scenario, replications=2, seed=5, resolution="day")
    units = result["units_sold"]
    rate = (result["duty_paid"] / result["revenue"]).where(units > 0)  # duty / net price, per unit
    before = rate.sel(time=slice("2025-06-25", "2025-06-30")).values
    after = rate.sel(time=slice("2025-07-01", "2025-07-03")).values
    assert np.isfinite(before).sum() > 100 and np.isfinite(after).sum() > 50
    np.testing.assert_allclose(before[np.isfinite(before)], 0.10, rtol=1e-12)
    np.testing.assert_allclose(after[np.isfinite(after)], 0.30, rtol=1e-12)
