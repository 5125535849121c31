"""The seed paper's cases as experiments: committed summaries regenerated in CI.

Each ``experiments/<case>/`` is rerun at its reduced ``check_replications`` (same seed,
so its replications are the first of the committed run's) and every metric is compared
with the committed ``summary.csv`` within Monte Carlo tolerance: 4 standard deviations of
the difference of the two estimates, whose samples are nested (see
:func:`cbecsim.experiment.compare_summaries`). A test shows the check catches a change of
traffic-first ad spend from 28% to 26% of revenue.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cbecsim.experiment import (
    Expectation,
    _verdict,
    compare_summaries,
    read_summary,
    run_experiment,
    summary_markdown,
)
from cbecsim.policies import usd_rate
from helpers import ROOT, cli

EXPERIMENTS = sorted(p.parent for p in (ROOT / "experiments").glob("*/experiment.yaml"))


def test_there_are_experiments():
    names = {p.name for p in EXPERIMENTS}
    assert {"shenzhen_us_2025", "pdd_temu_ads", "anker_brand_matrix", "eu_fixed_duty_price_points",
            "p1_market_fit", "p2_localisation", "p3_enablers"} <= names  # one per proposition


@pytest.mark.parametrize("folder", EXPERIMENTS, ids=lambda p: p.name)
def test_committed_summary_is_reproduced_within_monte_carlo_tolerance(folder: Path):
    committed = read_summary(folder)
    from cbecsim.experiment import load_experiment

    spec, _ = load_experiment(folder)
    fresh = run_experiment(folder, spec.check_replications)
    comparison = compare_summaries(committed, fresh)
    failed = comparison[~comparison["passed"]]
    assert failed.empty, f"out of Monte Carlo tolerance:\n{failed.to_string()}"
    # The tolerance must be able to fail: for metrics with a clear committed effect, it
    # is narrower than the effect itself, so a sign flip would be caught.
    clear = committed[(committed["ci_low"] > 0) | (committed["ci_high"] < 0)].index
    tight = comparison.loc[clear, "tolerance"] < comparison.loc[clear, "committed"].abs()
    assert tight.mean() >= 0.8, comparison.loc[clear].to_string()


@pytest.mark.parametrize("folder", EXPERIMENTS, ids=lambda p: p.name)
def test_readme_states_the_question_the_run_command_and_the_committed_table(folder: Path):
    text = (folder / "README.md").read_text()
    assert f"cbecsim experiment experiments/{folder.name}" in text
    committed = read_summary(folder)
    assert summary_markdown(committed) in text, "README table is stale: run `cbecsim experiment DIR --write`"
    for word in ("Question", "paper", "agree"):
        assert word in text


def _summary(estimates, ses, replications=(200, 200)):
    return pd.DataFrame({"estimate": estimates, "se": ses, "replications": list(replications)},
                        index=pd.Index(["a", "b"], name="metric"))


def test_compare_summaries_flags_a_shift_beyond_tolerance():
    # Committed: 200 replications; fresh: their first 50, so se_fresh = 2 se_committed and
    # the difference has standard deviation sqrt(se_f^2 - se_c^2) = sqrt(3) se_c.
    committed = _summary([0.10, -0.30], [0.01, 0.02])
    sd = math.sqrt(0.02**2 - 0.01**2)
    within = _summary([0.10 + 3.9 * sd, -0.31], [0.02, 0.04], (50, 50))
    assert compare_summaries(committed, within)["passed"].all()
    shifted = _summary([0.10 + 4.1 * sd, -0.31], [0.02, 0.04], (50, 50))
    result = compare_summaries(committed, shifted)
    assert list(result["passed"]) == [False, True]
    assert result.loc["a", "tolerance"] == pytest.approx(4 * sd)
    # The same replications must give the same numbers.
    same = _summary([0.10 + 1e-9, -0.30], [0.01, 0.02])
    assert list(compare_summaries(committed, same)["passed"]) == [False, True]
    # Not nested (more replications than committed): independent samples.
    more = _summary([0.10, -0.30], [0.005, 0.01], (800, 800))
    assert compare_summaries(committed, more).loc["a", "tolerance"] == pytest.approx(4 * math.hypot(0.01, 0.005))
    missing = compare_summaries(committed, committed.iloc[:1])
    assert not missing.loc["b", "passed"]
    # The committed sample holds a tail the fresh one does not (its sd 0.28 against the
    # fresh 0.14): sigma is the larger sd, not sqrt(se_f^2 - se_c^2) = 0 here.
    heavy = _summary([0.10, -0.30], [0.02, 0.02])
    tail = compare_summaries(heavy, _summary([0.15, -0.30], [0.02, 0.02], (50, 50)))
    assert tail.loc["a", "tolerance"] == pytest.approx(4 * 0.02 * math.sqrt(200) * math.sqrt(1 / 50 - 1 / 200))
    assert tail.loc["a", "passed"]


def test_the_check_catches_a_small_model_change(tmp_path):
    """Traffic-first ads at 26% instead of 28% of revenue must fail the PDD check."""
    import shutil

    folder = tmp_path / "pdd_temu_ads"
    shutil.copytree(ROOT / "experiments" / "pdd_temu_ads", folder)
    spec = (folder / "experiment.yaml").read_text().replace("../../configs/", f"{ROOT}/configs/")
    spec = spec.replace(
        "heavy_ads: {config: " + f"{ROOT}/configs/baseline.yaml" + "}",
        "heavy_ads: {config: " + f"{ROOT}/configs/baseline.yaml" + ", overrides: "
        "{sellers.traffic_first.strategy_params.ad_share: 0.26}}",
    )
    assert "ad_share: 0.26" in spec
    (folder / "experiment.yaml").write_text(spec)
    from cbecsim.experiment import load_experiment

    check = load_experiment(folder)[0].check_replications
    comparison = compare_summaries(read_summary(folder), run_experiment(folder, check))
    assert not comparison.loc["ad_share_heavy", "passed"], comparison.to_string()


@pytest.mark.parametrize("rule, low, high, verdict", [
    ({"direction": "negative"}, -0.3, -0.1, "agrees"),
    ({"direction": "negative"}, 0.1, 0.3, "disagrees"),
    ({"direction": "negative"}, -0.1, 0.1, "inconclusive"),
    ({"direction": "positive"}, 0.1, 0.3, "agrees"),
    ({"between": (0.0, 0.3)}, 0.1, 0.2, "agrees"),
    ({"between": (0.0, 0.3)}, 0.35, 0.5, "disagrees"),
    ({"between": (0.0, 0.3)}, 0.25, 0.35, "inconclusive"),
])
def test_verdict_rules(rule, low, high, verdict):
    assert _verdict(Expectation(claim="x", **rule), low, high) == verdict


def test_paired_metric_is_the_mean_of_within_replication_differences(tmp_path):
    """Two identical arms: every paired difference is exactly 0 with a zero-width CI."""
    (tmp_path / "experiment.yaml").write_text(f"""
