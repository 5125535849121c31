"""Synthetic result and sweep Datasets for the analysis tests (no engine involved).

They have the shape and names of a real result (README: dims replication, time, seller,
market; the variables the analysis reads; coords strategy, served, period_end, ...), so
the analysis is tested against values set by hand.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

START = "2025-01-01"


def synthetic_result(replications: int = 6, strategies: dict | None = None, periods: int = 4, markets: int = 2,
                     days_per_period: int = 7, seed: int = 0, exit_days: np.ndarray | None = None,
                     revenue: float | np.ndarray = 100.0, margin: float = 0.2, name: str = "synthetic",
                     run_seed: int = 11) -> xr.Dataset:
    """A result-shaped Dataset.

    ``revenue`` per (replication, time, seller, market) cell (scalar or array), ``cm2 =
    margin * revenue``; ``exit_days`` (replications, sellers) day index of exit or NaN
    (survived); ``alive`` and ``cash`` follow from it.
    """
    strategies = strategies or {"alpha": 3, "beta": 2}
    labels = [s for s, n in strategies.items() for _ in range(n)]
    n_sellers = len(labels)
    rng = np.random.default_rng(seed)
    time = pd.date_range(START, periods=periods, freq=f"{days_per_period}D")
    period_end = time + pd.Timedelta(days=days_per_period - 1)
    n_days = periods * days_per_period
    shape = (replications, periods, n_sellers, markets)
    revenue_values = np.broadcast_to(np.asarray(revenue, float), shape).copy()
    units = np.round(revenue_values / 10).astype(np.int32)
    if exit_days is None:
        exit_days = np.full((replications, n_sellers), np.nan)
    exit_days = np.asarray(exit_days, float)
    start = np.datetime64(START, "ns")
    exit_dates = np.where(np.isnan(exit_days), np.datetime64("NaT", "ns"),
                          start + np.nan_to_num(exit_days).astype("timedelta64[D]"))
    # alive at the end of period t: no exit on or before its last day
    last_day = (np.arange(periods) + 1) * days_per_period - 1
    alive = np.isnan(exit_days)[:, None, :] | (exit_days[:, None, :] > last_day[None, :, None])
    cash = 1000.0 + rng.normal(0, 100, (replications, periods, n_sellers)).cumsum(1)
    sm = ("replication", "time", "seller", "market")
    data = {
        "revenue": (sm, revenue_values, {"units": "USD"}),
        "cm2": (sm, margin * revenue_values, {"units": "USD"}),
        "units_sold": (sm, units, {"units": "units"}),
        "organic_share": (sm, np.full(shape, 0.5, np.float32), {"units": "1"}),
        "visibility": (sm, np.full(shape, 0.1, np.float32), {"units": "1"}),
        "cash": (sm[:3], cash, {"units": "USD"}),
        "alive": (sm[:3], alive, {"units": "1"}),
        "exit_day": (("replication", "seller"), exit_dates, {}),
        "initial_cash": (("replication", "seller"), np.full((replications, n_sellers), 1000.0), {"units": "USD"}),
    }
    coords = {
        "replication": np.arange(replications),
        "time": time.values,
        "period_end": ("time", period_end.values),
        "seller": np.arange(n_sellers),
        "strategy": ("seller", np.array(labels)),
        "population": ("seller", np.array(labels)),
        "market": [f"M{m}/goods" for m in range(markets)],
        "served": (("seller", "market"), np.ones((n_sellers, markets), bool)),
    }
    config = {"name": name, "description": "a synthetic result for the tests",
              "horizon": {"start": START, "end": str((time[0] + pd.Timedelta(days=n_days - 1)).date())},
              "duty_schedule": [{"date": str((time[0] + pd.Timedelta(days=n_days // 2)).date())}]}
    attrs = {"scenario": name, "seed": run_seed, "replications": replications, "resolution": "week",
             "config": json.dumps(config), "cbecsim_version": "test", "git_revision": "test"}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def ishigami(x: np.ndarray, a: float = 7.0, b: float = 0.1) -> np.ndarray:
    """Ishigami function on [-pi, pi]^3 (Ishigami & Homma 1990)."""
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def sweep_of_outcome(points: np.ndarray, names: list[str], outcome: np.ndarray, design: str = "sobol",
                     variable: str = "cash") -> xr.Dataset:
    """A sweep-shaped Dataset: dims (scenario, replication, time, seller, market) with one seller and market,
    factor coords along scenario, and ``outcome`` (scenario, replication) as the final ``cash``."""
    n_scenarios, n_rep = outcome.shape
    base = synthetic_result(replications=n_rep, strategies={"only": 1}, periods=1, markets=1)
    sweep = xr.concat([base] * 1, dim="scenario").isel(scenario=np.zeros(n_scenarios, int))
    sweep = sweep.assign_coords(scenario=np.arange(n_scenarios))
    sweep[variable] = (("scenario", "replication", "time", "seller"), outcome[:, :, None, None], {"units": "USD"})
    for j, name in enumerate(names):
        sweep = sweep.assign_coords({name: ("scenario", points[:, j])})
    sweep.attrs["design"] = design
    return sweep
