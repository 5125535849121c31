"""Seller survival: Kaplan-Meier curves, median survival time, hazard around shock dates.

Time is counted in days since the horizon start (``result.time[0]``). A seller that
exits on day index ``d`` (``exit_day = start + d``) has an event at ``d``; a seller
with ``exit_day = NaT`` survived the horizon and is right-censored at ``n_days`` (the
day after the last simulated day). ``S(d)`` is the probability of still trading at the
end of day ``d``, so ``S(n_days - 1)`` is the survival share at the horizon.

References
----------
Kaplan, E. L. & Meier, P. (1958). Nonparametric estimation from incomplete
observations. *JASA* 53, 457-481. Greenwood, M. (1926). The natural duration of cancer.
Kalbfleisch, J. D. & Prentice, R. L. (2002). *The Statistical Analysis of Failure Time
Data*, 2nd ed., sec. 1.4 (log(-log) interval). Brookmeyer, R. & Crowley, J. (1982). A
confidence interval for the median survival time. *Biometrics* 38, 29-41.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats as _st

from ._common import check_result, group_labels, group_members
from .stats import _resample

__all__ = ["kaplan_meier", "kaplan_meier_estimate", "median_survival", "hazard_around", "horizon_days"]


def horizon_days(result: xr.Dataset) -> tuple[np.datetime64, int]:
    """(start date, number of simulated days) of a result."""
    start = np.datetime64(pd.Timestamp(result["time"].values[0]).normalize(), "ns")
    if "period_end" in result.coords:
        end = np.datetime64(pd.Timestamp(result["period_end"].values[-1]).normalize(), "ns")
    else:  # pragma: no cover - every cbecsim result has period_end
        end = np.datetime64(pd.Timestamp(result["time"].values[-1]).normalize(), "ns")
    return start, int((end - start) / np.timedelta64(1, "D")) + 1


def _exit_index(exit_day: np.ndarray, start: np.datetime64, n_days: int) -> np.ndarray:
    """Exit day index as float, NaN for censored (NaT or on/after the horizon end)."""
    days = (exit_day.astype("datetime64[ns]") - start) / np.timedelta64(1, "D")
    days = np.where(np.isnat(exit_day.astype("datetime64[ns]")), np.nan, days)
    return np.where(days < n_days, np.floor(days), np.nan)


def kaplan_meier_estimate(durations: np.ndarray, observed: np.ndarray, grid: np.ndarray,
                          level: float = 0.95, transform: str = "log-log") -> dict[str, np.ndarray]:
    """Kaplan-Meier survival on a time grid, with Greenwood standard errors and intervals.

    Parameters
    ----------
    durations : array (n,) [days]
        Event or censoring time of each subject.
    observed : array (n,) of bool
        True for an event (exit), False for a censored subject. A subject censored at
        ``t`` is at risk at ``t`` (censoring after events at the same time, the usual
        convention).
    grid : increasing array (k,) [days]
        Times at which to evaluate the right-continuous step function ``S(t)``.
    level : confidence level of the pointwise interval
    transform : "log-log" (Kalbfleisch-Prentice; stays in [0, 1]) or "plain" (S +/- z SE,
        clipped)

    Returns
    -------
    dict of arrays (k,): ``survival``, ``se`` (Greenwood), ``low``, ``high``,
    ``at_risk`` (subjects at risk at t), ``events`` (events at exactly t).
    """
    durations = np.asarray(durations, float)
    observed = np.asarray(observed, bool)
    grid = np.asarray(grid, float)
    event_times = np.unique(durations[observed])
    at_risk = np.array([(durations >= t).sum() for t in event_times], float)
    events = np.array([((durations == t) & observed).sum() for t in event_times], float)
    factors = 1.0 - events / at_risk
    survival_at_events = np.cumprod(factors)
    with np.errstate(divide="ignore", invalid="ignore"):
        greenwood_terms = np.where(at_risk > events, events / (at_risk * (at_risk - events)), np.inf)
    greenwood_sum = np.cumsum(greenwood_terms)
    # Step function: value at the last event time <= t.
    position = np.searchsorted(event_times, grid, side="right") - 1
    survival = np.where(position >= 0, survival_at_events[np.maximum(position, 0)] if event_times.size else 1.0, 1.0)
    variance_sum = np.where(position >= 0, greenwood_sum[np.maximum(position, 0)] if event_times.size else 0.0, 0.0)
    with np.errstate(invalid="ignore"):
        se = survival * np.sqrt(variance_sum)
    se = np.where(survival == 0, 0.0, se)
    z = _st.norm.ppf(0.5 + level / 2)
    if transform == "plain":
        low, high = np.clip(survival - z * se, 0, 1), np.clip(survival + z * se, 0, 1)
    elif transform == "log-log":
        with np.errstate(divide="ignore", invalid="ignore"):
            theta_se = np.sqrt(variance_sum) / np.abs(np.log(survival))
            low = survival ** np.exp(z * theta_se)
            high = survival ** np.exp(-z * theta_se)
        degenerate = (survival >= 1) | (survival <= 0)
        low = np.where(degenerate, survival, low)
        high = np.where(degenerate, survival, high)
    else:
        raise ValueError(f"transform must be 'log-log' or 'plain', got {transform!r}")
    at_risk_grid = np.array([(durations >= t).sum() for t in grid], float)
    events_grid = np.array([((durations == t) & observed).sum() for t in grid], float)
    return {"survival": survival, "se": se, "low": low, "high": high, "at_risk": at_risk_grid, "events": events_grid}


def _daily_counts(index: np.ndarray, n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Per replication: exits per day (R, n_days) and at risk per day (R, n_days)."""
    n_rep = index.shape[0]
    exits = np.zeros((n_rep, n_days))
    observed = ~np.isnan(index)
    rows, cols = np.nonzero(observed)
    np.add.at(exits, (rows, index[rows, cols].astype(np.int64)), 1.0)
    members = index.shape[1]
    exited_before = np.cumsum(exits, axis=1) - exits
    at_risk = members - exited_before
    return exits, at_risk


