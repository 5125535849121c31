"""Monte Carlo intervals: coverage on known distributions, clustering, units and shapes.

Coverage tolerance: over 400 independent trials the number of intervals covering the
true value is Binomial(400, 0.95) if the nominal level holds, with standard error
sqrt(0.95 * 0.05 / 400) = 0.0109. The accepted band 0.93 .. 0.97 is the nominal level
+/- 1.8 SE (and wide enough for the small known under-coverage of bootstrap intervals
at 60-100 replications, O(1/n)). All draws are seeded, so the test is deterministic.
"""

import numpy as np
import pytest
import xarray as xr

from analysis_data import synthetic_result
from cbecsim import analysis as ca
from cbecsim.analysis.stats import _summarise, quantiles_sorted

TRIALS = 400
LOW, HIGH = 0.93, 0.97


def coverage(draw, interval, truth, seed=2024):
    rng = np.random.default_rng(seed)
    hits = 0
    for trial in range(TRIALS):
        low, high = interval(draw(rng), trial)
        hits += low <= truth <= high
    return hits / TRIALS


def test_percentile_bootstrap_of_a_normal_mean_covers_at_the_nominal_level():
    share = coverage(lambda rng: rng.normal(3.0, 2.0, 100),
                     lambda x, i: ca.bootstrap_ci(x, "mean", method="percentile", n_boot=1000, seed=i)[1:], 3.0)
    assert LOW <= share <= HIGH, share


def test_bca_bootstrap_of_a_skewed_mean_covers_at_the_nominal_level():
    # Exponential(1): skewness 2, the case BCa is for.
    share = coverage(lambda rng: rng.exponential(1.0, 100),
                     lambda x, i: ca.bootstrap_ci(x, "mean", method="bca", n_boot=1000, seed=i)[1:], 1.0)
    assert LOW <= share <= HIGH, share


def test_analytic_mean_and_woodruff_median_intervals_cover_at_the_nominal_level():
    assert LOW <= coverage(lambda rng: rng.normal(3.0, 2.0, 100), lambda x, i: ca.mean_ci(x)[1:], 3.0) <= HIGH

    def woodruff(x, _):
        parts = _summarise(x[None, :, None], np.array([0.5]), 0.95, "analytic", "bca", 0, None, want_mean=False)
        return parts["quantile_low"][0, 0], parts["quantile_high"][0, 0]

    assert LOW <= coverage(lambda rng: rng.normal(3.0, 2.0, 100), woodruff, 3.0) <= HIGH


def test_resampling_replications_not_sellers_keeps_coverage_under_shared_shocks():
    # 60 replications x 10 sellers; each replication has a shared shock N(0, 1) on top of
    # seller noise N(0, 1). Resampling replications covers; resampling seller-replications
    # as if independent does not (its interval is about sqrt(1 + 10 * 1) / sqrt(2) = 2.3x too narrow).
    def draw(rng):
        return rng.normal(0, 1, (60, 1)) + rng.normal(0, 1, (60, 10))

    by_replication = coverage(draw, lambda x, i: ca.bootstrap_ci(x, "mean", method="percentile", n_boot=500,
                                                                 seed=i)[1:], 0.0)
    by_seller = coverage(draw, lambda x, i: ca.bootstrap_ci(x.reshape(-1, 1), "mean", method="percentile",
                                                            n_boot=500, seed=i)[1:], 0.0)
    assert LOW <= by_replication <= HIGH, by_replication
    assert by_seller < 0.75, by_seller


def test_quantiles_sorted_matches_numpy_and_skips_nan():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(4, 37))
    probabilities = [0.0, 0.05, 0.5, 0.9, 1.0]
    np.testing.assert_allclose(quantiles_sorted(values, probabilities), np.quantile(values, probabilities, axis=1).T)
    values[0, :10] = np.nan
    np.testing.assert_allclose(quantiles_sorted(values, probabilities)[0], np.nanquantile(values[0], probabilities))
    assert np.isnan(quantiles_sorted(np.full((1, 3), np.nan), [0.5])).all()


