"""Kaplan-Meier, Greenwood, median survival and hazard windows against hand computations."""

import numpy as np
import pandas as pd
import pytest

from analysis_data import synthetic_result
from cbecsim import analysis as ca


def test_kaplan_meier_matches_a_hand_computed_example_with_censoring():
    # Subjects (time, event?): (2, exit) (3, exit) (3, censored) (5, exit) (6, censored)
    # (8, exit) (8, exit) (10, censored). Censored at t count as at risk at t.
    #
    #  t | at risk n | exits d | S(t) = prod (1 - d/n)        | Greenwood sum d/(n(n-d))
    #  2 |     8     |    1    | 7/8             = 0.875      | 1/56             = 0.0178571
    #  3 |     7     |    1    | 0.875 * 6/7     = 0.75       | + 1/42  -> 0.0416667
    #  5 |     5     |    1    | 0.75 * 4/5      = 0.6        | + 1/20  -> 0.0916667
    #  8 |     3     |    2    | 0.6 * 1/3       = 0.2        | + 2/3   -> 0.7583333
    # SE = S * sqrt(sum): t=3: 0.75 * sqrt(0.0416667) = 0.1530931; t=5: 0.6 * sqrt(0.0916667)
    # = 0.1816590; t=8: 0.2 * sqrt(0.7583333) = 0.1741647.
    # log(-log) 95% interval at t=5: se_theta = sqrt(0.0916667) / |ln 0.6| = 0.3027650 / 0.5108256
    # = 0.5926974; z * se_theta = 1.959964 * 0.5926974 = 1.1616656;
    # low = 0.6 ** exp(1.1616656) = 0.6 ** 3.1952509 = 0.1954959;
    # high = 0.6 ** exp(-1.1616656) = 0.6 ** 0.3129645 = 0.8522543.
    durations = np.array([2, 3, 3, 5, 6, 8, 8, 10])
    observed = np.array([1, 1, 0, 1, 0, 1, 1, 0], bool)
    grid = np.array([0, 2, 3, 4, 5, 7, 8, 10])
    estimate = ca.kaplan_meier_estimate(durations, observed, grid)
    np.testing.assert_allclose(estimate["survival"], [1, 0.875, 0.75, 0.75, 0.6, 0.6, 0.2, 0.2])
    np.testing.assert_allclose(estimate["se"][[2, 4, 6]], [0.1530931, 0.1816590, 0.1741647], atol=1e-6)
    np.testing.assert_allclose([estimate["low"][4], estimate["high"][4]], [0.1954959, 0.8522543], atol=1e-6)
    np.testing.assert_array_equal(estimate["at_risk"], [8, 8, 7, 5, 5, 3, 3, 1])
    np.testing.assert_array_equal(estimate["events"], [0, 1, 1, 0, 1, 0, 2, 0])
    plain = ca.kaplan_meier_estimate(durations, observed, grid, transform="plain")
    np.testing.assert_allclose(plain["low"][4], 0.6 - 1.959964 * 0.1816590, atol=1e-5)


def test_kaplan_meier_of_a_result_with_censoring_at_the_horizon():
    # 28 days; group alpha (3 sellers) x 4 replications = 12 subjects, 5 exit.
    exits = np.array([[3, np.nan, 20, np.nan, 1],
                      [np.nan, np.nan, np.nan, 4, np.nan],
                      [3, 10, np.nan, np.nan, np.nan],
                      [np.nan, 27, np.nan, np.nan, 6]])
    result = synthetic_result(replications=4, exit_days=exits)
    curves = ca.kaplan_meier(result)
    assert curves["survival"].dims == ("strategy", "day") and curves.sizes["day"] == 28
    alpha = curves.sel(strategy="alpha")
    # Censoring only at the horizon: S(d) is the share not exited by the end of day d.
    np.testing.assert_allclose(alpha["survival"].sel(day=[2, 3, 9, 10, 20, 27]),
                               [1, 10 / 12, 10 / 12, 9 / 12, 8 / 12, 7 / 12])
    # ... so its last value is the share alive at the end of the last period,
    alive = result["alive"].isel(time=-1).values[:, :3].mean()
    np.testing.assert_allclose(alpha["survival"].isel(day=-1), alive)
    # ... and Greenwood's variance reduces to the binomial p (1 - p) / n.
    p = 7 / 12
    np.testing.assert_allclose(alpha["greenwood_se"].isel(day=-1), np.sqrt(p * (1 - p) / 12))
    assert str(alpha["date"].values[3])[:10] == "2025-01-04"
    # beta: 2 sellers x 4 = 8 subjects, exits on days 1, 4, 6 -> median never reached
    medians = ca.median_survival(curves)
    assert np.isnan(medians["median_days"].sel(strategy="beta"))
    assert np.isnat(medians["median_date"].sel(strategy="beta").values)


