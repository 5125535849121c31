"""Effects of a policy shock: a shocked world against its counterfactual, window by window.

Two results of the same scenario, one with some duty changes removed (the
*counterfactual*), run with the same seed and replications, saw the same shoppers, draws
and shocks in replication ``r`` (common random numbers), and they are identical until the
first removed change. Every outcome here is therefore formed per replication and group
first, and the effect is the paired difference *shocked - counterfactual* over
replications (:func:`cbecsim.analysis.paired.paired_statistics`): its mean, the paired t
interval, and the variance ratio against the unpaired (Welch) comparison.

Groups are the seller coordinates ``strategy`` (in order of first appearance, the CLI's
order) and ``population`` (where it splits the sellers differently). Windows are cut at
the change dates ``d1 < d2 < ...`` of the removed changes and at the fork ``f <= d1``,
the first day the worlds may differ: sellers may act on an announced change before it
comes into force (front-loading, pausing imports), so ``f`` is the first day one of the
removed changes is visible to them (default ``f = d1``). Without a fork inside the
horizon (the change is visible from its start) there is no ``before`` window:

========== ========================================== ====================================
kind       days                                       output periods it sums
========== ========================================== ====================================
before     horizon start .. f - 1                     periods that end before the fork f
                                                      (so the worlds are identical there)
anticip.   f .. d1 - 1, when f < d1                   periods that overlap those days
between    d_i .. d_(i+1) - 1                         periods that overlap those days
after      d_i .. horizon end                         periods that overlap those days
event      d_i .. d_i + 7w - 1 (w = 4 and 12 weeks)   periods that overlap those days
horizon    the whole horizon                          every period
========== ========================================== ====================================

A period that straddles a change date belongs to the windows after it, never to
``before``; ``covers_start`` / ``covers_end`` give the days each window really sums. The
outcomes (:data:`OUTCOMES`) pool over the group's sellers within a replication: a ratio
is a ratio of sums (``cm2_margin`` = sum of CM2 / sum of revenue, the project's one
definition), a flow is the group's total per seller.

Nothing here imports the engine: it reads results.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Sequence, cast

import numpy as np
import pandas as pd
import xarray as xr

from ._common import ResultError, check_result, group_labels, group_members
from .paired import check_paired, paired_statistics
from .stats import _resample, quantiles_sorted
from .survival import _daily_counts, _exit_index, horizon_days, kaplan_meier

__all__ = [
    "OUTCOMES",
    "EVENT_WEEKS",
    "Window",
    "Group",
    "shock_windows",
    "shock_groups",
    "window_values",
    "paired_effects",
    "shock_effects",
    "interaction_effects",
    "effect_paths",
    "survival_difference",
    "effects_frame",
    "distinguishable",
]

#: Outcome name -> (units, description). Flows are per seller of the group.
OUTCOMES: dict[str, tuple[str, str]] = {
    "cm2": ("USD per seller", "CM2 (contribution after ads) of the group's sellers over the window, per seller"),
    "cm2_margin": ("1", "sum of CM2 / sum of revenue over the group's sellers, markets and the window (pooled)"),
    "revenue": ("USD per seller", "revenue net of VAT of the group over the window, per seller"),
    "units_sold": ("units per seller", "units sold by the group over the window, per seller"),
    "price": ("USD/unit", "mean price net of VAT: revenue / units sold of the group over the window"),
    "ad_spend": ("USD per seller", "sponsored-ad spend of the group over the window, per seller"),
    "duty_paid": ("USD per seller", "customs duty paid by the group over the window, per seller"),
    "landed_cost": ("USD/unit", "landed cost per unit, weighted by units sold, over the group and the window"),
    "visibility": ("1", "mean over the group's sellers of the seller's share of attention, averaged over the "
                        "window's days and the markets the seller serves"),
    "survival": ("1", "share of the group's sellers still trading at the end of the window"),
    "exit_hazard": ("exits per seller-day", "exits in the window / seller-days at risk in it, over the group"),
}

#: Event windows after each change date [weeks].
EVENT_WEEKS = (4, 12)

_FLOWS = ("cm2", "revenue", "units_sold", "ad_spend", "duty_paid")


@dataclasses.dataclass(frozen=True)
class Window:
    """A span of days over which outcomes are summed (``end`` inclusive)."""

    name: str
    kind: str  # before | between | after | event | horizon | period
    start: dt.date
    end: dt.date
    change_date: dt.date | None = None


@dataclasses.dataclass(frozen=True)
class Group:
    """Sellers analysed together: a strategy or a seller population."""

    label: str
    kind: str  # strategy | population
    members: np.ndarray  # indices along ``seller``


def _dates(result: xr.Dataset) -> tuple[dt.date, dt.date]:
    start, n_days = horizon_days(result)
    first = pd.Timestamp(start).date()
    return first, first + dt.timedelta(days=n_days - 1)


def _change_dates_and_fork(result: xr.Dataset, change_dates: Sequence,
                           fork_date: dt.date | None) -> tuple[list[dt.date], dt.date]:
    """The sorted distinct change dates and the fork (default the first date, at the
    earliest the horizon start), checked against the horizon."""
    start, end = _dates(result)
    dates = sorted({pd.Timestamp(d).date() for d in change_dates})
    outside = [d for d in dates if not start < d <= end]
    if outside:
        raise ValueError(f"change dates must lie after the horizon start {start} and on or before its end {end}, "
                         f"got {', '.join(map(str, outside))}")
    if not dates:
        raise ValueError("no change dates: a shock analysis needs at least one")
    fork = dates[0] if fork_date is None else max(pd.Timestamp(fork_date).date(), start)
    if fork > dates[0]:
        raise ValueError(f"the fork {fork} lies after the first change date {dates[0]}")
    return dates, fork


def shock_windows(result: xr.Dataset, change_dates: Sequence, event_weeks: Sequence[int] = EVENT_WEEKS,
                  fork_date: dt.date | None = None) -> list[Window]:
    """The analysis windows around ``change_dates`` and the fork (see the module docstring).

    ``change_dates`` must lie after the horizon start and on or before its end;
    ``fork_date`` (default: the first change date) on or before the first of them.
    """
    start, end = _dates(result)
    dates, fork = _change_dates_and_fork(result, change_dates, fork_date)
    day = dt.timedelta(days=1)
    windows = [Window(f"before {fork}", "before", start, fork - day)] if fork > start else []
    if fork < dates[0]:
        windows.append(Window(f"anticipation {fork} to {dates[0] - day}", "anticipation", fork, dates[0] - day))
    for first, second in zip(dates, dates[1:]):
        windows.append(Window(f"{first} to {second - day}", "between", first, second - day, first))
    for date in dates:
        windows.append(Window(f"after {date}", "after", date, end, date))
        for weeks in event_weeks:
            windows.append(Window(f"{weeks} weeks from {date}", "event", date,
                                  min(date + dt.timedelta(weeks=weeks) - day, end), date))
    windows.append(Window("horizon", "horizon", start, end))
    return windows


def _period_windows(result: xr.Dataset) -> list[Window]:
    starts = pd.to_datetime(result["time"].values)
    ends = pd.to_datetime(result["period_end"].values)
    return [Window(str(s.date()), "period", s.date(), e.date()) for s, e in zip(starts, ends)]


def shock_groups(result: xr.Dataset, by: Sequence[str] = ("strategy", "population")) -> list[Group]:
    """Strategies (order of first appearance), then populations that split the sellers differently."""
    groups: list[Group] = []
    seen: list[frozenset] = []
    for coordinate in by:
        if coordinate not in result.coords:
            continue
        for label in group_labels(result, coordinate):
            members = group_members(result, coordinate, label)
            key = frozenset(members.tolist())
            if key in seen:
                continue  # a population that is exactly a strategy group
            name = str(label)
            if any(g.label == name for g in groups):
                name = f"{coordinate} {label}"
            groups.append(Group(name, coordinate, members))
            seen.append(key)
    return groups


def _membership(result: xr.Dataset, windows: Sequence[Window]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, K) period-in-window mask, (K,) index of each window's last period (-1 if empty), (T,) period days."""
    starts = pd.to_datetime(result["time"].values).normalize()
    ends = pd.to_datetime(result["period_end"].values).normalize()
    mask = np.zeros((len(starts), len(windows)), dtype=bool)
    for k, window in enumerate(windows):
        a, b = pd.Timestamp(window.start), pd.Timestamp(window.end)
        if window.kind == "before":
            mask[:, k] = (ends <= b) & (starts >= a)  # whole periods only: the worlds agree there
        else:
            mask[:, k] = (ends >= a) & (starts <= b)
    last = np.where(mask.any(0), mask.shape[0] - 1 - np.argmax(mask[::-1], axis=0), -1)
    days = ((ends - starts) / pd.Timedelta(days=1)).to_numpy().astype(float) + 1.0
    return mask, last, days


