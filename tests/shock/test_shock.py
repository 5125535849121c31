"""``cbecsim shock`` and ``cbecsim.shock``: a scenario against its counterfactual on common random numbers.

Checked here: the pre-change window's effects are exactly 0 for every outcome and group;
the effects agree with independent computations (``paired_difference`` on the horizon,
the experiments' pooled ``cm2_margin``, an exit count by hand); the paired interval is
narrower than the unpaired one where the shock leaves most of the noise shared; the EUR 3
duty shows up as USD 3.24 per unit in the shocked world only; the report carries the
change-date markers; bad input exits 2 with one line and writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import cbecsim
from cbecsim.analysis import paired_difference
from cbecsim.cli import main
from cbecsim.config import ConfigError
from cbecsim.experiment import ratio_per_replication
from cbecsim.policies import usd_rate
from cbecsim.shock import plan_shock
from helpers import CONFIGS

EU = str(CONFIGS / "eu_fixed_duty_2026.yaml")
# Four months around the EUR 3 duty (2026-07-01) and the config's own US change (2026-07-24);
# the Section 122 change of 2026-02-24 lies before the start, so it is part of the regime in
# force at the start. The EUR 3 duty was announced on 2026-02-11: with 30 days of
# anticipation the sellers see it from 2026-06-01, the fork (the worlds part there).
SMALL = ["sellers.0.count=3", "sellers.1.count=3", "sellers.2.count=3", "horizon.start=2026-05-01",
         "horizon.end=2026-08-31", "anticipation_days=30"]
BEFORE = "before 2026-06-01"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def small():
    return cbecsim.load_scenario(EU, SMALL)


@pytest.fixture(scope="module")
def result(small):
    return cbecsim.shock(small, replications=6, seed=11)


def _set(args: list[str]) -> list[str]:
    return [part for item in args for part in ("--set", item)]


def test_default_counterfactual_removes_every_change_after_the_start(result):
    plan = result.plan
    assert plan.change_dates == (dt.date(2026, 7, 1), dt.date(2026, 7, 24)) and plan.fork_date == dt.date(2026, 6, 1)
    assert {c.name for c in plan.removed} == {"eu_2026/parcel-fixed-duty-3-per-heading", "duty_schedule.0"}
    kept = plan.counterfactual.duty_schedule
    assert plan.counterfactual.policy == [] and all(c.date <= dt.date(2026, 5, 1) or c.date > dt.date(2026, 8, 31)
                                                    for c in kept)
    assert len(kept) == len(plan.shocked.effective_duty_schedule) - len(plan.removed)


def test_pre_change_window_effects_are_exactly_zero_for_every_outcome(result):
    before = result.effects.sel(window=BEFORE)
    assert before.sizes == {"group": 3, "outcome": 11}
    for name in ("effect", "low", "high"):
        values = before[name].values
        assert np.isfinite(values).all() and (values == 0).all(), name
    np.testing.assert_array_equal(before["shocked"].values, before["counterfactual"].values)
    # The paths themselves are bit-identical in every period that ends before the fork.
    ends = pd.to_datetime(result.shocked["period_end"].values)
    early = result.shocked["time"].values[ends < pd.Timestamp("2026-06-01")]
    assert len(early) == 4
    horizon_only = ["exit_day", "initial_cash", "exit_reason"]
    xr.testing.assert_identical(result.shocked.drop_attrs().sel(time=early).drop_vars(horizon_only),
                                result.counterfactual.drop_attrs().sel(time=early).drop_vars(horizon_only))


def test_the_eur_3_duty_is_paid_in_the_shocked_world_only(result):
    # FACTS.md: EUR 3 per item on parcels under EUR 150 from 2026-07-01; the config's FX
    # path is monthly, and after the series' last month (2026-06) June's rate stands in, so
    # EUR 3 x 1.1515 = USD 3.45 per unit on the parcel sellers' EU parcel sales (EU chargers
    # bear no ad valorem duty, so the units they sell from a warehouse pay none).
    def after(world):
        parcels = world.isel(seller=np.flatnonzero(world["strategy"].values == "traffic_first"))
        return parcels.sel(market="EU/charging", time=slice("2026-07-02", None))

    def per_parcel_unit(world):
        window = after(world)
        return float(window["duty_paid"].sum() / (window["units_sold"] - window["units_from_warehouse"]).sum())

    def warehouse_share(world):
        window = after(world)
        return float(window["units_from_warehouse"].sum() / window["units_sold"].sum())

    assert per_parcel_unit(result.shocked) == pytest.approx(3.0 * usd_rate("EUR", dt.date(2026, 7, 2)), rel=1e-9)
    # The response: traffic-first sellers move EU stock into a warehouse to avoid the duty.
    assert warehouse_share(result.shocked) > warehouse_share(result.counterfactual)
    assert result.counterfactual["duty_paid"].sel(market="EU/charging").sum() == 0
    duty = result.effects.sel(group="traffic_first", outcome="duty_paid", window="after 2026-07-01")
    assert float(duty["low"]) > 0 and float(duty["counterfactual"]) == 0


def test_effects_agree_with_independent_computations(result):
    shocked, counterfactual, effects = result.shocked, result.counterfactual, result.effects
    horizon = effects.sel(window="horizon")
    for outcome in ("revenue", "cm2", "survival"):  # per-seller flows and the alive share
        reference = paired_difference(shocked, counterfactual, outcome)
        np.testing.assert_allclose(horizon["effect"].sel(outcome=outcome).values, reference["difference"].values,
                                   rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(horizon["high"].sel(outcome=outcome).values,
                                   reference["difference_high"].values, rtol=1e-12, atol=1e-9)
    # Pooled CM2 margin of a group: the experiments' ratio of sums, on the group's sellers.
    for strategy in ("traffic_first", "diversified"):
        mine = [shocked.isel(seller=np.flatnonzero(shocked["strategy"].values == strategy)),
                counterfactual.isel(seller=np.flatnonzero(counterfactual["strategy"].values == strategy))]
        margins = [ratio_per_replication(world["cm2"], world["revenue"]).values for world in mine]
        expected = np.mean(margins[0] - margins[1])
        assert float(horizon["effect"].sel(group=strategy, outcome="cm2_margin")) == pytest.approx(expected,
                                                                                                   abs=1e-12)
    # Exit hazard of one group and window by hand: exits / seller-days at risk, per replication.
    window = effects.sel(window="after 2026-07-01")
    start = pd.Timestamp(str(window["covers_start"].values)).date()
    end = pd.Timestamp(str(window["covers_end"].values)).date()
    members = np.flatnonzero(shocked["strategy"].values == "traffic_first")
    rates = []
    for r in range(shocked.sizes["replication"]):
        exits, days = 0, 0
        for s in members:
            exit_day = shocked["exit_day"].values[r, s]
            last = end if np.isnat(exit_day) else min(pd.Timestamp(exit_day).date(), end)
            if np.isnat(exit_day) or pd.Timestamp(exit_day).date() >= start:
                days += max((last - start).days + 1, 0)
            exits += int(not np.isnat(exit_day) and start <= pd.Timestamp(exit_day).date() <= end)
        rates.append(exits / days if days else np.nan)
    assert float(window["shocked"].sel(group="traffic_first", outcome="exit_hazard")) == pytest.approx(
        np.nanmean(rates), rel=1e-12)


def test_paired_interval_is_narrower_than_the_unpaired_one(result):
    # The brand-matrix sellers hold EU warehouse stock (bulk): the parcel duty reaches them
    # only through their rivals, so almost all the noise is shared by the two worlds, and
    # over the horizon 2 of its 4 months are identical. The variance ratio must be < 1.
    horizon = result.effects.sel(window="horizon", group="brand_matrix")
    for outcome in ("revenue", "cm2", "units_sold", "visibility"):
        row = horizon.sel(outcome=outcome)
        assert float(row["variance_ratio"]) < 0.5, outcome
        assert float(row["high"] - row["low"]) < float(row["unpaired_high"] - row["unpaired_low"]), outcome


def test_survival_difference_is_zero_before_the_fork_and_matches_the_curves(result):
    survival = result.survival
    fork = (dt.date(2026, 7, 1) - dt.date(2026, 5, 1)).days
    early = survival.isel(day=slice(0, fork))
    assert (early["difference"] == 0).all() and (early["difference_low"] == 0).all()
    np.testing.assert_allclose(survival["difference"].values,
                               survival["survival_shocked"].values - survival["survival_counterfactual"].values)
    inside = (survival["difference_low"] <= survival["difference"] + 1e-12) & (
        survival["difference"] <= survival["difference_high"] + 1e-12)
    assert inside.mean() > 0.95


def test_to_frame_is_one_row_per_group_outcome_window_in_cli_order(result):
    frame = result.to_frame()
    assert len(frame) == 3 * 11 * 10  # before, anticipation, between, 2 x (after, 4 and 12 weeks), horizon
    assert list(pd.unique(frame["group"])) == ["traffic_first", "brand_matrix", "diversified"]
    assert {"effect", "low", "high", "shocked", "counterfactual", "variance_ratio", "units"} <= set(frame.columns)


def test_without_names_a_set_a_change_or_a_date(small):
    plan = plan_shock(small, ["duty_schedule.0"])
    assert plan.change_dates == (dt.date(2026, 7, 24),) and [c.name for c in plan.removed] == ["duty_schedule.0"]
    plan = plan_shock(small, ["eu_2026"])
    assert plan.change_dates == (dt.date(2026, 7, 1),)
    assert plan_shock(small, ["2026-07-01"]).removed == plan.removed
    plan = plan_shock(small, ["eu_2026/parcel-fixed-duty-3-per-heading"], at="2026-06-01")
    assert plan.fork_date == dt.date(2026, 6, 1) and plan.change_dates == (dt.date(2026, 7, 1),)
    assert plan_shock(small, at="2026-07-10").change_dates == (dt.date(2026, 7, 24),)


@pytest.mark.parametrize("case, message", [
    ("unknown", "--without: unknown name 'eu_2099': expected a regime set of the config's policy, a duty change or "
                "a change date inside the horizon: eu_2026, us_2026, eu_2026/parcel-fixed-duty-3-per-heading, "
                "duty_schedule.0, 2026-07-01, 2026-07-24"),
    ("date_outside", "--without: 2026-09-15 is outside the horizon"),
    ("at_outside", "--at: 2026-04-01 is outside the horizon"),
    ("after_horizon", "--without: duty_schedule.0 is dated 2026-07-24, after the horizon end 2026-06-30"),
    ("no_change", "has no duty change inside the horizon"),
    ("at_after_change", "--at: 2026-07-05 is after the day the two worlds start to differ: sellers see "
                        "eu_2026/parcel-fixed-duty-3-per-heading coming from 2026-06-01"),
    ("set_outside", "--without: regime set us_2026 has no change inside the horizon"),
    ("bad_set", "--set: "),
    ("out_exists", "already exists (pass --overwrite"),
    ("out_suffix", "give a folder name without a suffix"),
    ("compare_bad", "--compare-set: "),
    ("compare_sellers", "error: --compare-set: changes the seller populations or markets"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, case, message):
    out = tmp_path / "out"
    extra = {
        "unknown": ["--without", "eu_2099"],
        "date_outside": ["--without", "2026-09-15"],
        "at_outside": ["--at", "2026-04-01"],
        "after_horizon": ["--set", "horizon.end=2026-06-30", "--without", "duty_schedule.0"],
        "at_after_change": ["--without", "eu_2026", "--at", "2026-07-05"],
        "set_outside": ["--without", "us_2026"],
        "bad_set": ["--set", "sellers.0.count=-1"],
        "out_suffix": [],
        "compare_bad": ["--compare-set", "sellers.0.fulfilment=teleport"],
        "compare_sellers": ["--compare-set", "sellers.0.count=5"],
    }.get(case, [])
    config = str(CONFIGS / "baseline.yaml") if case == "no_change" else EU
    args = ["shock", config, *_set(SMALL), "-n", "2", *extra, "--out", str(out)]
    if case == "out_exists":
        out.mkdir()
        (out / "effects.csv").write_text("old")
    if case == "out_suffix":
        args[-1] = str(tmp_path / "out.nc")
    if case == "bad_set":
        message = "error: sellers.0.count"
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in captured.err, captured.err
    assert message in lines[0], lines[0]
    assert captured.out == ""
    if case == "out_exists":
        assert [p.name for p in out.iterdir()] == ["effects.csv"] and (out / "effects.csv").read_text() == "old"
    else:
        assert list(tmp_path.iterdir()) == []


def test_overwrite_refuses_a_folder_with_other_files(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["shock", EU, *_set(SMALL), "-n", "2", "--out", str(out), "--overwrite"]) == 2
    assert "holds files cbecsim shock did not write (notes.txt)" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.fixture(scope="module")
def command(tmp_path_factory):
    """``cbecsim shock`` run once: its exit code, what it printed and the folder it wrote."""
    out = tmp_path_factory.mktemp("command") / "eu_shock"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["shock", EU, *_set(SMALL), "-n", "4", "--seed", "3", "--without", "eu_2026", "--out", str(out),
                     "-q"])
    return code, printed.getvalue(), out


def test_shock_command_prints_the_answer_and_writes_the_outputs(command):
    code, text, out = command
    assert code == 0
    assert "effect from 2026-07-01 to 2026-08-31" in text
    assert "distinguishable from zero (95% CI excludes 0):" in text
    assert "check: before 2026-06-01 the worlds are identical: largest |effect| over every group and outcome = 0" \
        in text
    assert re.search(r"traffic_first\s+│\s+[-+]\d+\.\d\d pp \[", text)
    assert sorted(p.name for p in out.iterdir()) == ["counterfactual.nc", "effects.csv", "effects.nc",
                                                     "report.html", "shocked.nc"]
    effects = xr.open_dataset(out / "effects.nc").load()
    assert dict(effects.sizes) == {"group": 3, "outcome": 11, "window": 6}
    assert {"effect", "low", "high", "shocked", "counterfactual", "variance_ratio"} <= set(effects.data_vars)
    assert dict(zip(effects["outcome"].values, effects["units"].values))["duty_paid"] == "USD per seller"
    frame = pd.read_csv(out / "effects.csv")
    assert len(frame) == 3 * 11 * 6 and frame.loc[frame["window"] == BEFORE, "effect"].eq(0).all()
    shocked = cbecsim.open_results(out / "shocked.nc")
    assert shocked.attrs["shock_role"] == "shocked" and shocked.attrs["shock_fork_date"] == "2026-06-01"
    counterfactual = cbecsim.open_results(out / "counterfactual.nc")
    assert json.loads(counterfactual.attrs["config"])["policy"] == []
    assert sorted(p.name for p in out.parent.iterdir()) == ["eu_shock"]  # no temporary folder left


def test_shock_report_marks_every_change_date_on_its_time_charts(command):
    html = (command[2] / "report.html").read_text(encoding="utf-8")
    markers = re.findall(r'id="change-date-(\d{4}-\d\d-\d\d)-\d+"', html)
    assert set(markers) == {"2026-07-01"} and len(markers) == 8  # 6 fan charts + the two survival panels
    assert html.count("<svg") == 7 and "shocked - counterfactual" in html
    assert len(re.findall(r"<text[^>]*>[^<]*2026-07-01", html)) >= 8  # and a label beside each
    assert not re.search(r"<(script|link|iframe)\b", html) and not re.search(r'(href|src)\s*=\s*"https?:', html)


def test_overwrite_replaces_a_folder_of_shock_outputs(small, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "effects.csv").write_text("old")
    result = cbecsim.shock(small, without="eu_2026", replications=2, seed=1, out=out, overwrite=True, report=False)
    assert result.out == out and (out / "effects.csv").read_text() != "old"
    assert sorted(p.name for p in out.iterdir()) == ["counterfactual.nc", "effects.csv", "effects.nc", "shocked.nc"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_compare_arm_gives_the_difference_in_differences(small):
    arm = ["sellers.0.fulfilment=overseas_warehouse"]
    result = cbecsim.shock(small, without=["eu_2026"], replications=4, seed=5, compare_overrides=arm)
    interaction, base, other = result.interaction, result.effects, result.compare.effects
    assert (interaction["interaction"].sel(window=BEFORE) == 0).all()
    defined = np.isfinite(interaction["interaction"]) & (interaction["n_replications"] == 4)
    np.testing.assert_allclose(interaction["interaction"].where(defined).values,
                               (other["effect"] - base["effect"]).where(defined).values, atol=1e-9)
    # Warehouse stock (bulk) does not pay the parcel duty: starting from a warehouse, the
    # duty effect on traffic-first is smaller (a seller may still switch to parcels).
    row = interaction.sel(group="traffic_first", outcome="duty_paid", window="after 2026-07-01")
    assert float(row["effect_compare"]) < float(row["effect_base"])
    assert result.interaction_frame()["interaction"].notna().any()


def test_the_api_is_exported_lazily():
    assert callable(cbecsim.shock) and "shock" in dir(cbecsim) and "ShockResult" in cbecsim.__all__
    assert cbecsim.ShockResult.__name__ == "ShockResult"


def test_plan_refuses_a_config_without_changes_inside_the_horizon():
    baseline = cbecsim.load_scenario(CONFIGS / "baseline.yaml")
    with pytest.raises(ConfigError, match="no duty change inside the horizon"):
        plan_shock(baseline)


def test_shock_report_opens_in_headless_chromium(command):
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extra")
    problems = []
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto((command[2] / "report.html").as_uri(), wait_until="load")
            charts = page.evaluate("Array.from(document.querySelectorAll('figure.chart svg')).map("
                                   "s => [s.getBoundingClientRect().width, s.getBoundingClientRect().height])")
            markers = page.evaluate("document.querySelectorAll('[id^=\"change-date-2026-07-01\"]').length")
        finally:
            browser.close()
    assert problems == []
    assert len(charts) == 7 and all(w > 300 and h > 200 for w, h in charts), charts
    assert markers == 8


@pytest.mark.parametrize("batch_size, threads", [(None, None), (1, 2)])
def test_the_forked_counterfactual_equals_a_full_counterfactual_run_bit_for_bit(small, batch_size, threads):
    """The counterfactual simulated from the shocked world's state at the fork is the run
    of the counterfactual scenario from day 0, in every variable and period; and the
    shocked world is its own full run."""
    from cbecsim.api import run_pair

    plan = plan_shock(small)
    assert 0 < plan.fork_day < small.horizon.days
    kwargs = dict(replications=3, seed=7, resolution="week", batch_size=batch_size, threads=threads)
    shocked, counterfactual = run_pair(plan.shocked, plan.counterfactual, plan.fork_day, **kwargs)
    for forked, scenario in ((counterfactual, plan.counterfactual), (shocked, plan.shocked)):
        full = cbecsim.run(scenario, **kwargs)
        xr.testing.assert_identical(forked.drop_attrs(), full.drop_attrs())
    # and the worlds do differ after the fork
    assert not counterfactual["duty_paid"].equals(shocked["duty_paid"])
