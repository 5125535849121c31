"""Calibration: the reference baseline reproduces the fitted targets of calibration_targets.yaml;
the held-out checks are reported apart (and may fail: they are what the fit did not use)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cbecsim.calibration import HELD_OUT, TARGETS, calibration_table, check_calibration
from helpers import CONFIGS, cli


def test_baseline_reproduces_the_observed_aggregates():
    table = check_calibration(CONFIGS / "baseline.yaml", replications=8)
    assert list(table.index) == [t.name for t in TARGETS + HELD_OUT]
    fitted = table[table["role"] == "fitted"]
    assert len(fitted) == 7 and fitted["passed"].all(), fitted[["estimate", "low", "high"]].to_string()
    held = table[table["role"] == "held_out"]
    # A held-out check is measured (True/False) or says why it is not; never silently passed.
    assert all(p in (True, False) or (p is None and note) for p, note in zip(held["passed"], held["note"]))
    assert held.loc["return_rate_electronics", "passed"] in (True, False)
    assert held.loc["return_rate_apparel", "passed"] is None  # no apparel market in the baseline


def _tiny() -> xr.Dataset:
    """Two replications, one period, two sellers (traffic_first, brand_matrix), one market."""
    sm = ("replication", "time", "seller", "market")
    shape = (2, 1, 2, 1)
    data = {
        "units_sold": (sm, np.array([[[[10.0], [30.0]]], [[[20.0], [20.0]]]])),
        "organic_share": (sm, np.full(shape, 0.5)),
        "revenue": (sm, np.array([[[[200.0], [900.0]]], [[[400.0], [600.0]]]])),
        "ad_spend": (sm, np.array([[[[56.0], [45.0]]], [[[112.0], [30.0]]]])),
        "clicks": (sm, np.array([[[[50.0], [40.0]]], [[[100.0], [30.0]]]])),
        "landed_cost": (sm, np.array([[[[8.0], [17.0]]], [[[8.0], [17.0]]]])),
        "shoppers": (("replication", "time", "market"), np.array([[[1000.0]], [[2000.0]]])),
    }
    return xr.Dataset(data, coords={"strategy": ("seller", ["traffic_first", "brand_matrix"])})


def test_targets_by_hand():
    table = calibration_table(_tiny(), TARGETS)
    # Replication 0: units 40 / shoppers 1000 = 4%; replication 1: 40 / 2000 = 2%.
    assert table.loc["site_conversion", "estimate"] == pytest.approx(0.03)
    # CPC: (56 + 45) / 90 and (112 + 30) / 130.
    assert table.loc["cost_per_click", "estimate"] == pytest.approx((101 / 90 + 142 / 130) / 2)
    # Ad-attributed units are half the units: 20 / 90 and 20 / 130.
    assert table.loc["ad_click_conversion", "estimate"] == pytest.approx((20 / 90 + 20 / 130) / 2)
    # ACoS: spend over half the revenue: 101 / 550 and 142 / 500.
    assert table.loc["acos", "estimate"] == pytest.approx((101 / 550 + 142 / 500) / 2)
    # Traffic-first TACoS: 56 / 200 and 112 / 400 = 28% in both, above the 10-20% band.
    assert table.loc["seller_tacos_traffic_first", "estimate"] == pytest.approx(0.28)
    assert not table.loc["seller_tacos_traffic_first", "passed"]
    # Brand TACoS: 45 / 900 and 30 / 600 = 5%, on the band's lower edge.
    assert table.loc["seller_tacos_brand", "estimate"] == pytest.approx(0.05)
    assert table.loc["seller_tacos_brand", "passed"]
    # Brand matrix: 1 - 30 * 17 / 900 and 1 - 20 * 17 / 600.
    assert table.loc["brand_gross_margin", "estimate"] == pytest.approx(1 - (510 / 900 + 340 / 600) / 2)


def test_held_out_exit_rate_is_annualised_by_hand():
    from cbecsim.calibration import calibration_table as table_of

    result = _tiny().assign_coords(time=[np.datetime64("2024-01-01")],
                                   period_end=("time", [np.datetime64("2024-07-01")]))
    result["exit_reason"] = (("replication", "seller"), np.array([["survived", "insolvent"], ["survived", "survived"]]))
    exit_rate = [t for t in HELD_OUT if t.name == "seller_annual_exit_rate"]
    table = table_of(result, tuple(exit_rate))
    # 2024-01-01 to 2024-07-01 inclusive is 183 days; p_T = 1/2 and 0: 1 - (1/2)^(365/183) and 0, mean of the two.
    assert table.loc["seller_annual_exit_rate", "estimate"] == pytest.approx((1 - 0.5 ** (365 / 183)) / 2)


def test_cli_calibration_exit_codes():
    done = cli("validate", str(CONFIGS / "baseline.yaml"), "--calibration", "-n", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all 7 fitted targets within their bands" in done.stdout and "held-out:" in done.stdout
    # Doubling the shoppers' price sensitivity pushes conversion out of its band: exit 1.
    done = cli("validate", str(CONFIGS / "baseline.yaml"), "--calibration", "-n", "4",
               "--set", "markets.US/charging.base_utility=-4", "--set", "markets.EU/charging.base_utility=-4",
               "--set", "markets.US/audio.base_utility=-4")
    assert done.returncode == 1
    assert "site_conversion" in done.stdout and "OUT" in done.stdout


def test_perturbation_runs_give_substitutes_and_a_downward_demand():
    """Paired ±5% price runs of one focal seller per strategy: its own units fall with its
    price (elasticity < 0, 95% interval below 0) and its rivals' rise (cross > 0)."""
    from cbecsim.calibration import perturbation_values

    values = perturbation_values(CONFIGS / "baseline.yaml", replications=8, seed=3)
    for name, sign in (("own_price_elasticity", -1), ("cross_price_elasticity", 1)):
        x = values[name]
        assert not isinstance(x, str) and x.shape == (8,), name
        half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
        assert sign * x.mean() - half > 0, (name, x)
    assert not isinstance(values["ad_incrementality"], str) and (values["ad_incrementality"] > 0).all()
