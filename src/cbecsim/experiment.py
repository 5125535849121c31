"""Experiments: a question, a few scenario arms, metrics with confidence intervals.

An experiment is a folder (``experiments/<case>/``) holding ``experiment.yaml``, a
README and the committed ``summary.csv`` it produced. ``experiment.yaml`` names

* ``arms``: scenario configs (paths relative to the folder) with optional
  ``overrides`` (dotted paths, as ``--set``), or ``counterfactual_of: ARM`` (with
  optional ``without`` and ``at``, as ``cbecsim shock``): that arm's scenario without its
  duty changes, simulated as a pair with it (:func:`cbecsim.shock.simulate_pair`); all
  run with the same seed and replications, so replication r of every arm sees the same
  shoppers and shocks (common random numbers) and arms can be compared replication by
  replication;
* ``metrics``: a statistic of one arm (``arm``), or a paired difference of two arms
  (``arm`` minus ``minus``; with ``relative: true`` the ratio minus one), for the sellers
  of one ``strategy`` or ``population`` (default all), in one ``market`` (default all) and a date window
  (``start``/``end``, default the horizon), each with the paper's expectation
  (``expect``: a ``direction`` or a ``between`` range) and the claim in words.

Each metric is computed per replication; the estimate is the mean over replications and
its 95% confidence interval the normal interval of the mean (replications are
independent; a paired difference is formed within a replication first, which is what
removes the noise the two arms share). A replication without a value (e.g. no sales in
the window) is left out, and the summary's ``note`` says how many and why. The verdict compares the CI with
the expectation:
``agrees`` when the whole CI satisfies it, ``disagrees`` when the whole CI contradicts
it, ``inconclusive`` otherwise.

``cbecsim experiment DIR`` runs one; ``--write`` saves ``summary.csv`` and the table in
the README between the ``results`` markers; ``--check`` reruns at the reduced
``check_replications`` and compares with the committed summary within Monte Carlo
tolerance (:func:`compare_summaries`), which is what CI does.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from pathlib import Path
from typing import Any, Callable, Literal, cast

import numpy as np
import pandas as pd
import xarray as xr
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .config import ConfigError, Scenario, load_scenario, safe_load_bounded
from .files import write_text_atomically

__all__ = [
    "ExperimentSpec",
    "STATISTICS",
    "load_experiment",
    "run_experiment",
    "compare_summaries",
    "write_summary",
    "TOLERANCE_Z",
]

#: Tolerance of :func:`compare_summaries`, in standard deviations of the difference
#: between the reduced and the committed estimate. At 4 a change that leaves the model's
#: distributions as they were (new random streams, say) fails a metric with probability
#: ~6e-5, about 0.4% for the ~60 metrics of all experiments together.
TOLERANCE_Z = 4.0

SUMMARY_FILE = "summary.csv"
SPEC_FILE = "experiment.yaml"
RESULTS_START, RESULTS_END = "<!-- results:start -->", "<!-- results:end -->"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Arm(_Strict):
    config: str | None = Field(default=None, description="scenario YAML, relative to the experiment folder")
    overrides: dict[str, Any] = Field(default_factory=dict, description="dotted path -> value, as --set")
    counterfactual_of: str | None = Field(
        default=None,
        description="instead of config: the no-shock counterfactual of that arm (cbecsim shock): its scenario "
        "without the duty changes in `without`, simulated as a pair with it",
    )
    without: list[str] = Field(
        default_factory=list, description="as cbecsim shock --without (default: every change after the horizon start)"
    )
    at: dt.date | None = Field(default=None, description="as cbecsim shock --at")

    @model_validator(mode="after")
    def _one_source(self) -> "Arm":
        if (self.config is None) == (self.counterfactual_of is None):
            raise ValueError("give exactly one of config or counterfactual_of")
        if self.counterfactual_of is None and (self.without or self.at is not None):
            raise ValueError("without and at belong to a counterfactual_of arm")
        if self.counterfactual_of is not None and self.overrides:
            raise ValueError("a counterfactual_of arm takes no overrides (it is its arm's scenario minus changes)")
        return self


class Expectation(_Strict):
    claim: str = Field(description="what the seed paper says, in words")
    direction: Literal["positive", "negative"] | None = None
    between: tuple[float, float] | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> "Expectation":
        if (self.direction is None) == (self.between is None):
            raise ValueError("give exactly one of direction or between")
        return self


class Metric(_Strict):
    name: str
    statistic: str
    arm: str | None = Field(default=None, description="the arm measured (or the first of a paired metric)")
    contrast: dict[str, float] | None = Field(
        default=None,
        description="instead of arm/minus: sum of coefficient x statistic over arms, formed within "
        "each replication, e.g. an interaction {a1b1: 1, a0b1: -1, a1b0: -1, a0b0: 1}",
    )
    minus: str | None = Field(default=None, description="paired difference: arm minus this arm")
    relative: bool = Field(default=False, description="paired: arm / minus - 1 instead of arm - minus")
    strategy: str | None = None
    population: str | None = Field(default=None, description="a seller population by name")
    market: str | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    expect: Expectation | None = None


class ExperimentSpec(_Strict):
    name: str
    question: str
    replications: int = Field(ge=2, description="replications of the committed summary")
    check_replications: int = Field(ge=2, description="replications of the CI regeneration")
    resolution: Literal["day", "week", "month"] = "week"
    seed: int | None = None
    arms: dict[str, Arm] = Field(min_length=1)
    metrics: list[Metric] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> "ExperimentSpec":
        problems = []
        for name, arm in self.arms.items():
            base = arm.counterfactual_of
            if base is not None and (base not in self.arms or self.arms[base].counterfactual_of is not None):
                problems.append(
                    f"arms.{name}.counterfactual_of: expected an arm with a config "
                    f"(arms: {', '.join(n for n, a in self.arms.items() if a.config)}), got {base!r}"
                )
        for i, metric in enumerate(self.metrics):
            for field in ("arm", "minus"):
                arm_name = getattr(metric, field)
                if arm_name is not None and arm_name not in self.arms:
                    problems.append(f"metrics.{i}.{field}: unknown arm {arm_name!r} (arms: {', '.join(self.arms)})")
            for arm_name in metric.contrast or {}:
                if arm_name not in self.arms:
                    problems.append(
                        f"metrics.{i}.contrast: unknown arm {arm_name!r} (arms: {', '.join(self.arms)})")
            if (metric.arm is None) == (metric.contrast is None):
                problems.append(f"metrics.{i}: give either arm (with optional minus) or contrast")
            elif metric.contrast is not None and (metric.minus is not None or metric.relative):
                problems.append(f"metrics.{i}: a contrast takes no minus or relative")
            if metric.statistic not in STATISTICS:
                problems.append(
                    f"metrics.{i}.statistic: unknown statistic {metric.statistic!r} (known: {', '.join(STATISTICS)})"
                )
            if metric.relative and metric.minus is None:
                problems.append(f"metrics.{i}.relative: only for a paired metric (give minus)")
            if metric.contrast is not None and not metric.contrast:
                problems.append(f"metrics.{i}.contrast: expected at least one arm with its coefficient, got {{}}")
        names = [m.name for m in self.metrics]
        if len(set(names)) < len(names):
            problems.append("metrics: names must be unique")
        if problems:
            raise ValueError("\n".join(problems))
        return self


# --------------------------------------------------------------------------------------
# Statistics: each maps a selection of a result to one value per replication.
# --------------------------------------------------------------------------------------


def _per_replication(data: xr.DataArray) -> xr.DataArray:
    return data.sum([d for d in data.dims if d != "replication"])


def ratio_per_replication(numerator: xr.DataArray, denominator: xr.DataArray) -> xr.DataArray:
    """sum(numerator) / sum(denominator) over every dim but ``replication`` (NaN where 0)."""
    total = _per_replication(denominator)
    return (_per_replication(numerator) / total).where(total > 0)


def _survival(r: xr.Dataset) -> xr.DataArray:
    return r["alive"].isel(time=-1).astype(float).mean("seller")


def _cm2_margin(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(r["cm2"], r["revenue"])


def _gross_margin(r: xr.Dataset) -> xr.DataArray:
    return 1.0 - ratio_per_replication(r["units_sold"] * r["landed_cost"].fillna(0.0), r["revenue"])


def _ad_share(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(r["ad_spend"], r["revenue"])


def _duty_share(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(r["duty_paid"], r["revenue"])


def _duty_per_unit(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(r["duty_paid"], r["units_sold"])


def _price(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(r["revenue"], r["units_sold"])


def _revenue_per_seller(r: xr.Dataset) -> xr.DataArray:
    return _per_replication(r["revenue"]) / max(r.sizes["seller"], 1)


def _cm2_per_seller(r: xr.Dataset) -> xr.DataArray:
    return _per_replication(r["cm2"]) / max(r.sizes["seller"], 1)


def _units_per_seller(r: xr.Dataset) -> xr.DataArray:
    return _per_replication(r["units_sold"]) / max(r.sizes["seller"], 1)


def _return_rate(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(r["returns"], r["units_sold"])


def _repeat_revenue_share(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(r["repeat_revenue"], r["revenue"])


def _interruptions_per_seller(r: xr.Dataset) -> xr.DataArray:
    return _per_replication(r["listing_interruptions"]) / max(r.sizes["seller"], 1)


def _contribution_after_levers(r: xr.Dataset) -> xr.DataArray:
    # CM2 less what the framework levers cost (localisation, compliance, analytics,
    # market research), which are paid outside any one market.
    return (_per_replication(r["cm2"]) - _per_replication(r["capability_costs"])) / max(r.sizes["seller"], 1)


def _visibility(r: xr.Dataset) -> xr.DataArray:
    # The group's share of all attention in a market, averaged over periods and the
    # markets the group serves.
    served = r["served"].any("seller")
    return r["visibility"].sum("seller").where(served).mean(["time", "market"])


def _lost_sales_share(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(r["lost_sales"], r["units_sold"] + r["lost_sales"])


STATISTICS: dict[str, tuple[str, Callable[[xr.Dataset], xr.DataArray]]] = {
    "survival": ("share of the sellers alive at the end of the window", _survival),
    "cm2_margin": ("CM2 (contribution after ads) / revenue", _cm2_margin),
    "gross_margin": ("1 - landed cost of units sold / revenue", _gross_margin),
    "ad_share": ("ad spend / revenue", _ad_share),
    "duty_share": ("duty paid / revenue (net of VAT)", _duty_share),
    "duty_per_unit": ("duty paid / units sold [USD/unit]", _duty_per_unit),
    "price": ("revenue / units sold [USD/unit, net of VAT]", _price),
    "revenue_per_seller": ("revenue per seller over the window [USD]", _revenue_per_seller),
    "cm2_per_seller": ("CM2 per seller over the window [USD]", _cm2_per_seller),
    "units_per_seller": ("units sold per seller over the window", _units_per_seller),
    "return_rate": ("units returned / units sold", _return_rate),
    "repeat_revenue_share": ("revenue from repeat purchases / revenue", _repeat_revenue_share),
    "interruptions_per_seller": ("listing interruptions per seller over the window", _interruptions_per_seller),
    "contribution_after_levers": (
        "CM2 less the levers' costs (localisation, compliance, analytics, research) per seller [USD]",
        _contribution_after_levers,
    ),
    "visibility": ("the sellers' summed share of attention, mean over periods and markets", _visibility),
    "lost_sales_share": ("units demanded but out of stock / units demanded", _lost_sales_share),
}


def _select(result: xr.Dataset, metric: Metric) -> xr.Dataset:
    chosen = result
    if metric.strategy is not None:
        keep = np.flatnonzero(chosen["strategy"].values == metric.strategy)
        if keep.size == 0:
            raise ConfigError([(f"metrics.{metric.name}.strategy", f"no sellers with strategy {metric.strategy!r}")])
        chosen = chosen.isel(seller=keep)
    if metric.population is not None:
        keep = np.flatnonzero(chosen["population"].values == metric.population)
        if keep.size == 0:
            raise ConfigError(
                [(f"metrics.{metric.name}.population", f"no sellers in population {metric.population!r}")]
            )
        chosen = chosen.isel(seller=keep)
    if metric.market is not None:
        if metric.market not in chosen["market"].values:
            raise ConfigError([(f"metrics.{metric.name}.market", f"no market {metric.market!r}")])
        chosen = chosen.sel(market=[metric.market])
    if metric.start is not None or metric.end is not None:
        start = np.datetime64(metric.start) if metric.start else None
        end = np.datetime64(metric.end) if metric.end else None
        # A period belongs to the window when it starts in it.
        chosen = chosen.sel(time=slice(start, end))
    return chosen


def _metric_values(results: dict[str, xr.Dataset], metric: Metric) -> np.ndarray:
    statistic = STATISTICS[metric.statistic][1]
    if metric.contrast is not None:
        # ExperimentSpec._references: a contrast names at least one arm, so the sum is an
        # array (over no arms it would be the int 0).
        return cast(np.ndarray, sum(
            coefficient * statistic(_select(results[arm], metric)).values.astype(float)
            for arm, coefficient in metric.contrast.items()
        ))
    assert metric.arm is not None  # ExperimentSpec._references: arm or contrast
    values = statistic(_select(results[metric.arm], metric)).values.astype(float)
    if metric.minus is not None:
        other = statistic(_select(results[metric.minus], metric)).values.astype(float)
        values = values / other - 1.0 if metric.relative else values - other
    return values


def _verdict(expect: Expectation | None, low: float, high: float) -> str:
    if expect is None or not (math.isfinite(low) and math.isfinite(high)):
        return ""
    if expect.direction is not None:
        sign = 1.0 if expect.direction == "positive" else -1.0
        if min(sign * low, sign * high) > 0:
            return "agrees"
        if max(sign * low, sign * high) < 0:
            return "disagrees"
        return "inconclusive"
    assert expect.between is not None  # Expectation._one_rule: direction or between
    a, b = expect.between
    if a <= low and high <= b:
        return "agrees"
    if high < a or low > b:
        return "disagrees"
    return "inconclusive"


def _describe(metric: Metric) -> str:
    what = STATISTICS[metric.statistic][0]
    if metric.contrast is not None:
        terms = " ".join(f"{'+' if c >= 0 else '-'} {abs(c):g} {arm}" for arm, c in metric.contrast.items())
        what = f"{what}: {terms.lstrip('+ ')}"
    elif metric.minus is not None:
        what = (
            f"{what}: {metric.arm} {'/' if metric.relative else '-'} {metric.minus}{' - 1' if metric.relative else ''}"
        )
    else:
        what = f"{what}: {metric.arm}"
    scope = [s for s in (metric.strategy, metric.population, metric.market) if s]
    if metric.start or metric.end:
        scope.append(f"{metric.start or ''}..{metric.end or ''}")
    return f"{what} ({', '.join(scope)})" if scope else what


# --------------------------------------------------------------------------------------
# Loading and running
# --------------------------------------------------------------------------------------


def load_experiment(folder: str | os.PathLike) -> tuple[ExperimentSpec, Path]:
    """Read and validate ``folder/experiment.yaml``; ConfigError on any problem."""
    folder = Path(folder)
    path = folder / SPEC_FILE if folder.is_dir() else folder
    if not path.exists():
        raise ConfigError([(str(path), "no experiment.yaml here")])
    try:
        data = safe_load_bounded(path.read_text(encoding="utf-8"), str(path))
    except yaml.YAMLError as exc:
        raise ConfigError([(str(path), f"not valid YAML: {exc}")]) from None
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(p) for p in error["loc"])
            for line in str(error["msg"]).removeprefix("Value error, ").splitlines():
                problems.append((where or str(path), line))
        raise ConfigError(problems) from None
    return spec, path.parent


def load_arms(spec: ExperimentSpec, folder: Path) -> dict[str, Scenario]:
    """The validated scenario of every arm (all problems reported at once).

    A ``counterfactual_of`` arm is its arm's scenario without the removed duty changes
    (:func:`cbecsim.shock.plan_shock`).
    """
    return {name: scenario for name, (scenario, _) in _load_arm_plans(spec, folder).items()}


def _load_arm_plans(spec: ExperimentSpec, folder: Path) -> dict[str, tuple[Scenario, Any]]:
    """Every arm's scenario and, for a counterfactual arm, its ShockPlan."""
    from .shock import plan_shock

    loaded: dict[str, tuple[Scenario, Any]] = {}
    problems: list[tuple[str, str]] = []
    for name, arm in spec.arms.items():
        if arm.config is None:
            continue
        try:
            loaded[name] = (load_scenario(folder / arm.config, arm.overrides), None)
        except ConfigError as exc:
            problems.extend((f"arms.{name}: {path}", message) for path, message in exc.problems)
    for name, arm in spec.arms.items():
        if arm.counterfactual_of is None or arm.counterfactual_of not in loaded:
            continue
        try:
            plan = plan_shock(
                loaded[arm.counterfactual_of][0], arm.without, arm.at, flags=(f"arms.{name}.without", f"arms.{name}.at")
            )
            loaded[name] = (plan.counterfactual, plan)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return {name: loaded[name] for name in spec.arms}


