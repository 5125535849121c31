"""The four analysis functions that disagreed with independent references (issue 16),
checked against those references:

* ``replications_needed`` against a brute-force search over n;
* the unpaired (Welch) interval of ``paired_difference`` against
  ``scipy.stats.ttest_ind(equal_var=False).confidence_interval``;
* ``sobol_indices`` intervals reproducible at every seed, 0 included (SALib ignores 0);
* ``scenario_discovery`` (PRIM with pasting) against EMA Workbench's ``Prim`` on a
  planted box: the same peeling trajectory step by step and the same pasted box.
"""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis_data import ishigami, sweep_of_outcome, synthetic_result
from cbecsim import analysis as ca
from cbecsim.analysis.sensitivity import _paste, _peel, edge_quantile, salib_seed
from cbecsim.analysis.stats import smallest_replications


def _brute_force(sd: float, width: float, level: float) -> int:
    n = 2
    while 2 * stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n) > width:
        n += 1
    return n


def test_replications_needed_is_the_smallest_n_on_random_cases():
    rng = np.random.default_rng(16)
    wrong = []
    for _ in range(300):
        sd = float(rng.uniform(0.1, 10))
        width = sd * float(rng.uniform(0.4, 6))  # true n from 2 to ~100
        level = float(rng.choice([0.8, 0.9, 0.95, 0.99]))
        expected = _brute_force(sd, width, level)
        if smallest_replications(sd, width, level) != expected:
            wrong.append((sd, width, level, expected))
    assert wrong == []
    # The case: an interval of 2.5 s at 95% needs 5 replications (4 gives 3.18 s).
    assert smallest_replications(1.0, 2.5) == 5
    pilot = np.array([0.0, 1.0, 2.0, 3.0])
    assert ca.replications_needed(pilot, width=2.5 * pilot.std(ddof=1)) == 5


def test_replications_needed_for_large_n_matches_the_normal_approximation():
    # Far from small n, t ~ z: n ~ (2 z s / w)^2; the bisection must land on the exact smallest n.
    sd, width = 1.0, 0.01
    n = smallest_replications(sd, width)
    t_width = lambda k: 2 * stats.t.ppf(0.975, k - 1) * sd / np.sqrt(k)  # noqa: E731
    assert t_width(n) <= width < t_width(n - 1)
    assert abs(n - (2 * stats.norm.ppf(0.975) * sd / width) ** 2) < 0.01 * n


@pytest.mark.parametrize("scale_b", [1.0, 3.0, 10.0])
def test_unpaired_interval_is_welch_as_scipy_computes_it(scale_b):
    rng = np.random.default_rng(int(scale_b))
    R = 12
    a = synthetic_result(replications=R, revenue=100 + rng.normal(0, 5, (R, 4, 5, 2)), name="a")
    b = synthetic_result(replications=R, revenue=90 + rng.normal(0, 5 * scale_b, (R, 4, 5, 2)), name="b")
    diff = ca.paired_difference(a, b, "revenue").sel(strategy="alpha")
    x = a["revenue"].values.sum(axis=(1, 3))[:, :3].mean(1)
    y = b["revenue"].values.sum(axis=(1, 3))[:, :3].mean(1)
    reference = stats.ttest_ind(x, y, equal_var=False)
    low, high = reference.confidence_interval(0.95)
    np.testing.assert_allclose([float(diff["unpaired_low"]), float(diff["unpaired_high"])], [low, high],
                               rtol=1e-12)
    np.testing.assert_allclose(float(diff["welch_df"]), reference.df, rtol=1e-12)
    assert R - 1 <= float(diff["welch_df"]) <= 2 * (R - 1)  # Welch's df lies between R - 1 and the pooled 2R - 2


PROBLEM = {"num_vars": 3, "names": ["x1", "x2", "x3"], "bounds": [[-np.pi, np.pi]] * 3}


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_sobol_intervals_are_reproducible_for_every_seed_including_0(seed):
    from SALib.sample import sobol as sobol_sample

    points = sobol_sample.sample(PROBLEM, 64, calc_second_order=False, seed=1)
    rng = np.random.default_rng(3)
    outcome = ishigami(points)[:, None] + rng.normal(0, 1.0, (points.shape[0], 3))
    sweep = sweep_of_outcome(points, PROBLEM["names"], outcome)
    first = ca.sobol_indices(sweep, "final_cash", by=None, n_boot=5, num_resamples=20, seed=seed)
    np.random.seed(seed + 99)  # a different global numpy state must not matter
    second = ca.sobol_indices(sweep, "final_cash", by=None, n_boot=5, num_resamples=20, seed=seed)
    for name in ("S1_conf", "ST_conf", "S1_low", "ST_high"):
        np.testing.assert_array_equal(first[name].values, second[name].values, err_msg=name)
    assert salib_seed(seed) == seed + 1 and salib_seed(seed) != 0