def test_median_survival_and_its_interval():
    # One replication, 4 alpha sellers exit on days 3 and 5 (2 survive): S = 1, 3/4 (day 3),
    # 1/2 (day 5) -> median day 5 (first day with S <= 0.5).
    exits = np.array([[3, 5, np.nan, np.nan, np.nan, np.nan]])
    result = synthetic_result(replications=1, strategies={"alpha": 4, "beta": 2}, exit_days=exits)
    medians = ca.median_survival(ca.kaplan_meier(result))
    assert float(medians["median_days"].sel(strategy="alpha")) == 5
    assert str(medians["median_date"].sel(strategy="alpha").values)[:10] == "2025-01-06"
    # The lower band reaches 0.5 no later than the estimate; the upper band never does here.
    assert float(medians["median_low_days"].sel(strategy="alpha")) <= 5
    assert np.isnan(medians["median_high_days"].sel(strategy="alpha"))


def test_bootstrap_band_resamples_replications():
    rng = np.random.default_rng(0)
    exits = np.where(rng.random((30, 5)) < 0.4, rng.integers(0, 28, (30, 5)), np.nan)
    result = synthetic_result(replications=30, exit_days=exits)
    greenwood = ca.kaplan_meier(result)
    boot = ca.kaplan_meier(result, ci_method="bootstrap", n_boot=400, seed=1)
    np.testing.assert_allclose(boot["survival"], greenwood["survival"])
    assert (boot["survival_low"] <= boot["survival"] + 1e-12).all()
    assert (boot["survival_high"] >= boot["survival"] - 1e-12).all()
    assert boot.attrs["ci_method"] == "bootstrap"


def test_hazard_before_and_after_a_date_by_hand():
    # 28 days, date = day 14, window 7: before = days 7..13, after = days 14..20.
    # alpha: seller 0 exits day 10, seller 1 exits day 16, seller 2 survives.
    #   before: exits 1; seller-days at risk 4 (days 7-10) + 7 + 7 = 18 -> 1/18
    #   after:  exits 1; seller-days 0 + 3 (days 14-16) + 7 = 10 -> 1/10; ratio 1.8
    exits = np.array([[10, 16, np.nan, np.nan, 2]])
    result = synthetic_result(replications=1, exit_days=exits)
    hazard = ca.hazard_around(result, ["2025-01-15"], window_days=7, n_boot=50)
    alpha = hazard.sel(strategy="alpha").isel(date=0)
    np.testing.assert_array_equal(alpha["exits"], [1, 1])
    np.testing.assert_array_equal(alpha["seller_days"], [18, 10])
    np.testing.assert_allclose(alpha["hazard"], [1 / 18, 1 / 10])
    np.testing.assert_allclose(alpha["rate_ratio"], 1.8)
    assert hazard["hazard"].attrs["units"] == "exits per seller-day"
    # beta: seller 4 exited on day 2, before both windows: no exposure, no rate
    beta = hazard.sel(strategy="beta").isel(date=0)
    np.testing.assert_array_equal(beta["seller_days"], [7, 7])
    np.testing.assert_array_equal(beta["exits"], [0, 0])
    assert pd.Timestamp(hazard["date"].values[0]) == pd.Timestamp("2025-01-15")


def test_hazard_window_must_be_positive():
    with pytest.raises(ValueError, match="window_days"):
        ca.hazard_around(synthetic_result(), ["2025-01-15"], window_days=0)
