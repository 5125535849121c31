"""Scenarios that pick regimes from the policy library: ``policy: [us_2025, ...]``.

The worked figures below are computed by hand from the official rules (FACTS.md), for
the engine's compiled regime tables on the day before, the day of and the day after each
change, for parcel and bulk kinds:

US, Chinese chargers (Section 301 List 3: 25%) and headphones (List 4A: 7.5%), IEEPA on
top: 2025-02-04 fentanyl 10%; 03-04 fentanyl 20%; 04-05 reciprocal 10% baseline (EO 14257,
China included until its own rate took effect); 04-09 reciprocal 84% (+20% = 104%);
04-10 145% IEEPA in total; 05-14 Geneva truce 30%; 11-10 Busan 20%. De minimis (USD 800)
ends for CN/HK parcels on 05-02 and for all origins on 08-29; bulk is never exempt.
EU: EUR 150 relief with no duty, then EUR 3 per tariff sub-heading on parcels of EUR 150
or less from 2026-07-01 (one sub-heading per unit with the default basket); bulk keeps the (0%)
MFN rate.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

import cbecsim
from cbecsim.compile import compile_scenario
from cbecsim.kernels import layout as L
from cbecsim.kernels.tariff import regime_duty
from helpers import CONFIGS, cli

PARCEL, BULK = L.KIND_PARCEL, L.KIND_BULK


def _regime(compiled, scenario, date: str, market: str, origin: str = "CN") -> np.ndarray:
    day = (dt.date.fromisoformat(date) - scenario.horizon.start).days
    m = scenario.market_names.index(market)
    o = compiled.origins.index(origin)
    return compiled.regime_on(day)[m, o]


@pytest.fixture(scope="module")
def us_2025():
    scenario = cbecsim.load_scenario(CONFIGS / "us_de_minimis_2025.yaml")
    return scenario, compile_scenario(scenario, "month")


US_CHARGERS = [  # date, ad valorem total (301 25% + IEEPA), CN parcel de minimis applies
    ("2025-02-03", 0.25, True), ("2025-02-04", 0.35, True), ("2025-02-05", 0.35, True),
    ("2025-03-03", 0.35, True), ("2025-03-04", 0.45, True), ("2025-03-05", 0.45, True),
    ("2025-04-04", 0.45, True), ("2025-04-05", 0.55, True), ("2025-04-08", 0.55, True),
    ("2025-04-09", 1.29, True), ("2025-04-10", 1.70, True),
    ("2025-05-01", 1.70, True), ("2025-05-02", 1.70, False), ("2025-05-03", 1.70, False),
    ("2025-05-13", 1.70, False), ("2025-05-14", 0.55, False), ("2025-05-15", 0.55, False),
    ("2025-11-09", 0.55, False), ("2025-11-10", 0.45, False), ("2025-11-11", 0.45, False),
]


@pytest.mark.parametrize("date, rate, exempt", US_CHARGERS)
def test_us_2025_chargers_from_the_library(us_2025, date, rate, exempt):
    scenario, compiled = us_2025
    regime = _regime(compiled, scenario, date, "US/charging")
    for kind in (PARCEL, BULK):
        assert regime[kind, L.RG_AD_VALOREM] == pytest.approx(rate, abs=1e-12)
    # A USD 25 parcel: exempt under de minimis, else 25 * rate; bulk at USD 10 cost value always dutiable.
    assert regime_duty(PARCEL, 25.0, regime[PARCEL]) == pytest.approx(0.0 if exempt else 25.0 * rate)
    assert regime_duty(BULK, 10.0, regime[BULK]) == pytest.approx(10.0 * rate)


@pytest.mark.parametrize("date, rate", [
    ("2025-04-09", 0.075 + 1.04), ("2025-04-10", 0.075 + 1.45), ("2025-05-14", 0.075 + 0.30),
    ("2025-11-10", 0.075 + 0.20),
])
def test_us_2025_headphones_follow_list_4a(us_2025, date, rate):
    scenario, compiled = us_2025
    assert _regime(compiled, scenario, date, "US/audio")[PARCEL, L.RG_AD_VALOREM] == pytest.approx(rate)


@pytest.mark.parametrize("date, parcel_duty_eur", [("2026-06-30", 0.0), ("2026-07-01", 3.0), ("2026-07-02", 3.0)])
def test_eu_2026_fixed_duty_in_a_scenario(date, parcel_duty_eur):
    from cbecsim.policies import usd_rate

    scenario = cbecsim.load_scenario(CONFIGS / "eu_fixed_duty_2026.yaml")
    compiled = compile_scenario(scenario, "month")
    regime = _regime(compiled, scenario, date, "EU/charging")
    # fx_path monthly: the day's month (June 2026, the series' last, for July) converts
    # both the EUR 3 and the item's value. A EUR 15 item net of 21.3% VAT: EUR 3 from
    # 2026-07-01 (USD 3.45 at June's 1.1515); bulk 0%.
    eur = usd_rate("EUR", dt.date.fromisoformat(date))
    net_usd = 15.0 / 1.213 * eur
    assert regime_duty(PARCEL, net_usd, regime[PARCEL]) == pytest.approx(parcel_duty_eur * eur)
    assert regime_duty(BULK, 4.5, regime[BULK]) == 0.0
    # Over EUR 150 the parcel pays the MFN rate (0%), not the fixed duty.
    assert regime_duty(PARCEL, 200.0 * eur, regime[PARCEL]) == 0.0


def test_own_duty_schedule_overrides_the_library_on_the_same_date():
    scenario = cbecsim.load_scenario(
        CONFIGS / "us_de_minimis_2025.yaml",
        {"duty_schedule": [{"region": "US", "date": "2025-04-10", "origins": ["CN"],
                            "categories": ["charging"], "set": {"ad_valorem_rate": 0.5}}]},
    )
    compiled = compile_scenario(scenario, "month")
    assert _regime(compiled, scenario, "2025-04-10", "US/charging")[PARCEL, L.RG_AD_VALOREM] == 0.5
    assert _regime(compiled, scenario, "2025-05-14", "US/charging")[PARCEL, L.RG_AD_VALOREM] == pytest.approx(0.55)


@pytest.mark.parametrize("policy, fragment", [
    (["us_2025", "nope"], "policy.1: unknown regime set 'nope'"),
    (["uk_2025"], "policy.0: uk_2025 is for destination UK, but no market has that region"),
    (["us_2025", "us_2025"], "named twice"),
    (["us_2026", "us_2026_s122_15pct_example"], "overlap"),
])
def test_bad_policy_is_refused_with_its_path(policy, fragment):
    with pytest.raises(cbecsim.ConfigError) as caught:
        cbecsim.load_scenario(CONFIGS / "us_de_minimis_2025.yaml", {"policy": policy})
    assert any(fragment in f"{path}: {message}" for path, message in caught.value.problems), caught.value.problems


def test_cli_unknown_regime_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "x.nc"
    done = cli("run", str(CONFIGS / "us_de_minimis_2025.yaml"), "--out", str(out), "--set", "policy=[us_2099]")
    assert done.returncode == 2
    assert "error: policy.0: unknown regime set 'us_2099'" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_validate_lists_what_the_engine_leaves_out():
    done = cli("validate", str(CONFIGS / "us_de_minimis_2025.yaml"))
    assert done.returncode == 0, done.stderr
    assert "regime sets us_2025, eu_2025" in done.stdout
    # The engine has the postal kind (issue 14): the library's postal options are emitted,
    # so validate no longer notes them as left out.
    assert "postal duty options" not in done.stdout and "note:" not in done.stdout
    # The sets' end of coverage (2026-01-01) is after the horizon: not worth a note.
    assert "end of the sets' coverage" not in done.stdout


def test_validate_prints_no_coverage_note_the_config_handles():
    # eu_fixed_duty_2026 ends in 2026-12 and us_2026 on 2026-07-24, but the config's own
    # duty_schedule sets CN chargers from 2026-07-24 and it has no sellers of other origins.
    done = cli("validate", str(CONFIGS / "eu_fixed_duty_2026.yaml"))
    assert done.returncode == 0, done.stderr
    assert "end of the sets' coverage" not in done.stdout
    scenario = cbecsim.load_scenario(CONFIGS / "eu_fixed_duty_2026.yaml")
    assert not any("coverage" in note for note in scenario.policy_notes)
    # Without that own entry the end of Section 122 is reported, with the library's reason
    bare = cbecsim.load_scenario(CONFIGS / "eu_fixed_duty_2026.yaml", {"duty_schedule": []})
    notes = [note for note in bare.policy_notes if "on or after 2026-07-24" in note]
    assert notes and all("from CN" in note for note in notes), notes
    assert "NOT KNOWN" in notes[0]
    # An own change dated before the library's last change of the cell does not handle it
    early = cbecsim.load_scenario(CONFIGS / "eu_fixed_duty_2026.yaml", {"duty_schedule": [
        {"region": "US", "date": "2026-01-15", "origins": ["CN"], "set": {"ad_valorem_rate": 0.25}}]})
    assert any("on or after 2026-07-24" in note for note in early.policy_notes)


def test_extends_merges_and_overrides(tmp_path):
    (tmp_path / "child.yaml").write_text(
        f"extends: {CONFIGS / 'baseline.yaml'}\n"
        "name: child\n"
        "overrides: {sellers.traffic_first.count: 3, markets.US/charging.shoppers_per_day: 1000}\n"
    )
    child = cbecsim.load_scenario(tmp_path / "child.yaml")
    base = cbecsim.load_scenario(CONFIGS / "baseline.yaml")
    assert child.name == "child" and child.horizon == base.horizon
    assert child.sellers[0].count == 3 and child.markets[0].shoppers_per_day == 1000
    assert child.sellers[1:] == base.sellers[1:]


def test_extends_cycle_is_a_config_error(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(cbecsim.ConfigError, match="cycle"):
        cbecsim.load_scenario(tmp_path / "a.yaml")


def test_results_record_the_regimes_as_applied():
    """A result keeps the library's changes, so it can be re-run without the library."""
    import json

    from helpers import short

    scenario = short("us_de_minimis_2025.yaml", days=31)
    result = cbecsim.run(scenario, replications=2, resolution="month")
    applied = json.loads(result.attrs["duty_schedule_effective"])
    assert len(applied) == len(scenario.effective_duty_schedule) > 0
    rerun = cbecsim.load_scenario(scenario, {"policy": [], "duty_schedule": applied})
    assert np.array_equal(compile_scenario(rerun, "month").regime_tables,
                          compile_scenario(scenario, "month").regime_tables)


