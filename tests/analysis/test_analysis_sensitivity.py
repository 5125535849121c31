"""Sobol indices with replicate noise (Ishigami) and PRIM scenario discovery on sweep-shaped data.

Ishigami (a = 7, b = 0.1, x ~ U[-pi, pi]^3) has analytic indices (Ishigami & Homma 1990;
Saltelli et al. 2008, Global Sensitivity Analysis, sec. 4.7):
S1 = (0.3139, 0.4424, 0), ST = (0.5576, 0.4424, 0.2437), output variance 13.8446.

Tolerance: 0.05 on each index, about SALib's own 95% half-width for a Saltelli design
with N = 1024 base samples (S1_conf 0.05-0.065 here); the seeds are fixed, so the test
is deterministic.
"""

import numpy as np
import pytest
from SALib.sample import sobol as sobol_sample

from analysis_data import ishigami, sweep_of_outcome, synthetic_result
from cbecsim import analysis as ca

S1_TRUE = np.array([0.3139, 0.4424, 0.0])
ST_TRUE = np.array([0.5576, 0.4424, 0.2437])
PROBLEM = {"num_vars": 3, "names": ["x1", "x2", "x3"], "bounds": [[-np.pi, np.pi]] * 3}
TOLERANCE = 0.05


def noisy_ishigami_sweep(noise_sd, replications, second_order=False, common_sd=0.0, seed=2):
    points = sobol_sample.sample(PROBLEM, 1024, calc_second_order=second_order, seed=1)
    rng = np.random.default_rng(seed)
    common = rng.normal(0, common_sd, (1, replications))  # shared by every scenario (CRN)
    outcome = ishigami(points)[:, None] + common + rng.normal(0, noise_sd, (points.shape[0], replications))
    return sweep_of_outcome(points, PROBLEM["names"], outcome), outcome


def test_sobol_indices_of_noisy_ishigami_recover_the_analytic_values():
    sweep, outcome = noisy_ishigami_sweep(noise_sd=1.0, replications=8)
    indices = ca.sobol_indices(sweep, "final_cash", by=None, n_boot=50, seed=3).isel(group=0)
    assert list(indices["factor"].values) == ["x1", "x2", "x3"]
    np.testing.assert_allclose(indices["S1"], S1_TRUE, atol=TOLERANCE)
    np.testing.assert_allclose(indices["ST"], ST_TRUE, atol=TOLERANCE)
    # The noise share: var(noise of the mean) / var(Ybar) = (1 / 8) / var_s(Ybar), about 0.9%.
    expected = (1.0 / 8) / outcome.mean(1).var(ddof=1)
    assert float(indices["noise_share"]) == pytest.approx(expected, rel=0.15)
    # Replication-bootstrap intervals are present and ordered.
    assert (indices["S1_low"] <= indices["S1_high"]).all() and (indices["ST_low"] <= indices["ST_high"]).all()
    assert indices.attrs["second_order_layout"] == 0


def test_noise_is_accounted_for_when_it_is_a_sizeable_share():
    # sd 3 over 4 replications: noise variance of the mean 2.25, about 14% of var(Ybar).
    sweep, outcome = noisy_ishigami_sweep(noise_sd=3.0, replications=4)
    indices = ca.sobol_indices(sweep, "final_cash", by=None, n_boot=50, seed=3).isel(group=0)
    expected = (9.0 / 4) / outcome.mean(1).var(ddof=1)
    assert float(indices["noise_share"]) == pytest.approx(expected, rel=0.15)
    # Raw first-order indices are pulled down by the noise (x2: 0.44 -> about 0.37) ...
    assert float(indices["S1"].sel(factor="x2")) < S1_TRUE[1] - 0.05
    # ... the denoised ones recover the analytic values.
    np.testing.assert_allclose(indices["S1_denoised"], S1_TRUE, atol=TOLERANCE)
    np.testing.assert_allclose(indices["ST_denoised"], ST_TRUE, atol=TOLERANCE + 0.01)


def test_noise_common_to_all_scenarios_is_not_counted_as_noise():
    # A large shock shared by every scenario in a replication (sd 5, common random numbers)
    # moves all scenario means together: it changes no index.
    sweep, _ = noisy_ishigami_sweep(noise_sd=0.5, replications=6, common_sd=5.0)
    indices = ca.sobol_indices(sweep, "final_cash", by=None, n_boot=50, seed=3).isel(group=0)
    assert float(indices["noise_share"]) < 0.01
    np.testing.assert_allclose(indices["S1"], S1_TRUE, atol=TOLERANCE)