def _planted(n=1000, seed=3):
    """x ~ U[0,1]^3; cases (probability 0.9) where x1 > 0.5 and x2 < 0.4, else probability 0.05."""
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 1, (n, 3))
    box = (points[:, 0] > 0.5) & (points[:, 1] < 0.4)
    cases = np.where(box, rng.uniform(size=n) < 0.9, rng.uniform(size=n) < 0.05)
    return points, cases


def test_edge_quantile_is_the_sdtoolkit_quantile_of_ema_workbench():
    prim_util = pytest.importorskip("ema_workbench.analysis.prim_util")
    rng = np.random.default_rng(1)
    for _ in range(200):
        data = np.round(rng.uniform(0, 5, rng.integers(1, 40)), int(rng.integers(0, 3)))  # with ties
        q = float(rng.choice([0.05, 0.1, 0.5, 0.9, 0.95]))
        assert edge_quantile(data, q) == prim_util.get_quantile(data, q)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:The inplace keyword")
@pytest.mark.parametrize("seed", [3, 8])
def test_prim_peels_and_pastes_as_ema_workbench_on_a_planted_box(seed):
    prim = pytest.importorskip("ema_workbench.analysis.prim")
    points, cases = _planted(seed=seed)
    y = cases.astype(int)
    ours = _peel(points, y.astype(float), 0.05, 0.05)
    reference = prim.Prim(pd.DataFrame(points, columns=["x1", "x2", "x3"]), y, threshold=0.5,
                          obj_function=prim.PRIMObjectiveFunctions.ORIGINAL, peel_alpha=0.05, paste_alpha=0.05,
                          mass_min=0.05)
    box = reference.find_box()
    # Peeling: the same boxes, step by step (EMA's trajectory then continues with its pastes).
    assert len(box.box_lims) >= len(ours)
    for step, (low, high, inside) in enumerate(ours):
        limits = box.box_lims[step]
        np.testing.assert_array_equal(limits.loc[0].values.astype(float), low, err_msg=f"step {step}")
        np.testing.assert_array_equal(limits.loc[1].values.astype(float), high, err_msg=f"step {step}")
        row = box.peeling_trajectory.iloc[step]
        assert row["coverage"] == cases[inside].sum() / cases.sum() and row["density"] == cases[inside].mean()
    # Pasting the box the selection rule picks: the same widened box as EMA's _paste.
    coverage = np.array([cases[i].sum() / cases.sum() for _, _, i in ours])
    density = np.array([cases[i].mean() for _, _, i in ours])
    selected = max(np.flatnonzero(coverage >= 0.5), key=lambda i: (density[i], coverage[i]))
    pasted = _paste(points, y.astype(float), ours[selected][0], ours[selected][1], 0.05, 0.05)
    start = prim.PrimBox(reference, box.box_lims[selected], np.flatnonzero(ours[selected][2]))
    ema_pasted = reference._paste(start)
    assert len(ema_pasted.box_lims) - 1 == len(pasted)
    np.testing.assert_array_equal(ema_pasted.box_lims[-1].loc[0].values.astype(float), pasted[-1][0])
    np.testing.assert_array_equal(ema_pasted.box_lims[-1].loc[1].values.astype(float), pasted[-1][1])
    # And the public function gives that box, which finds the planted one.
    sweep = sweep_of_outcome(points, ["x1", "x2", "x3"], np.where(cases, 0.2, 0.8)[:, None], design="lhs")
    found = ca.scenario_discovery(sweep, "final_cash", threshold=0.5, by=None)
    assert found.selected_step == selected
    np.testing.assert_array_equal(found.limits["low"].values, pasted[-1][0])
    final = ema_pasted.peeling_trajectory.iloc[-1]
    assert found.coverage == pytest.approx(final["coverage"]) and found.density == pytest.approx(final["density"])
    assert found.coverage > coverage[selected]  # pasting recovered cases the greedy peels had cut off
    assert 0.45 <= found.limits.loc["x1", "low"] <= 0.6 and 0.3 <= found.limits.loc["x2", "high"] <= 0.45