def test_end_of_coverage_is_noted_only_when_the_horizon_reaches_it():
    within = cbecsim.load_scenario(CONFIGS / "us_de_minimis_2025.yaml")
    beyond = cbecsim.load_scenario(CONFIGS / "us_de_minimis_2025.yaml", {"horizon.end": "2026-03-31"})
    assert not any("end of the sets' coverage" in note for note in within.policy_notes)
    assert any("on or after 2026-01-01 (end of the sets' coverage)" in note for note in beyond.policy_notes)


@pytest.mark.parametrize("election, duty_per_unit", [("ad_valorem", None), ("specific", 100.0)])
def test_us_postal_config_pays_the_carriers_election(election, duty_per_unit):
    # configs/us_postal_2025.yaml: traffic-first sellers post their chargers. In June 2025
    # (EO 14298, from 2025-05-14) a postal item from CN pays 54% of its value or USD 100 per
    # package, by the carrier's election, whatever the courier parcel's stack (55%).
    scenario = cbecsim.load_scenario(CONFIGS / "us_postal_2025.yaml", {
        "horizon.end": "2025-06-30", "sellers.traffic_first.postal_duty_method": election,
        "sellers.traffic_first.strategy_params.switch_fulfilment": False})
    result = cbecsim.run(scenario, replications=2, resolution="month")
    june = result.sel(market="US/charging").isel(time=5)
    june = june.isel(seller=np.flatnonzero(result.population.values == "traffic_first"))
    sold = june.units_sold.values.astype(float)
    assert (june.units_from_warehouse.values == 0).all() and sold.sum() > 0
    selling = sold > 0
    if duty_per_unit is None:  # 54% of the net price of every unit sold
        np.testing.assert_allclose(june.duty_paid.values[selling], 0.54 * june.revenue.values[selling], rtol=1e-9)
    else:  # USD 100 a package of one unit
        np.testing.assert_allclose(june.duty_paid.values[selling], duty_per_unit * sold[selling], rtol=1e-9)