def kaplan_meier(result: xr.Dataset, by: str | None = "strategy", level: float = 0.95,
                 ci_method: str = "greenwood", transform: str = "log-log", n_boot: int = 1000,
                 seed: int = 0) -> xr.Dataset:
    """Kaplan-Meier survival curves per group from ``exit_day``.

    Each seller-replication is a subject; ``exit_day = NaT`` is censored at the horizon.

    Parameters
    ----------
    result : result Dataset or sweep (``scenario`` dim kept)
    by : seller coordinate to group by, or None for all sellers
    level : confidence level of the pointwise interval
    ci_method : ``"greenwood"`` (Greenwood variance; treats the group's
        seller-replications as independent, which understates the spread when sellers of
        one replication share shocks) or ``"bootstrap"`` (percentile interval from
        resampling whole replications: the replication is the independent unit)
    transform : interval scale for Greenwood, ``"log-log"`` or ``"plain"``
    n_boot, seed : bootstrap resamples and their seed (``ci_method="bootstrap"``)

    Returns
    -------
    Dataset with dims ``([scenario,] <by>, day)`` (``day`` = days since the horizon
    start, coordinate ``date``): ``survival``, ``survival_low``, ``survival_high``,
    ``greenwood_se`` (units 1), ``at_risk`` (subjects at risk at the start of the day)
    and ``exits`` (exits that day), both in seller-replications.
    """
    check_result(result)
    if ci_method not in ("greenwood", "bootstrap"):
        raise ValueError(f"ci_method must be 'greenwood' or 'bootstrap', got {ci_method!r}")
    start, n_days = horizon_days(result)
    labels = group_labels(result, by)
    group_dim = by or "group"
    exit_day = result["exit_day"]
    outer_dims = [d for d in exit_day.dims if d not in ("replication", "seller")]
    exit_values = exit_day.transpose(*outer_dims, "replication", "seller").values
    outer_shape = exit_values.shape[:-2]
    exit_values = exit_values.reshape((-1,) + exit_values.shape[-2:])
    grid = np.arange(n_days, dtype=float)
    names = ("survival", "survival_low", "survival_high", "greenwood_se", "at_risk", "exits")
    out = {name: np.full((len(labels), exit_values.shape[0], n_days), np.nan) for name in names}
    rng = np.random.default_rng(seed)
    for g, label in enumerate(labels):
        sellers = group_members(result, by, label)
        for o in range(exit_values.shape[0]):
            index = _exit_index(exit_values[o][:, sellers], start, n_days)  # (R, n)
            observed = ~np.isnan(index)
            durations = np.where(observed, index, float(n_days)).ravel()
            estimate = kaplan_meier_estimate(durations, observed.ravel(), grid, level, transform)
            out["survival"][g, o] = estimate["survival"]
            out["greenwood_se"][g, o] = estimate["se"]
            out["at_risk"][g, o] = estimate["at_risk"]
            out["exits"][g, o] = estimate["events"]
            if ci_method == "greenwood":
                out["survival_low"][g, o], out["survival_high"][g, o] = estimate["low"], estimate["high"]
            else:
                exits, at_risk = _daily_counts(index, n_days)
                n_rep = index.shape[0]
                _, weights = _resample(rng, n_boot, n_rep)
                boot_exits, boot_risk = weights @ exits, weights @ at_risk
                with np.errstate(divide="ignore", invalid="ignore"):
                    hazard = np.where(boot_risk > 0, boot_exits / boot_risk, 0.0)
                boot_curves = np.cumprod(1.0 - hazard, axis=1)
                alpha = 1 - level
                out["survival_low"][g, o] = np.quantile(boot_curves, alpha / 2, axis=0)
                out["survival_high"][g, o] = np.quantile(boot_curves, 1 - alpha / 2, axis=0)
    dims = [group_dim] + outer_dims + ["day"]
    coords: dict = {group_dim: labels, "day": np.arange(n_days),
                    "date": ("day", start + np.arange(n_days).astype("timedelta64[D]"))}
    for dim in outer_dims:
        coords[dim] = exit_day.coords[dim].values
    units = {"survival": "1", "survival_low": "1", "survival_high": "1", "greenwood_se": "1",
             "at_risk": "seller-replications", "exits": "seller-replications"}
    data = {name: (dims, out[name].reshape((len(labels),) + outer_shape + (n_days,)), {"units": units[name]})
            for name in names}
    curves = xr.Dataset(data, coords=coords)
    curves["day"].attrs.update(units="days since the horizon start",
                               description="S(day) = probability of still trading at the end of that day")
    if "scenario" in curves.dims:
        curves = curves.transpose("scenario", ...)
    curves.attrs = {"level": float(level), "ci_method": ci_method,
                    "transform": transform if ci_method == "greenwood" else "n/a",
                    "horizon_start": str(pd.Timestamp(start).date()), "n_days": n_days,
                    "censoring": "exit_day NaT = survived the horizon, censored at n_days"}
    return curves


