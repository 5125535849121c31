"""Calibration: the reference baseline reproduces FACTS.md's marketplace aggregates."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cbecsim.calibration import TARGETS, calibration_table, check_calibration
from helpers import CONFIGS, cli


def test_baseline_reproduces_the_observed_aggregates():
    table = check_calibration(CONFIGS / "baseline.yaml", replications=8)
    assert set(table.index) == {t.name for t in TARGETS}
    assert table["passed"].all(), table[["estimate", "low", "high"]].to_string()


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
    table = calibration_table(_tiny())
    # Replication 0: units 40 / shoppers 1000 = 4%; replication 1: 40 / 2000 = 2%.
    assert table.loc["site_conversion", "estimate"] == pytest.approx(0.03)
    # CPC: (56 + 45) / 90 and (112 + 30) / 130.
    assert table.loc["cost_per_click", "estimate"] == pytest.approx((101 / 90 + 142 / 130) / 2)
    # Ad-attributed units are half the units: 20 / 90 and 20 / 130.
    assert table.loc["ad_click_conversion", "estimate"] == pytest.approx((20 / 90 + 20 / 130) / 2)
    # ACoS: spend over half the revenue: 101 / 550 and 142 / 500.
    assert table.loc["acos", "estimate"] == pytest.approx((101 / 550 + 142 / 500) / 2)
    # Traffic-first: 56 / 200 and 112 / 400 = 28% in both.
    assert table.loc["traffic_first_marketing_share", "estimate"] == pytest.approx(0.28)
    assert table.loc["traffic_first_marketing_share", "passed"]
    # Brand matrix: 1 - 30 * 17 / 900 and 1 - 20 * 17 / 600.
    assert table.loc["brand_matrix_gross_margin", "estimate"] == pytest.approx(1 - (510 / 900 + 340 / 600) / 2)


def test_cli_calibration_exit_codes():
    done = cli("validate", str(CONFIGS / "baseline.yaml"), "--calibration", "-n", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all 6 targets within their bands" in done.stdout
    # Doubling the shoppers' price sensitivity pushes conversion out of its band: exit 1.
    done = cli("validate", str(CONFIGS / "baseline.yaml"), "--calibration", "-n", "4",
               "--set", "markets.US/charging.base_utility=-4", "--set", "markets.EU/charging.base_utility=-4",
               "--set", "markets.US/audio.base_utility=-4")
    assert done.returncode == 1
    assert "site_conversion" in done.stdout and "OUT" in done.stdout