def _covers(result: xr.Dataset, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = result["time"].values.astype("datetime64[ns]")
    ends = result["period_end"].values.astype("datetime64[ns]")
    first = np.array([starts[m].min() if m.any() else np.datetime64("NaT") for m in mask.T], "datetime64[ns]")
    last = np.array([ends[m].max() if m.any() else np.datetime64("NaT") for m in mask.T], "datetime64[ns]")
    return first, last


def _array(result: xr.Dataset, name: str, dims: tuple[str, ...]) -> np.ndarray:
    return np.asarray(result[name].transpose(*dims).values, float)


def window_values(result: xr.Dataset, windows: Sequence[Window], groups: Sequence[Group]) -> xr.Dataset:
    """Every outcome of :data:`OUTCOMES` per replication, group and window.

    Returns
    -------
    Dataset with one variable per outcome, dims ``(replication, group, window)``, attrs
    ``units`` and ``description``; NaN where undefined (no revenue, no units sold, no
    seller-days at risk, or a window with no output period).
    """
    check_result(result)
    if "scenario" in result.dims:
        raise ResultError("window_values takes one result: select a scenario of the sweep first")
    mask, last, period_days = _membership(result, windows)
    weights = mask.astype(float)  # (T, K)
    n_sellers = result.sizes["seller"]
    membership = np.zeros((n_sellers, len(groups)))
    for g, group in enumerate(groups):
        membership[group.members, g] = 1.0
    counts = membership.sum(0)  # (G,)
    rtsm = ("replication", "time", "seller", "market")

    def group_window_sum(per_seller: np.ndarray) -> np.ndarray:
        """(R, T, S) -> (R, G, K): summed over the group's sellers and the window's periods."""
        return np.einsum("rts,sg,tk->rgk", np.nan_to_num(per_seller), membership, weights, optimize=True)

    def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        return np.divide(numerator, denominator, out=np.full(numerator.shape, np.nan), where=denominator > 0)

    sums = {name: group_window_sum(np.nansum(_array(result, name, rtsm), axis=-1)) for name in _FLOWS}
    # mask is (T, K), so any() over axis 0 is a (K,) array, never a scalar.
    empty = ~cast(np.ndarray, mask.any(0))  # (K,)
    values: dict[str, np.ndarray] = {}
    for name in _FLOWS:
        values[name] = sums[name] / counts[None, :, None]
    values["cm2_margin"] = ratio(sums["cm2"], sums["revenue"])
    values["price"] = ratio(sums["revenue"], sums["units_sold"])
    units = _array(result, "units_sold", rtsm)
    landed = np.nan_to_num(_array(result, "landed_cost", rtsm)) * units
    values["landed_cost"] = ratio(group_window_sum(landed.sum(-1)), sums["units_sold"])

    # Visibility: per seller, mean over served markets, then a day-weighted mean over the
    # window's periods, then the mean over the group's sellers.
    visibility = _array(result, "visibility", rtsm)
    if "served" in result.coords:
        served = np.asarray(result["served"].transpose("seller", "market").values, bool)
        visibility = np.where(served[None, None], visibility, np.nan)
    with np.errstate(invalid="ignore"), _quiet():
        per_seller = np.nanmean(visibility, axis=-1)  # (R, T, S)
    day_weights = weights * period_days[:, None]  # (T, K)
    finite = np.isfinite(per_seller)
    numerator = np.einsum("rts,tk->rsk", np.where(finite, per_seller, 0.0), day_weights)
    denominator = np.einsum("rts,tk->rsk", finite.astype(float), day_weights)
    seller_mean = ratio(numerator, denominator)  # (R, S, K)
    values["visibility"] = np.stack([_nanmean(seller_mean[:, group.members], axis=1) for group in groups], axis=1)

    # Survival share at the end of the window's last period.
    alive = np.asarray(result["alive"].transpose("replication", "time", "seller").values, float)
    at_end = alive[:, np.maximum(last, 0), :]  # (R, K, S)
    survival = np.einsum("rks,sg->rgk", at_end, membership) / counts[None, :, None]
    values["survival"] = np.where(empty[None, None, :], np.nan, survival)

    # Exit hazard over the days the window's periods cover.
    values["exit_hazard"] = _hazard(result, mask, membership)

    for name in values:
        values[name] = np.where(empty[None, None, :], np.nan, values[name])
    coords = {"replication": result["replication"].values, "group": [g.label for g in groups],
              "window": [w.name for w in windows]}
    data = {name: (("replication", "group", "window"), values[name],
                   {"units": OUTCOMES[name][0], "description": OUTCOMES[name][1]}) for name in OUTCOMES}
    return xr.Dataset(data, coords=coords)


def _hazard(result: xr.Dataset, mask: np.ndarray, membership: np.ndarray) -> np.ndarray:
    start, n_days = horizon_days(result)
    exit_day = result["exit_day"].transpose("replication", "seller").values
    index = _exit_index(exit_day, start, n_days)  # (R, S), NaN = censored
    censored = np.isnan(index)
    last_at_risk = np.where(censored, n_days - 1, index)
    starts = ((result["time"].values.astype("datetime64[ns]") - start) / np.timedelta64(1, "D")).astype(int)
    ends = ((result["period_end"].values.astype("datetime64[ns]") - start) / np.timedelta64(1, "D")).astype(int)
    out = np.full((index.shape[0], membership.shape[1], mask.shape[1]), np.nan)
    for k in range(mask.shape[1]):
        if not mask[:, k].any():
            continue
        a, b = starts[mask[:, k]].min(), ends[mask[:, k]].max()
        at_risk = np.clip(np.minimum(last_at_risk, b) - a + 1, 0, None)  # seller-days (R, S)
        exited = ((~censored) & (index >= a) & (index <= b)).astype(float)
        exits, exposure = exited @ membership, at_risk @ membership  # (R, G)
        out[:, :, k] = np.divide(exits, exposure, out=np.full(exits.shape, np.nan), where=exposure > 0)
    return out


class _quiet:
    """Silence 'Mean of empty slice' (an all-NaN slice stays NaN)."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)
        return self

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(invalid="ignore"), _quiet():
        return np.nanmean(values, axis=axis)


_RENAME = {"difference": "effect", "difference_low": "low", "difference_high": "high", "mean_a": "shocked",
           "mean_b": "counterfactual"}
_DESCRIPTIONS = {
    "effect": "mean over replications of shocked - counterfactual",
    "low": "lower end of the paired t interval of the effect",
    "high": "upper end of the paired t interval of the effect",
    "shocked": "mean over replications in the shocked world",
    "counterfactual": "mean over replications in the counterfactual world",
    "unpaired_low": "lower end of the unpaired (Welch) interval that ignores the pairing",
    "unpaired_high": "upper end of the unpaired (Welch) interval that ignores the pairing",
    "variance_ratio": "var(paired differences) / (var(shocked) + var(counterfactual)); < 1: pairing helps",
    "n_replications": "replications where both worlds have a value",
}


def paired_effects(shocked_values: xr.Dataset, counterfactual_values: xr.Dataset, level: float = 0.95,
                   names: dict[str, str] | None = None) -> xr.Dataset:
    """Paired statistics of two :func:`window_values` Datasets, stacked along ``outcome``.

    Returns a Dataset with dims ``(group, outcome, window)`` and the variables of
    :func:`~cbecsim.analysis.paired.paired_statistics` renamed (``names``, default:
    ``effect``, ``low``, ``high``, ``shocked``, ``counterfactual``; plus
    ``unpaired_low``, ``unpaired_high``, ``variance_ratio``, ``n_replications``); the
    coordinates ``units`` and ``description`` along ``outcome``.
    """
    names = names or _RENAME
    pieces = []
    outcomes = list(shocked_values.data_vars)
    for outcome in outcomes:
        stats = paired_statistics(shocked_values[outcome], counterfactual_values[outcome], level)
        stats = stats.drop_vars(["var_paired", "var_unpaired"]).rename(names)
        pieces.append(stats)
    effects = xr.concat(pieces, dim=pd.Index(outcomes, name="outcome"), coords="minimal", compat="override",
                        combine_attrs="drop")
    effects = effects.transpose("group", "outcome", "window")
    units = [shocked_values[o].attrs.get("units", "1") for o in outcomes]
    descriptions = [shocked_values[o].attrs.get("description", "") for o in outcomes]
    effects = effects.assign_coords(units=("outcome", units), description=("outcome", descriptions))
    for name in effects.data_vars:
        effects[name].attrs = {"units": "replications" if name == "n_replications" else
                               "the outcome's (coordinate 'units')",
                               "description": _DESCRIPTIONS.get(str(name), "")}
    effects.attrs = {"level": float(level), "method": "paired t over replications (common random numbers)"}
    return effects


def _window_coords(result: xr.Dataset, windows: Sequence[Window]) -> dict:
    mask, _, _ = _membership(result, windows)
    covers_start, covers_end = _covers(result, mask)
    nat = np.datetime64("NaT", "ns")
    return {
        "window_kind": ("window", [w.kind for w in windows]),
        "window_start": ("window", np.array([np.datetime64(w.start, "ns") for w in windows])),
        "window_end": ("window", np.array([np.datetime64(w.end, "ns") for w in windows])),
        "change_date": ("window", np.array([np.datetime64(w.change_date, "ns") if w.change_date else nat
                                             for w in windows])),
        "covers_start": ("window", covers_start),
        "covers_end": ("window", covers_end),
    }


def shock_effects(shocked: xr.Dataset, counterfactual: xr.Dataset, change_dates: Sequence,
                  level: float = 0.95, by: Sequence[str] = ("strategy", "population"),
                  event_weeks: Sequence[int] = EVENT_WEEKS, require_same_seed: bool = True,
                  fork_date: dt.date | None = None) -> xr.Dataset:
    """Effects of the shock per group, outcome and window.

    Parameters
    ----------
    shocked, counterfactual : results of the same sellers, markets, time axis and
        replications, run with the same seed (common random numbers)
    change_dates : dates of the removed duty changes (inside the horizon)
    level : confidence level of the intervals
    by : seller coordinates whose groups are analysed
    event_weeks : lengths of the event windows after each change [weeks]
    fork_date : first day the worlds may differ (default: the first change date)

    Returns
    -------
    Dataset with dims ``(group, outcome, window)``: ``effect``, ``low``, ``high`` (paired
    t interval), ``shocked``, ``counterfactual`` (means over replications),
    ``unpaired_low``, ``unpaired_high``, ``variance_ratio`` [1] and
    ``n_replications``, in each outcome's units (coordinate ``units`` along
    ``outcome``). Coordinates: ``group_kind`` and ``n_sellers`` along ``group``;
    ``window_kind``, ``window_start``, ``window_end`` (inclusive), ``change_date`` and
    ``covers_start`` / ``covers_end`` (the days the window's output periods span)
    along ``window``.
    """
    check_paired(shocked, counterfactual, require_same_seed)
    windows = shock_windows(shocked, change_dates, event_weeks, fork_date)
    groups = shock_groups(shocked, by)
    effects = paired_effects(window_values(shocked, windows, groups),
                             window_values(counterfactual, windows, groups), level)
    effects = effects.assign_coords(group_kind=("group", [g.kind for g in groups]),
                                    n_sellers=("group", [len(g.members) for g in groups]),
                                    **_window_coords(shocked, windows))
    effects.attrs.update(comparison="shocked - counterfactual",
                         change_dates=", ".join(str(pd.Timestamp(d).date()) for d in sorted(set(change_dates))),
                         fork_date=str(_change_dates_and_fork(shocked, change_dates, fork_date)[1]),
                         replications=int(shocked.sizes["replication"]),
                         resolution=str(shocked.attrs.get("resolution", "")))
    return effects


def interaction_effects(base: tuple[xr.Dataset, xr.Dataset], compare: tuple[xr.Dataset, xr.Dataset],
                        change_dates: Sequence, level: float = 0.95,
                        by: Sequence[str] = ("strategy", "population"),
                        event_weeks: Sequence[int] = EVENT_WEEKS, fork_date: dt.date | None = None) -> xr.Dataset:
    """Difference in differences: the shock's effect in the ``compare`` arm minus in the ``base`` arm.

    ``base`` and ``compare`` are ``(shocked, counterfactual)`` pairs of two arms (e.g.
    direct parcels and an overseas warehouse), all four run with the same seed and
    replications, so replication r of every world saw the same streams. Per replication
    and group, ``(S_compare - C_compare) - (S_base - C_base)`` is the paired unit.

    Returns
    -------
    Dataset over ``(group, outcome, window)``: ``interaction``, ``low``, ``high`` (paired t
    interval), ``effect_compare``, ``effect_base`` (the two arms' mean effects),
    ``unpaired_low``, ``unpaired_high``, ``variance_ratio``, ``n_replications``; the
    coordinates of :func:`shock_effects`.
    """
    for a, b in (base, compare, (base[0], compare[0])):
        check_paired(a, b)
    windows = shock_windows(base[0], change_dates, event_weeks, fork_date)
    groups = shock_groups(base[0], by)
    compare_groups = shock_groups(compare[0], by)
    if [g.label for g in groups] != [g.label for g in compare_groups]:
        raise ResultError("the two arms have different seller groups: "
                          f"{[g.label for g in groups]} vs {[g.label for g in compare_groups]}")
    effect = {}
    for arm, (shocked, counterfactual) in (("base", base), ("compare", compare)):
        s, c = window_values(shocked, windows, groups), window_values(counterfactual, windows, groups)
        effect[arm] = xr.Dataset({name: (s[name] - c[name]).assign_attrs(s[name].attrs) for name in s.data_vars})
    names = {"difference": "interaction", "difference_low": "low", "difference_high": "high",
             "mean_a": "effect_compare", "mean_b": "effect_base"}
    out = paired_effects(effect["compare"], effect["base"], level, names)
    out["interaction"].attrs["description"] = "mean over replications of the compare arm's effect - the base arm's"
    out["effect_compare"].attrs["description"] = "mean effect (shocked - counterfactual) in the compare arm"
    out["effect_base"].attrs["description"] = "mean effect (shocked - counterfactual) in the base arm"
    out = out.assign_coords(group_kind=("group", [g.kind for g in groups]),
                            n_sellers=("group", [len(g.members) for g in groups]),
                            **_window_coords(base[0], windows))
    out.attrs.update(comparison="(shocked - counterfactual) in compare - (shocked - counterfactual) in base",
                     change_dates=", ".join(str(pd.Timestamp(d).date()) for d in sorted(set(change_dates))),
                     replications=int(base[0].sizes["replication"]))
    return out


def effect_paths(shocked: xr.Dataset, counterfactual: xr.Dataset,
                 outcomes: Sequence[str] = ("cm2_margin", "survival", "visibility", "cm2", "price", "duty_paid"),
                 by: Sequence[str] = ("strategy",), quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95),
                 level: float = 0.95) -> xr.Dataset:
    """The paired difference per output period: the data of the shock fan charts.

    Returns
    -------
    Dataset with dims ``(group, outcome, time[, quantile])``: ``effect``, ``low``,
    ``high`` (mean over replications of shocked - counterfactual in the period and its
    paired t interval), ``difference_quantile`` (quantiles over replications of the
    per-replication difference), ``complete`` (time: the period has as many days as the
    typical period; a short last period is flagged so flows are not drawn as a drop).
    Coordinates ``units`` along ``outcome``, ``period_end`` along ``time``.
    """
    check_paired(shocked, counterfactual)
    windows = _period_windows(shocked)
    groups = shock_groups(shocked, by)
    s = window_values(shocked, windows, groups)[list(outcomes)]
    c = window_values(counterfactual, windows, groups)[list(outcomes)]
    stats = paired_effects(s, c, level)[["effect", "low", "high"]]
    probabilities = np.asarray(quantiles, float)
    bands = []
    for outcome in outcomes:
        difference = (s[outcome] - c[outcome]).transpose("group", "window", "replication").values
        bands.append(quantiles_sorted(difference, probabilities))  # (G, K, q)
    stats["difference_quantile"] = (("group", "outcome", "window", "quantile"), np.stack(bands, axis=1),
                                    {"description": "quantiles over replications of shocked - counterfactual"})
    stats = stats.assign_coords(quantile=probabilities)
    _, _, days = _membership(shocked, windows)
    complete = days >= np.median(days)
    stats = stats.rename(window="time").assign_coords(
        time=shocked["time"].values, period_end=("time", shocked["period_end"].values),
        complete=("time", complete))
    stats.attrs.update(level=float(level), comparison="shocked - counterfactual")
    return stats


def survival_difference(shocked: xr.Dataset, counterfactual: xr.Dataset, by: str | None = "strategy",
                        level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> xr.Dataset:
    """Kaplan-Meier curves of both worlds and their difference with a paired bootstrap band.

    The curves are :func:`cbecsim.analysis.kaplan_meier` of each result (Greenwood bands).
    The band of the difference resamples whole replications, the *same* draws for both
    worlds (the pairing), and takes percentiles of ``S_shocked(d) - S_counterfactual(d)``.

    Returns
    -------
    Dataset with dims ``(<by>, day)`` (coordinate ``date``): ``survival_shocked``,
    ``survival_shocked_low``, ``survival_shocked_high``, ``survival_counterfactual``
    (and its ``_low``, ``_high``), ``difference``, ``difference_low``, ``difference_high``
    [1].
    """
    check_paired(shocked, counterfactual)
    curves = {"shocked": kaplan_meier(shocked, by=by, level=level),
              "counterfactual": kaplan_meier(counterfactual, by=by, level=level)}
    start, n_days = horizon_days(shocked)
    labels = group_labels(shocked, by)
    n_rep = shocked.sizes["replication"]
    _, weights = _resample(np.random.default_rng(seed), n_boot, n_rep)  # the same draws for both worlds
    alpha = 1 - level
    low = np.full((len(labels), n_days), np.nan)
    high = np.full((len(labels), n_days), np.nan)
    exits = {name: result["exit_day"].transpose("replication", "seller").values
             for name, result in (("shocked", shocked), ("counterfactual", counterfactual))}
    for g, label in enumerate(labels):
        sellers = group_members(shocked, by, label)
        boot = {}
        for name, exit_day in exits.items():
            count, at_risk = _daily_counts(_exit_index(exit_day[:, sellers], start, n_days), n_days)
            boot_exits, boot_risk = weights @ count, weights @ at_risk
            with np.errstate(divide="ignore", invalid="ignore"):
                hazard = np.where(boot_risk > 0, boot_exits / boot_risk, 0.0)
            boot[name] = np.cumprod(1.0 - hazard, axis=1)
        difference = boot["shocked"] - boot["counterfactual"]
        low[g] = np.quantile(difference, alpha / 2, axis=0)
        high[g] = np.quantile(difference, 1 - alpha / 2, axis=0)
    dim = by or "group"
    out = xr.Dataset(coords=curves["shocked"].coords)
    for name, curve in curves.items():
        for part in ("", "_low", "_high"):
            out[f"survival_{name}{part}"] = curve[f"survival{part}"].assign_attrs(units="1")
    out["difference"] = (curves["shocked"]["survival"] - curves["counterfactual"]["survival"]).assign_attrs(
        units="1", description="S_shocked(day) - S_counterfactual(day)")
    out["difference_low"] = ((dim, "day"), low, {"units": "1"})
    out["difference_high"] = ((dim, "day"), high, {"units": "1"})
    out.attrs = {"level": float(level), "n_boot": int(n_boot), "seed": int(seed),
                 "method": "Kaplan-Meier per world; percentile band of the difference from resampling "
                           "replications, the same draws in both worlds",
                 "horizon_start": curves["shocked"].attrs["horizon_start"], "n_days": n_days}
    return out


def effects_frame(effects: xr.Dataset) -> pd.DataFrame:
    """Effects in long format, one row per (group, outcome, window), in the Dataset's order.

    Columns: ``group``, ``group_kind``, ``outcome``, ``units``, ``window``,
    ``window_kind``, ``window_start``, ``window_end``, ``covers_start``, ``covers_end``,
    then the data variables (``effect``, ``low``, ``high``, ...).
    """
    frame = effects.drop_vars(["description", "n_sellers"], errors="ignore").transpose(
        "group", "outcome", "window").to_dataframe().reset_index()
    for column in ("window_start", "window_end", "covers_start", "covers_end", "change_date"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column]).dt.date
    first = ["group", "group_kind", "outcome", "units", "window", "window_kind", "change_date", "window_start",
             "window_end", "covers_start", "covers_end"]
    columns = [c for c in first if c in frame] + [c for c in effects.data_vars if c in frame]
    frame = frame[columns]  # to_dataframe keeps the coordinates' order: groups as in the CLI
    return frame.reset_index(drop=True)


def distinguishable(effects: xr.Dataset, window: str, outcomes: Sequence[str], low: str = "low",
                    high: str = "high") -> dict[str, list[str]]:
    """Per group, the outcomes whose interval in ``window`` excludes 0."""
    chosen = effects.sel(window=window)
    out = {}
    for group in effects["group"].values:
        names = []
        for outcome in outcomes:
            a = float(chosen[low].sel(group=group, outcome=outcome))
            b = float(chosen[high].sel(group=group, outcome=outcome))
            if np.isfinite(a) and np.isfinite(b) and (a > 0 or b < 0):
                names.append(outcome)
        out[str(group)] = names
    return out


def format_value(value: float, units: str, signed: bool = False, share_as_points: bool = False) -> str:
    """One number in an outcome's units: shares as % (or percentage points), money with separators."""
    if value is None or not np.isfinite(value):
        return "n/a"
    sign = "+" if signed else ""
    if units == "1":
        if share_as_points:  # a small difference keeps a third decimal rather than reading as 0.00
            return f"{100 * value:{sign}.{3 if 0 < abs(100 * value) < 0.1 else 2}f} pp"
        return f"{100 * value:{sign}.1f}%"
    if units == "exits per seller-day":
        return f"{1000 * value:{sign}.3f} per 1,000 seller-days"
    if units.startswith("USD per") or units.startswith("units per"):
        return f"{value:{sign},.0f}"
    return f"{value:{sign},.2f}"


def format_effect(effect: float, low: float, high: float, units: str) -> str:
    """``effect [low, high]`` for a difference (shares in percentage points); ``n/a`` without a value."""
    if effect is None or not np.isfinite(effect):
        return "n/a"
    if units == "1":  # one precision for the three numbers: a third decimal where 0.00 would hide the effect
        decimals = 3 if 0 < abs(100 * effect) < 0.1 else 2
        point = f"{100 * effect:+.{decimals}f} pp"
        if low is None or not (np.isfinite(low) and np.isfinite(high)):
            return f"{point} [n/a: fewer than 2 replications]"
        return f"{point} [{100 * low:+.{decimals}f}, {100 * high:+.{decimals}f}]"
    text = format_value(effect, units, signed=True)
    if low is None or not (np.isfinite(low) and np.isfinite(high)):
        return f"{text} [n/a: fewer than 2 replications]"
    suffix = " per 1,000 seller-days"
    bounds = [format_value(v, units, signed=True).removesuffix(suffix) for v in (low, high)]
    if units == "exits per seller-day":
        return f"{text.removesuffix(suffix)} [{bounds[0]}, {bounds[1]}]{suffix}"
    return f"{text} [{bounds[0]}, {bounds[1]}]"