def median_survival(curves: xr.Dataset) -> xr.Dataset:
    """Median survival time and its interval from :func:`kaplan_meier` curves.

    The median is the first day with ``S <= 0.5``; its interval runs from the first day
    the lower band reaches 0.5 to the first day the upper band does (Brookmeyer-Crowley
    style inversion of the pointwise band). NaN means not reached within the horizon
    (more than half the group survived, so the median lies beyond it).

    Returns
    -------
    Dataset over the curves' dims without ``day``: ``median_days``, ``median_low_days``,
    ``median_high_days`` [days since the horizon start], ``median_date`` (NaT if not
    reached).
    """
    day = curves["day"]

    def first_at_or_below(curve: xr.DataArray) -> xr.DataArray:
        reached = curve <= 0.5
        first = reached.argmax("day")
        return xr.where(reached.any("day"), day.isel(day=first).drop_vars(["day", "date"], errors="ignore")
                        .astype(float), np.nan)

    median = first_at_or_below(curves["survival"])
    low = first_at_or_below(curves["survival_low"])
    high = first_at_or_below(curves["survival_high"])
    start = np.datetime64(curves.attrs["horizon_start"], "ns")
    median_date = xr.apply_ufunc(
        lambda d: np.where(np.isnan(d), np.datetime64("NaT", "ns"),
                           start + np.nan_to_num(d).astype("timedelta64[D]")),
        median)
    units = {"units": "days since the horizon start"}
    return xr.Dataset({
        "median_days": median.assign_attrs(units),
        "median_low_days": low.assign_attrs(units),
        "median_high_days": high.assign_attrs(units),
        "median_date": median_date,
    }, attrs={"level": curves.attrs.get("level"), "not_reached": "NaN: S stays above 0.5 within the horizon"})