def test_a_factor_of_string_levels_is_analysed_from_the_stored_unit_sample():
    """A sweep store keeps ``design_unit`` (scenario, factor); a factor whose levels are
    strings has no numeric coordinate, yet it is part of the design and gets indices."""
    sweep, _ = noisy_ishigami_sweep(noise_sd=1.0, replications=4)
    unit = np.column_stack([(sweep[name].values + np.pi) / (2 * np.pi) for name in PROBLEM["names"]])
    # x1 as a factor of two string levels (as the store writes levels[floor(u n)]);
    # the outcome still follows the continuous x1, so the indices stay Ishigami's.
    labels = np.where(unit[:, 0] < 0.5, "low", "high")
    sweep = sweep.assign_coords(x1=("scenario", labels), factor=("factor", PROBLEM["names"]),
                                design_unit=(("scenario", "factor"), unit))
    sweep.attrs["sobol_second_order"] = 0
    indices = ca.sobol_indices(sweep, "final_cash", by=None, n_boot=0).isel(group=0)
    assert list(indices["factor"].values) == ["x1", "x2", "x3"]
    np.testing.assert_allclose(indices["S1"], S1_TRUE, atol=TOLERANCE)
    np.testing.assert_allclose(indices["ST"], ST_TRUE, atol=TOLERANCE)


def test_second_order_layout_is_detected_and_other_designs_refused():
    sweep, _ = noisy_ishigami_sweep(noise_sd=1.0, replications=3, second_order=True)
    indices = ca.sobol_indices(sweep, "final_cash", by=None, n_boot=0)
    assert indices.attrs["second_order_layout"] == 1
    np.testing.assert_allclose(indices["S1"].isel(group=0), S1_TRUE, atol=TOLERANCE)
    shuffled = sweep.isel(scenario=np.random.default_rng(0).permutation(sweep.sizes["scenario"]))
    with pytest.raises(ca.ResultError, match="do not form a Saltelli"):
        ca.sobol_indices(shuffled, "final_cash", by=None, n_boot=0)
    with pytest.raises(ca.ResultError, match="design is 'lhs'"):
        ca.sobol_indices(sweep.assign_attrs(design="lhs"), "final_cash", by=None, n_boot=0)
    runs = ca.combine_runs([synthetic_result() for _ in range(3)], factors={"duty": [0.1, 0.2, 0.3]})
    with pytest.raises(ca.ResultError, match="design is 'combined runs'"):
        ca.sobol_indices(runs, "survival")


def test_prim_box_finds_the_factor_ranges_of_low_survival():
    # Survival share is low (0.2) exactly where x1 > 0.7 and x2 < 0.3, else 0.8; x3 is irrelevant.
    rng = np.random.default_rng(4)
    points = rng.random((800, 3))
    low = (points[:, 0] > 0.7) & (points[:, 1] < 0.3)
    outcome = np.where(low, 0.2, 0.8)[:, None] + rng.normal(0, 0.1, (800, 4))
    sweep = sweep_of_outcome(points, ["x1", "x2", "x3"], outcome, design="lhs")
    box = ca.scenario_discovery(sweep, "final_cash", threshold=0.5, by=None)
    assert box.n_cases == int(low.sum())
    assert box.coverage >= 0.8 and box.density >= 0.9
    limits = box.limits
    assert bool(limits.loc["x1", "restricted"]) and bool(limits.loc["x2", "restricted"])
    assert not bool(limits.loc["x3", "restricted"])
    assert 0.6 <= limits.loc["x1", "low"] <= 0.75 and 0.25 <= limits.loc["x2", "high"] <= 0.4
    assert "x1 >= " in box.rule and "x2 <= " in box.rule and "x3" not in box.rule
    peel = box.trajectory[box.trajectory["phase"] == "peel"]
    assert peel["mass"].is_monotonic_decreasing
    paste = box.trajectory[box.trajectory["phase"] == "paste"]
    assert paste["mass"].is_monotonic_increasing and paste["density"].is_monotonic_increasing


def test_prim_on_combined_runs_and_its_errors():
    runs = []
    for duty in (0.0, 0.5, 1.0, 1.5):
        exits = np.where(np.random.default_rng(int(duty * 10)).random((6, 5)) < duty / 1.5, 3.0, np.nan)
        runs.append(synthetic_result(exit_days=exits))
    sweep = ca.combine_runs(runs, factors={"duty": [0.0, 0.5, 1.0, 1.5]})
    box = ca.scenario_discovery(sweep, "survival", threshold=0.5, group="alpha", peel_alpha=0.25, min_mass=0.2)
    # The cut lies between the levels 0.5 and 1.0; the box keeps the levels 1.0 and 1.5.
    assert 0.5 < box.limits.loc["duty", "low"] <= 1.0 and box.limits.loc["duty", "low_observed"] == 1.0
    assert box.density == 1.0
    with pytest.raises(ca.ResultError, match="nothing to discover"):
        ca.scenario_discovery(sweep, "survival", threshold=-1, group="alpha")
    with pytest.raises(ValueError, match="pick one strategy"):
        ca.scenario_discovery(sweep, "survival")
    with pytest.raises(ca.ResultError, match="needs a sweep"):
        ca.scenario_discovery(runs[0], "survival")