name: identical
question: do identical arms differ?
replications: 3
check_replications: 2
resolution: month
arms:
  a: {{config: {ROOT / 'configs' / 'baseline.yaml'}, overrides: {{horizon.end: 2025-02-28}}}}
  b: {{config: {ROOT / 'configs' / 'baseline.yaml'}, overrides: {{horizon.end: 2025-02-28}}}}
metrics:
  - {{name: diff, statistic: cm2_margin, arm: a, minus: b, expect: {{claim: none, direction: positive}}}}
  - {{name: level, statistic: ad_share, arm: a, strategy: traffic_first}}
""")
    table = run_experiment(tmp_path)
    assert table.loc["diff", "estimate"] == 0.0 and table.loc["diff", "se"] == 0.0
    assert table.loc["diff", "verdict"] == "inconclusive"
    assert 0.0 < table.loc["level", "estimate"] < 1.0 and table.loc["level", "replications"] == 3
    assert np.isclose(table.loc["level", "ci_high"] - table.loc["level", "estimate"], 1.96 * table.loc["level", "se"])


def test_bad_experiment_spec_exits_2(tmp_path):
    (tmp_path / "experiment.yaml").write_text("""
name: bad
question: q
replications: 3
check_replications: 2
arms: {a: {config: nowhere.yaml}}
metrics:
  - {name: m, statistic: nope, arm: z}