def hazard_around(result: xr.Dataset, dates: Sequence, window_days: int = 28, by: str | None = "strategy",
                  level: float = 0.95, n_boot: int = 1000, seed: int = 0) -> xr.Dataset:
    """Exit hazard in windows before and after given dates (e.g. a duty change).

    For each date ``D``: window ``before`` = days ``[D - w, D)``, ``after`` = ``[D, D + w)``
    (clipped to the horizon). A seller-replication contributes one seller-day at risk
    for each day of the window on which it had not exited before the day starts (the
    exit day itself counts); hazard = exits / seller-days at risk.

    Intervals are percentile intervals from resampling replications (the independent
    unit), as is the ``after / before`` rate ratio's.

    Returns
    -------
    Dataset with dims ``([scenario,] date, <by>, window)`` (``window`` = before,
    after): ``exits`` [exits], ``seller_days`` [seller-days], ``hazard``,
    ``hazard_low``, ``hazard_high`` [exits per seller-day]; and over ``([scenario,]
    date, <by>)``: ``rate_ratio``, ``rate_ratio_low``, ``rate_ratio_high`` [1].
    """
    check_result(result)
    if window_days < 1:
        raise ValueError(f"window_days must be >= 1, got {window_days}")
    start, n_days = horizon_days(result)
    labels = group_labels(result, by)
    members = [group_members(result, by, label) for label in labels]  # once, not per window
    group_dim = by or "group"
    stamps = [np.datetime64(pd.Timestamp(d).normalize(), "ns") for d in dates]
    exit_day = result["exit_day"]
    outer_dims = [d for d in exit_day.dims if d not in ("replication", "seller")]
    exit_values = exit_day.transpose(*outer_dims, "replication", "seller").values
    outer_shape = exit_values.shape[:-2]
    exit_values = exit_values.reshape((-1,) + exit_values.shape[-2:])
    n_outer, n_rep = exit_values.shape[:2]
    shape = (n_outer, len(stamps), len(labels), 2)
    exits = np.zeros(shape)
    exposure = np.zeros(shape)
    boot = np.full(shape + (n_boot,), np.nan)
    rng = np.random.default_rng(seed)
    _, weights = _resample(rng, n_boot, n_rep)  # (B, R) draw counts
    for o in range(n_outer):
        index = _exit_index(exit_values[o], start, n_days)  # (R, S)
        censored = np.isnan(index)
        last_at_risk = np.where(censored, n_days - 1, index)
        for k, stamp in enumerate(stamps):
            centre = int((stamp - start) / np.timedelta64(1, "D"))
            windows = ((centre - window_days, centre), (centre, centre + window_days))
            for w, (a, b) in enumerate(windows):
                a, b = max(a, 0), min(b, n_days)
                if b <= a:
                    continue
                days_at_risk = np.clip(np.minimum(last_at_risk, b - 1) - a + 1, 0, None)
                exited = (~censored) & (index >= a) & (index < b)
                for g, sellers in enumerate(members):
                    per_rep_exits = exited[:, sellers].sum(1).astype(float)
                    per_rep_days = days_at_risk[:, sellers].sum(1).astype(float)
                    exits[o, k, g, w] = per_rep_exits.sum()
                    exposure[o, k, g, w] = per_rep_days.sum()
                    with np.errstate(divide="ignore", invalid="ignore"):
                        boot[o, k, g, w] = (weights @ per_rep_exits) / (weights @ per_rep_days)
    alpha = 1 - level
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(exposure > 0, exits / exposure, np.nan)
        ratio = hazard[..., 1] / hazard[..., 0]
        boot_ratio = boot[..., 1, :] / boot[..., 0, :]
    boot_ratio = np.where(np.isfinite(boot_ratio), boot_ratio, np.nan)

    def band(samples, q):
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                return np.nanquantile(samples, q, axis=-1)

    def shaped(array, extra):
        return array.reshape(outer_shape + array.shape[1:1 + 2] + extra)

    dims = outer_dims + ["date", group_dim]
    rate = "exits per seller-day"
    data = {
        "exits": (dims + ["window"], shaped(exits, (2,)), {"units": "exits"}),
        "seller_days": (dims + ["window"], shaped(exposure, (2,)), {"units": "seller-days"}),
        "hazard": (dims + ["window"], shaped(hazard, (2,)), {"units": rate}),
        "hazard_low": (dims + ["window"], shaped(band(boot, alpha / 2), (2,)), {"units": rate}),
        "hazard_high": (dims + ["window"], shaped(band(boot, 1 - alpha / 2), (2,)), {"units": rate}),
        "rate_ratio": (dims, shaped(ratio, ()), {"units": "1", "description": "hazard after / hazard before"}),
        "rate_ratio_low": (dims, shaped(band(boot_ratio, alpha / 2), ()), {"units": "1"}),
        "rate_ratio_high": (dims, shaped(band(boot_ratio, 1 - alpha / 2), ()), {"units": "1"}),
    }
    coords: dict = {"date": np.array(stamps), group_dim: labels, "window": ["before", "after"]}
    for dim in outer_dims:
        coords[dim] = exit_day.coords[dim].values
    return xr.Dataset(data, coords=coords, attrs={
        "window_days": int(window_days), "level": float(level), "n_boot": int(n_boot), "seed": int(seed),
        "method": "exits / seller-days at risk; percentile intervals from resampling replications"})
