"""Calibration check: does a scenario reproduce the observed marketplace aggregates?

``cbecsim validate CONFIG --calibration`` simulates CONFIG (by default the reference
``configs/baseline.yaml``, the 2024 status quo) and compares it with the sourced targets
of ``calibration_targets.yaml`` (:mod:`cbecsim.calibration_targets`), in two sets:

* **fitted** -- the aggregates the baseline's free parameters were tuned to reproduce (site
  conversion, CPC, ad click conversion, ACoS, sellers' TACoS by strategy, the brand's gross
  margin); a fitted target passes when its estimate lies in its band, and the check fails
  (exit 1) when one does not;
* **held out** -- checks the fit did not use (return rates, seller exit rate, the own-
  and cross-price elasticities and ad incrementality), reported apart with pass/fail so
  that a fit that only matches what it was tuned on shows as such. A held-out check the
  run cannot measure says why (``note``) instead of passing.

The elasticities and ad incrementality come from paired perturbation runs on common
random numbers (:func:`perturbation_values`): one *focal* seller per built-in strategy
(a copy of the strategy's first population, with its price index at the population's
central value) is added to the scenario, which is simulated over its first
``PERTURBATION_DAYS`` days as it is, with one focal seller's price x 1.05 and x 0.95, and
with its bids at 0 (no ads). The elasticities are read over the first
``ELASTICITY_DAYS`` days, before any strategy's first review (so prices, bids and
budgets are those of day 0: a demand elasticity, not an equilibrium response),
``(ln U+ - ln U-) / (ln 1.05 - ln 0.95)`` per replication with U the focal seller's units
(own) or its rivals' units in its markets (cross); ad incrementality over the whole
window is ``(U_on - U_off) / A_on`` with A the focal seller's ad-attributed units. Each is
the unit-weighted mean over the focal sellers, per replication.

Each aggregate is a ratio of sums within one replication (:func:`ratio_per_replication`);
the estimate is the mean over replications and its 95% confidence interval the normal
interval of that mean (the replications are independent). Ad-attributed units are the
units bought through sponsored attention (``units_sold * (1 - organic_share)``); landed
cost is the period mean per unit times the units sold in the period.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr

from .calibration_targets import CalibrationTarget, load_calibration_targets
from .experiment import STATISTICS, ratio_per_replication

__all__ = ["Target", "TARGETS", "HELD_OUT", "calibration_table", "check_calibration"]

Measure = Callable[[xr.Dataset], "xr.DataArray | str"]


@dataclasses.dataclass(frozen=True)
class Target:
    """A sourced target with the function that measures it on a result.

    Attributes
    ----------
    name, label : key in the calibration table; the quantity in words
    low, high : pass band; the estimate must lie within [low, high]
    observed : the sources' figure (point value or band), as the targets file gives it
    source : the first source's citation and the confidence grade
    per_replication : callable(Dataset) -> DataArray over ``replication``, or a string
        saying why the result cannot give it (a held-out check not measurable here)
    percent : print as a percentage
    role : ``fitted`` or ``held_out``
    """

    name: str
    label: str
    low: float
    high: float
    observed: str
    source: str
    per_replication: Measure
    percent: bool = True
    role: str = "fitted"


def _sponsored_units(result: xr.Dataset) -> xr.DataArray:
    return result["units_sold"] * (1.0 - result["organic_share"].fillna(1.0))


def _of_strategy(result: xr.Dataset, strategy: str) -> xr.Dataset:
    # An absent strategy gives an empty selection, hence a NaN target (documented).
    return result.isel(seller=np.flatnonzero(result["strategy"].values == strategy))


def _site_conversion(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(r["units_sold"], r["shoppers"])


def _cpc(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(r["ad_spend"], r["clicks"])


def _click_conversion(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(_sponsored_units(r), r["clicks"])


def _acos(r: xr.Dataset) -> xr.DataArray:
    sponsored_revenue = r["revenue"] * (1.0 - r["organic_share"].fillna(1.0))
    return ratio_per_replication(r["ad_spend"], sponsored_revenue)


def _tacos(strategy: str) -> Measure:
    return lambda r: STATISTICS["ad_share"][1](_of_strategy(r, strategy))


def _gross_margin(strategy: str) -> Measure:
    return lambda r: STATISTICS["gross_margin"][1](_of_strategy(r, strategy))


def _return_rate(categories: tuple[str, ...] | None) -> Measure:
    def measure(r: xr.Dataset) -> xr.DataArray | str:
        if categories is not None:
            markets = np.isin(r["category"].values.astype(str), categories)
            if not markets.any():
                return f"no market of this scenario is in the categories {', '.join(categories) or '(none modelled)'}"
            r = r.isel(market=np.flatnonzero(markets))
        return ratio_per_replication(r["returns"], r["units_sold"])
    return measure


def _refund_share(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(r["refunds"], r["revenue"])


def _annual_exit_rate(r: xr.Dataset) -> xr.DataArray:
    """Share of sellers that exit within the horizon, annualised: 1 - (1 - p_T)^(365 / T)."""
    exited = (r["exit_reason"] != "survived").mean("seller")
    days = float((pd.Timestamp(r["period_end"].values[-1]) - pd.Timestamp(r["time"].values[0])).days + 1)
    return 1.0 - (1.0 - exited) ** (365.0 / days)


def _not_measured(why: str) -> Measure:
    return lambda r: why


_PERTURBATION = ("needs a perturbation run on common random numbers (one listing's price or ads changed), which "
                 "this check does not make")

#: How each target of calibration_targets.yaml is measured, by name.
MEASURES: dict[str, Measure] = {
    "site_conversion": _site_conversion,
    "cost_per_click": _cpc,
    "ad_click_conversion": _click_conversion,
    "acos": _acos,
    "seller_tacos_traffic_first": _tacos("traffic_first"),
    "seller_tacos_brand": _tacos("brand_matrix"),
    "brand_gross_margin": _gross_margin("brand_matrix"),
    "own_price_elasticity": _not_measured(_PERTURBATION),
    "cross_price_elasticity": _not_measured(_PERTURBATION),
    "ad_incrementality": _not_measured(_PERTURBATION),
    "return_rate_online": _refund_share,
    "seller_annual_exit_rate": _annual_exit_rate,
    "unit_session_percentage": _not_measured("the results record sponsored clicks only, not organic detail-page "
                                             "sessions"),
}


def _target(entry: CalibrationTarget, role: str) -> Target:
    measure = MEASURES.get(entry.name)
    if measure is None and entry.name.startswith("return_rate_"):
        measure = _return_rate(entry.model_categories)
    if measure is None:
        measure = _not_measured("no measure is defined for it in cbecsim.calibration")
    observed = f"{entry.point:g}" if entry.point is not None else f"{entry.low:g} to {entry.high:g}"
    source = f"{entry.sources[0].citation} (confidence {entry.confidence})"
    return Target(entry.name, " ".join(entry.quantity.split()), entry.low, entry.high, observed, source, measure,
                  percent=entry.units.startswith("fraction"), role=role)


def _targets() -> tuple[tuple[Target, ...], tuple[Target, ...]]:
    fitted, held_out = load_calibration_targets()
    return tuple(_target(t, "fitted") for t in fitted), tuple(_target(t, "held_out") for t in held_out)


TARGETS, HELD_OUT = _targets()


def calibration_table(result: xr.Dataset, targets: tuple[Target, ...] | None = None) -> pd.DataFrame:
    """Compare a result with the calibration targets.

    Parameters
    ----------
    result : Dataset
        A ``cbecsim.run`` result (any resolution).
    targets : the targets to compare (default: the fitted ones, then the held-out ones)

    Returns
    -------
    DataFrame indexed by target name, with columns ``role`` (fitted / held_out),
    ``label``, ``estimate`` (mean over replications), ``ci_low``, ``ci_high`` (95% normal
    interval of the mean), ``low``, ``high`` (the band), ``passed`` (True / False, or None
    for a held-out check this result cannot measure), ``note`` (why not), ``observed``,
    ``source``, ``percent`` and ``replications``. A target whose population is absent from
    the result has NaN estimates and ``passed`` False.
    """
    rows = [_row(target, target.per_replication(result))
            for target in (TARGETS + HELD_OUT if targets is None else targets)]
    return pd.DataFrame(rows).set_index("target")


def _row(target: Target, measured) -> dict:
    """A calibration table row of ``target`` from its per-replication values (array-like)
    or the reason they cannot be measured (str)."""
    note = measured if isinstance(measured, str) else ""
    values = np.array([]) if isinstance(measured, str) else np.asarray(measured, dtype=float).ravel()
    values = values[np.isfinite(values)]
    n = values.size
    estimate = float(values.mean()) if n else math.nan
    half = 1.96 * float(values.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
    return {
        "target": target.name,
        "role": target.role,
        "label": target.label,
        "estimate": estimate,
        "ci_low": estimate - half,
        "ci_high": estimate + half,
        "low": target.low,
        "high": target.high,
        "passed": None if note else bool(n and target.low <= estimate <= target.high),
        "note": note,
        "percent": target.percent,
        "observed": target.observed,
        "source": target.source,
        "replications": n,
    }


#: Days of the perturbation runs (4 weeks: the window of ad incrementality).
PERTURBATION_DAYS = 28
#: Days over which the elasticities are read: before the first review of any built-in
#: strategy's default cadence (7 days), so every decision is still day 0's.
ELASTICITY_DAYS = 7
_PRICE_STEP = 0.05


def _central(value) -> float | None:
    """The central value of a seller parameter as configured: a number, or a distribution's
    median (uniform, lognormal, normal, triangular); None for a form not known here."""
    if isinstance(value, (int, float)):
        return float(value)
    spec = value if isinstance(value, dict) else getattr(value, "model_dump", lambda: None)()
    if not isinstance(spec, dict):
        return None
    kind = spec.get("dist")
    if kind == "uniform":
        return 0.5 * (float(spec["low"]) + float(spec["high"]))
    if kind in ("lognormal", "normal"):
        centre = spec.get("median", spec.get("mean"))
        return None if centre is None else float(centre)
    if kind == "triangular":
        return float(spec["mode"])
    return None


def perturbation_values(scenario, replications: int, seed: int | None = None,
                        threads: int | None = None) -> dict[str, "np.ndarray | str"]:
    """Per-replication own- and cross-price elasticity and ad incrementality (see the module
    docstring), or a string saying why one cannot be measured. Shapes: (replications,)."""
    from .api import run
    from .config import Scenario, load_scenario

    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    data = scenario.model_dump(mode="json", exclude_none=True)
    start = scenario.horizon.start
    data["horizon"]["end"] = (start + dt.timedelta(days=PERTURBATION_DAYS - 1)).isoformat()
    data["duty_schedule"] = [c for c in data["duty_schedule"] if c["date"] <= data["horizon"]["end"]]
    focal: list[dict] = []
    for population in list(data["sellers"]):
        strategy = population["strategy"]
        if strategy in {f["strategy"] for f in focal} or ":" in strategy or population.get("count", 0) < 1:
            continue
        price = _central(population.get("params", {}).get("price_index", 1.0))
        if price is None:
            continue
        copy = {**population, "count": 1, "name": f"focal_{strategy}",
                "params": {**population.get("params", {}), "price_index": price}}
        focal.append(copy)
    if not focal:
        why = "no built-in strategy population with a price index of a known form to copy as a focal seller"
        return {name: why for name in ("own_price_elasticity", "cross_price_elasticity", "ad_incrementality")}
    data["sellers"] = data["sellers"] + focal
    def world(index: int | None = None, factor: float = 1.0, ads: bool = True) -> xr.Dataset:
        sellers = [dict(s) for s in data["sellers"]]
        if index is not None:
            chosen = sellers[len(sellers) - len(focal) + index]
            params = dict(chosen["params"])
            params["price_index"] = params["price_index"] * factor
            if not ads:
                params.update(bid=0.0, daily_budget=0.0)
            chosen["params"] = params
        return run(load_scenario({**data, "sellers": sellers}), replications=replications, seed=seed,
                   threads=threads, resolution="day")

    base = world()
    labels = base["population"].values.astype(str)
    served = base["served"].values  # (seller, market)
    early = slice(None, ELASTICITY_DAYS)
    own, cross, incremental, weights = [], [], [], []
    for i, population in enumerate(focal):
        me = labels == population["name"]
        markets = served[me].any(axis=0)
        rivals = ~me & served[:, markets].any(axis=1)

        def units(result: xr.Dataset, who: np.ndarray, days=slice(None), markets=markets) -> np.ndarray:
            chosen = result["units_sold"].isel(time=days, seller=np.flatnonzero(who), market=np.flatnonzero(markets))
            return chosen.sum(["time", "seller", "market"]).values.astype(float)  # (replication,)

        up, down, off = world(i, 1.0 + _PRICE_STEP), world(i, 1.0 - _PRICE_STEP), world(i, ads=False)
        if float(off["ad_spend"].isel(seller=np.flatnonzero(me)).sum()) != 0.0:
            return {"ad_incrementality": f"{population['strategy']} buys ads with its bids at 0",
                    **{n: "not measured" for n in ("own_price_elasticity", "cross_price_elasticity")}}
        step = np.log(1.0 + _PRICE_STEP) - np.log(1.0 - _PRICE_STEP)
        with np.errstate(divide="ignore", invalid="ignore"):
            own.append((np.log(units(up, me, early)) - np.log(units(down, me, early))) / step)
            cross.append((np.log(units(up, rivals, early)) - np.log(units(down, rivals, early))) / step)
            sponsored = base["units_sold"] * (1.0 - base["organic_share"].fillna(1.0))
            attributed = sponsored.isel(seller=np.flatnonzero(me), market=np.flatnonzero(markets)).sum(
                ["time", "seller", "market"]).values
            incremental.append((units(base, me) - units(off, me)) / attributed)
        weights.append(units(base, me, early))
    weight = np.asarray(weights)  # (focal, replication)

    def pooled(values: list) -> np.ndarray:
        stacked = np.asarray(values)
        ok = np.isfinite(stacked)
        total = np.where(ok, weight, 0.0).sum(axis=0)
        return np.where(total > 0, np.where(ok, stacked * weight, 0.0).sum(axis=0) / np.maximum(total, 1e-300),
                        np.nan)

    return {"own_price_elasticity": pooled(own), "cross_price_elasticity": pooled(cross),
            "ad_incrementality": pooled(incremental)}


def check_calibration(scenario, replications: int = 20, seed: int | None = None,
                      threads: int | None = None, progress=False, perturbation: bool = True) -> pd.DataFrame:
    """Simulate ``scenario`` (weekly output) and return :func:`calibration_table` of it,
    with the held-out elasticities and ad incrementality from :func:`perturbation_values`
    (``perturbation=False`` leaves them not measured)."""
    from .api import run

    result = run(scenario, replications=replications, seed=seed, threads=threads,
                 resolution="week", progress=progress)
    table = calibration_table(result)
    if perturbation:
        for name, values in perturbation_values(scenario, replications, seed, threads).items():
            target = next(t for t in HELD_OUT if t.name == name)
            table.loc[name] = pd.Series(_row(target, values)).drop("target")
    return table