def run_experiment(
    folder: str | os.PathLike,
    replications: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Run every arm and compute every metric.

    Parameters
    ----------
    folder : path of the experiment folder (or its experiment.yaml)
    replications : int, optional
        Default: the spec's ``replications``.
    progress : callable(arm name), optional
        Called before each arm is simulated.

    Returns
    -------
    DataFrame indexed by metric name: ``description``, ``estimate``, ``ci_low``,
    ``ci_high`` (95%), ``se`` (standard error of the mean), ``replications``,
    ``expected`` (the paper's claim), ``verdict``.
    """
    from .api import run
    from .shock import simulate_pair

    spec, folder = load_experiment(folder)
    arms = _load_arm_plans(spec, folder)
    n = spec.replications if replications is None else int(replications)
    results: dict[str, xr.Dataset] = {}
    # Counterfactual arms first: each is simulated as a pair with its shocked arm, which the
    # pair also yields, so that arm is not run again.
    for name, (scenario, plan) in sorted(arms.items(), key=lambda item: item[1][1] is None):
        if plan is None:
            if name not in results:
                if progress is not None:
                    progress(name)
                results[name] = run(scenario, replications=n, seed=spec.seed, resolution=spec.resolution)
            continue
        base = spec.arms[name].counterfactual_of
        assert base is not None  # _load_arm_plans plans only counterfactual_of arms
        if progress is not None:
            progress(f"{base} and its counterfactual {name}")
        seed = plan.shocked.seed if spec.seed is None else spec.seed
        shocked, results[name] = simulate_pair(
            plan.shocked, plan.counterfactual, plan.fork_day, n, seed, spec.resolution
        )
        results.setdefault(base, shocked)
    rows = []
    for metric in spec.metrics:
        values = _metric_values(results, metric)
        finite = values[np.isfinite(values)]
        count = finite.size
        estimate = float(finite.mean()) if count else math.nan
        se = float(finite.std(ddof=1) / math.sqrt(count)) if count > 1 else math.nan
        low, high = estimate - 1.96 * se, estimate + 1.96 * se
        rows.append(
            {
                "metric": metric.name,
                "description": _describe(metric),
                "estimate": estimate,
                "ci_low": low,
                "ci_high": high,
                "se": se,
                "replications": count,
                "expected": metric.expect.claim if metric.expect else "",
                "verdict": _verdict(metric.expect, low, high),
                "note": _missing_note(metric, count, values.size),
            }
        )
    return pd.DataFrame(rows).set_index("metric")


#: Why a statistic has no value in a replication (its denominator is zero).
UNDEFINED_WHEN = {
    "cm2_margin": "no revenue",
    "gross_margin": "no revenue",
    "ad_share": "no revenue",
    "duty_share": "no revenue",
    "repeat_revenue_share": "no revenue",
    "duty_per_unit": "no units sold",
    "price": "no units sold",
    "return_rate": "no units sold",
    "lost_sales_share": "no units demanded",
    "visibility": "no market served",
}


def _missing_note(metric: Metric, count: int, total: int) -> str:
    """Why a metric has no estimate or no interval, or over how many replications it is taken."""
    if count == total:
        return ""
    reason = UNDEFINED_WHEN.get(metric.statistic, "no value")
    if metric.minus is not None or metric.contrast is not None:
        reason += " in one of the arms"
    if count == 0:
        return (
            f"not computable at {total} replications: {reason} in the window in every replication "
            "(e.g. all the selection's sellers had exited before it)"
        )
    if count == 1:
        return f"no interval: only 1 of {total} replications has a value ({reason} in the window in the others)"
    return (
        f"over {count} of {total} replications: {reason} in the window in the other {total - count} "
        "(e.g. all the selection's sellers had exited before it)"
    )


def compare_summaries(committed: pd.DataFrame, fresh: pd.DataFrame, z: float = TOLERANCE_Z) -> pd.DataFrame:
    """Compare a fresh (reduced) run with the committed summary, metric by metric.

    The fresh run uses the committed run's seed, so its ``n`` replications are the first
    ``n`` of the committed ``N``: the two means share those replications. For means of
    nested samples ``Var(fresh - committed) = sigma^2 (1/n - 1/N)``; sigma is the larger
    of the two samples' standard deviations (``se * sqrt(replications)``), because the
    difference of the two variance estimates (``se_fresh^2 - se_committed^2``) is far too
    small when the replications beyond the first ``n`` hold the tail of a skewed outcome
    (an EU CM2 effect at 80 of 200 replications: 431 against about 790). A metric passes
    when ``|fresh - committed| <= z`` times that standard deviation (``n = N`` requires the
    same value to 1e-12: the same replications give the same numbers). Where the fresh
    run is not nested in the committed one (more replications), the independent
    ``sqrt(se_fresh^2 + se_committed^2)`` is used. Missing or extra metrics fail.

    Returns
    -------
    DataFrame indexed by metric: ``committed``, ``fresh``, ``difference``,
    ``tolerance``, ``passed``.
    """
    rows = []
    for name in sorted(set(committed.index) | set(fresh.index)):
        if name not in committed.index or name not in fresh.index:
            rows.append(
                {
                    "metric": name,
                    "committed": math.nan,
                    "fresh": math.nan,
                    "difference": math.nan,
                    "tolerance": math.nan,
                    "passed": False,
                }
            )
            continue
        a, b = committed.loc[name], fresh.loc[name]
        se_a, se_b = float(a["se"]), float(b["se"])
        n_a, n_b = int(a["replications"]), int(b["replications"])
        if n_b <= n_a:
            sigma = max(se_a * math.sqrt(n_a), se_b * math.sqrt(n_b))
            spread = sigma * math.sqrt(max(1.0 / max(n_b, 1) - 1.0 / max(n_a, 1), 0.0))
        else:
            spread = math.hypot(se_a, se_b)
        tolerance = z * spread if math.isfinite(spread) else math.nan
        difference = float(b["estimate"]) - float(a["estimate"])
        both_nan = math.isnan(float(a["estimate"])) and math.isnan(float(b["estimate"]))
        passed = both_nan or abs(difference) <= max(tolerance, 1e-12)
        rows.append(
            {
                "metric": name,
                "committed": float(a["estimate"]),
                "fresh": float(b["estimate"]),
                "difference": difference,
                "tolerance": tolerance,
                "passed": bool(passed),
            }
        )
    return pd.DataFrame(rows).set_index("metric")


def read_summary(folder: str | os.PathLike) -> pd.DataFrame:
    path = Path(folder) / SUMMARY_FILE
    if not path.exists():
        raise ConfigError([(str(path), "no committed summary; run `cbecsim experiment DIR --write` first")])
    summary = pd.read_csv(path, index_col="metric", keep_default_na=False, na_values=["nan", "NaN"])
    if "note" not in summary:
        summary["note"] = ""
    for column in ("description", "expected", "verdict", "note"):
        summary[column] = summary[column].astype(str)
    return summary


def _format(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.4g}"


def estimate_text(row: pd.Series) -> str:
    """``estimate [low, high]``, or the note saying why there is no estimate or interval."""
    note = str(row.get("note", "") or "")
    if not math.isfinite(float(row["estimate"])):
        return f"n/a: {note}" if note else "n/a"
    text = f"{_format(row['estimate'])} [{_format(row['ci_low'])}, {_format(row['ci_high'])}]"
    return f"{text} ({note})" if note else text


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a Markdown table (what the README shows)."""
    lines = [
        "| metric | what | estimate [95% CI] | paper | verdict |",
        "|---|---|---|---|---|",
    ]
    for name, row in summary.iterrows():
        lines.append(
            f"| `{name}` | {row['description']} | {estimate_text(row)} | {row['expected']} | {row['verdict']} |"
        )
    return "\n".join(lines)


def write_summary(folder: str | os.PathLike, summary: pd.DataFrame) -> None:
    """Save ``summary.csv`` and refresh the README's table between the results markers."""
    folder = Path(folder)
    if folder.is_file():
        folder = folder.parent
    write_text_atomically(folder / SUMMARY_FILE, summary.to_csv(float_format="%.6g"))
    summary = read_summary(folder)  # the README shows what the CSV holds (6 significant digits)
    readme = folder / "README.md"
    if readme.exists():
        text = readme.read_text(encoding="utf-8")
        if RESULTS_START in text and RESULTS_END in text:
            head, rest = text.split(RESULTS_START, 1)
            _, tail = rest.split(RESULTS_END, 1)
            n = int(summary["replications"].max())
            block = (
                f"{RESULTS_START}\n_Generated by `cbecsim experiment experiments/{folder.name} --write` "
                f"({n} replications)._\n\n{summary_markdown(summary)}\n{RESULTS_END}"
            )
            write_text_atomically(readme, head + block + tail)
