"""Worked duty examples computed by hand from the rules, through the kernel and a run."""

import numpy as np
import pytest

from cbecsim.compile import compile_scenario
from cbecsim.kernels import layout as L
from cbecsim.kernels.tariff import duty_per_unit, landed_cost_per_unit

import cbecsim
from helpers import CONFIGS, short

PARCEL, BULK = L.KIND_PARCEL, L.KIND_BULK


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
    # EU from 2026-07-01: a EUR 40 parcel (< EUR 150) pays EUR 3 = USD 3.24 at 1.08 USD/EUR,
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
    regime = np.array([0.55, 0.0, 1.0, 800.0, 0.0])
    landed, duty = landed_cost_per_unit(BULK, 6.0, 30.0, 0.6, 0.2, regime)
    assert duty == pytest.approx(3.30) and landed == pytest.approx(10.10)
    # The same unit as a parcel is valued at its USD 30 net price and exempt under USD 800.
    landed, duty = landed_cost_per_unit(PARCEL, 6.0, 30.0, 4.5, 0.0, regime)
    assert duty == 0.0 and landed == pytest.approx(10.5)


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