""")
    done = cli("experiment", str(tmp_path))
    assert done.returncode == 2
    assert "unknown statistic 'nope'" in done.stderr and "unknown arm 'z'" in done.stderr
    assert "Traceback" not in done.stderr


# The EUR 3 duty (2026-07-01, announced 2026-02-11) is visible 14 days ahead: the worlds part on 2026-06-17.
# The traffic-first sellers stay on parcels (no switch to a warehouse), so every unit pays it.
_SMALL_EU = ("{sellers.0.count: 2, sellers.1.count: 2, sellers.2.count: 2, horizon.start: 2026-06-01, "
             "horizon.end: 2026-07-31, anticipation_days: 14, sellers.0.strategy_params.switch_fulfilment: false}")


def test_a_counterfactual_arm_is_its_arm_without_the_duty_changes(tmp_path):
    """Built as `cbecsim shock` builds it: identical before the removed change is visible, paired after."""
    (tmp_path / "experiment.yaml").write_text(f"""
name: shock_arms
question: what does the EUR 3 duty do?
replications: 3
check_replications: 2
resolution: week
arms:
  shock: {{config: {ROOT / 'configs' / 'eu_fixed_duty_2026.yaml'}, overrides: {_SMALL_EU}}}
  no_duty: {{counterfactual_of: shock, without: [eu_2026]}}
metrics:
  - {{name: before, statistic: cm2_per_seller, arm: shock, minus: no_duty, end: 2026-06-14}}
  - {{name: duty_after, statistic: duty_per_unit, arm: shock, minus: no_duty, strategy: traffic_first,
      market: EU/charging, start: 2026-07-02}}
  - {{name: nowhere, statistic: price, arm: shock, strategy: traffic_first, market: US/charging}}
""")
    table = run_experiment(tmp_path)
    assert table.loc["before", "estimate"] == 0.0 and table.loc["before", "se"] == 0.0
    # EUR 3 at June 2026's monthly rate (the config's fx_path is monthly; the last month stands in)
    assert table.loc["duty_after", "estimate"] == pytest.approx(3.0 * usd_rate("EUR", dt.date(2026, 7, 2)), rel=1e-9)
    # Traffic-first sellers do not list in the US: no units, so no price; the note says why.
    assert np.isnan(table.loc["nowhere", "estimate"])
    assert table.loc["nowhere", "note"].startswith("not computable at 3 replications: no units sold in the window "
                                                   "in every replication")
    assert table.loc["before", "note"] == ""
    done = cli("experiment", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "n/a: not computable at 3" in done.stdout and " nan" not in done.stdout


def test_a_counterfactual_arm_must_name_an_arm_with_a_config(tmp_path):
    (tmp_path / "experiment.yaml").write_text(f"""
name: bad_counterfactual
question: q
replications: 3
check_replications: 2
arms:
  shock: {{config: {ROOT / 'configs' / 'eu_fixed_duty_2026.yaml'}}}
  cf: {{counterfactual_of: nowhere}}
metrics:
  - {{name: m, statistic: survival, arm: shock}}
""")
    done = cli("experiment", str(tmp_path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "arms.cf.counterfactual_of: expected an arm with a config (arms: shock), got 'nowhere'" in done.stderr
    spec = (tmp_path / "experiment.yaml").read_text().replace("{counterfactual_of: nowhere}",
                                                              "{counterfactual_of: shock, without: [eu_2099]}")
    (tmp_path / "experiment.yaml").write_text(spec)
    done = cli("experiment", str(tmp_path))
    assert done.returncode == 2 and "error: arms.cf.without: unknown name 'eu_2099'" in done.stderr