def test_describe_groups_units_and_reproducible_seeded_intervals():
    revenue = np.random.default_rng(3).gamma(2.0, 50.0, (8, 4, 5, 2))
    result = synthetic_result(replications=8, revenue=revenue)
    described = ca.describe(result, "revenue", n_boot=300, seed=5)
    assert described["mean_value"].dims == ("strategy",)
    assert described["quantile_value"].dims == ("strategy", "quantile")
    assert described["mean_value"].attrs["units"] == "USD"
    assert list(described["strategy"].values) == ["alpha", "beta"]
    per_seller = revenue.sum(axis=(1, 3))  # (replication, seller): the horizon total per seller
    np.testing.assert_allclose(described["mean_value"].sel(strategy="alpha"), per_seller[:, :3].mean())
    np.testing.assert_allclose(described["quantile_value"].sel(strategy="beta", quantile=0.5),
                               np.median(per_seller[:, 3:]))
    assert (described["mean_low"] <= described["mean_value"]).all()
    assert (described["mean_value"] <= described["mean_high"]).all()
    again = ca.describe(result, "revenue", n_boot=300, seed=5)
    xr.testing.assert_identical(described, again)
    assert not np.allclose(ca.describe(result, "revenue", n_boot=300, seed=6)["mean_low"], described["mean_low"])
    # per period: time kept
    over_time = ca.describe(result, "revenue", time=None, ci=None)
    assert over_time["mean_value"].dims == ("strategy", "time")
    # replication level: the group's mean per replication first
    level = ca.describe(result, "revenue", level="replication", method="analytic")
    np.testing.assert_allclose(level["quantile_value"].sel(strategy="alpha", quantile=0.5),
                               np.median(per_seller[:, :3].mean(1)))


def test_describe_on_a_sweep_keeps_the_scenario_dim_and_factor_coords():
    runs = [synthetic_result(replications=5, revenue=100.0 * (k + 1)) for k in range(3)]
    sweep = ca.combine_runs(runs, factors={"duty": [0.0, 0.5, 1.0]})
    described = ca.describe(sweep, "revenue", ci=None)
    assert described["mean_value"].dims == ("scenario", "strategy")
    np.testing.assert_allclose(described["duty"], [0.0, 0.5, 1.0])
    # 4 periods x 2 markets x 100 * (k + 1) per seller
    np.testing.assert_allclose(described["mean_value"].sel(strategy="alpha"), [800, 1600, 2400])


def test_replications_needed_gives_the_width_asked_for():
    rng = np.random.default_rng(7)
    pilot = rng.normal(0, 10.0, 50)
    needed = ca.replications_needed(pilot, width=2.0)
    sd = pilot.std(ddof=1)
    assert abs(needed - (2 * 1.96 * sd / 2.0) ** 2) < 0.05 * needed + 3
    # With that many replications the t interval's width is at most 2 (given the pilot's sd),
    # and with one fewer it is wider.
    from scipy import stats

    def width(n):
        return 2 * stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n)

    assert width(needed) <= 2.0 < width(needed - 1)
    result = synthetic_result(replications=6, revenue=rng.gamma(2.0, 50.0, (6, 4, 5, 2)))
    per_group = ca.replications_needed(result, 50.0, "revenue")
    assert per_group.dims == ("strategy",) and per_group.attrs["units"] == "replications"
    assert (per_group > 1).all()


def test_bad_arguments_are_refused_with_the_reason():
    result = synthetic_result()
    with pytest.raises(ValueError, match="level"):
        ca.describe(result, "revenue", level="market")
    with pytest.raises(ca.ResultError, match="unknown variable 'nope'"):
        ca.describe(result, "nope")
    with pytest.raises(ca.ResultError, match="not a seller coordinate"):
        ca.describe(result, "revenue", by="market")
    with pytest.raises(ValueError, match="bca"):
        ca.describe(result, "revenue", bootstrap="student")
    with pytest.raises(ca.ResultError, match="lacks variables exit_day"):
        ca.kaplan_meier(result.drop_vars("exit_day"))
