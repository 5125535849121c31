"""Shared pieces of :mod:`cbecsim.analysis`: input checks, outcome reductions, groups.

Everything here works on result Datasets as documented in the README (dims
``replication``, ``time``, ``seller``, ``market`` and, for sweeps, a leading
``scenario``); nothing here imports the engine.
"""

from __future__ import annotations

import json
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..schema import VARIABLES

__all__ = [
    "ResultError",
    "check_result",
    "outcome",
    "replication_values",
    "group_labels",
    "combine_runs",
    "scenario_config",
    "factor_names",
    "DERIVED_OUTCOMES",
]

#: Variables every cbecsim result has (the ones the analysis relies on).
REQUIRED_VARIABLES = ("revenue", "cm2", "alive", "cash", "exit_day")
REQUIRED_DIMS = ("replication", "time", "seller", "market")

#: Derived horizon outcomes per (replication, seller): name -> (units, description).
DERIVED_OUTCOMES: dict[str, tuple[str, str]] = {
    "survival": ("1", "1 if the seller was still trading at the end of the horizon, else 0"),
    "cm2_margin": ("1", "horizon CM2 / horizon revenue over all markets (NaN without revenue)"),
    "final_cash": ("USD", "cash at the end of the horizon"),
    "top_market_share": ("1", "share of the seller's horizon revenue earned in its largest market "
                              "(NaN without revenue)"),
}

_DERIVED_INPUTS = {"survival": ("alive",), "cm2_margin": ("cm2", "revenue"), "final_cash": ("cash",),
                   "top_market_share": ("revenue",)}

#: How result variables are reduced over ``market`` and ``time`` when asked for "auto":
#: from the variable table (:data:`cbecsim.schema.VARIABLES`): shares, prices and other
#: per-unit quantities are averaged, levels (values at the period end, values to date)
#: taken at the last period; anything else (and any variable not in the table, such as a
#: sweep's ``--summary-only`` outcomes) is a flow and summed.
_MARKET_AUTO = {name: v.over_market for name, v in VARIABLES.items() if v.over_market != "sum"}
_TIME_AUTO = {name: v.over_time for name, v in VARIABLES.items() if v.over_time != "sum"}


class ResultError(ValueError):
    """A Dataset that is not (or not compatible with) a cbecsim result."""


def check_result(result: Any, name: str = "result") -> xr.Dataset:
    """Refuse anything that is not a cbecsim result Dataset, saying what is missing.

    A sweep result (an extra leading ``scenario`` dim) passes too.
    """
    if not isinstance(result, xr.Dataset):
        raise ResultError(f"{name} is not an xarray.Dataset (got {type(result).__name__})")
    missing_dims = [d for d in REQUIRED_DIMS if d not in result.dims]
    missing_vars = [v for v in REQUIRED_VARIABLES if v not in result.data_vars]
    if missing_dims or missing_vars:
        parts = []
        if missing_dims:
            parts.append("dims " + ", ".join(missing_dims))
        if missing_vars:
            parts.append("variables " + ", ".join(missing_vars))
        raise ResultError(f"{name} is not a cbecsim result: it lacks {' and '.join(parts)}")
    if "strategy" not in result.coords:
        raise ResultError(f"{name} is not a cbecsim result: it lacks the seller coordinate 'strategy'")
    return result


def scenario_config(result: xr.Dataset) -> dict:
    """The resolved scenario config stored in the result's attributes ({} if absent)."""
    text = result.attrs.get("config")
    if not text:
        return {}
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return {}


def factor_names(sweep: xr.Dataset) -> list[str]:
    """Names of the sweep factors: the non-index coordinates that lie along ``scenario`` only."""
    if "scenario" not in sweep.dims:
        raise ResultError("not a sweep result: no 'scenario' dim")
    return [
        str(name) for name, coord in sweep.coords.items()
        if coord.dims == ("scenario",) and name != "scenario" and np.issubdtype(coord.dtype, np.number)
    ]


def group_members(result: xr.Dataset, by: str | None, label) -> np.ndarray:
    """Indices along ``seller`` of the group ``label`` of coordinate ``by`` (all sellers for None)."""
    if by is None:
        return np.arange(result.sizes["seller"])
    return np.flatnonzero(np.asarray(result.coords[by].values == label))


def group_labels(result: xr.Dataset, by: str | None) -> list:
    """The distinct values of seller coordinate ``by`` in order of first appearance."""
    if by is None:
        return ["all"]
    if by in result.coords and result.coords[by].dims == ("scenario", "seller"):
        raise ResultError(f"{by!r} changes from scenario to scenario in this sweep (a factor sets it): "
                          f"analyse one scenario at a time (sweep.isel(scenario=i)) or group by another "
                          "seller coordinate")
    if by not in result.coords or result.coords[by].dims != ("seller",):
        raise ResultError(f"cannot group by {by!r}: it is not a seller coordinate "
                          f"(have {', '.join(str(c) for c, v in result.coords.items() if v.dims == ('seller',))})")
    return list(pd.unique(np.asarray(result.coords[by].values)))


def _reduce_market(data: xr.DataArray, how: str | None, result: xr.Dataset) -> xr.DataArray:
    if "market" not in data.dims or how is None:
        return data
    if how == "sum":
        return data.sum("market", skipna=True, keep_attrs=True)
    if how == "mean":
        # Mean over the markets the seller's population serves, where there is a served mask.
        if "seller" in data.dims and "served" in result.coords:
            data = data.where(result["served"])
        return data.mean("market", skipna=True, keep_attrs=True)
    raise ValueError(f"market reduction must be 'sum', 'mean', 'auto' or None, got {how!r}")


def _reduce_time(data: xr.DataArray, how: str | None) -> xr.DataArray:
    if "time" not in data.dims or how is None:
        return data
    if how == "sum":
        return data.sum("time", skipna=True, keep_attrs=True)
    if how == "mean":
        return data.mean("time", skipna=True, keep_attrs=True)
    if how == "last":
        return data.isel(time=-1).drop_vars(["time", "period_end"], errors="ignore")
    raise ValueError(f"time reduction must be 'sum', 'mean', 'last', 'auto' or None, got {how!r}")


def outcome(result: xr.Dataset, variable: str | xr.DataArray, time: str | None = "auto",
            market: str | None = "auto") -> xr.DataArray:
    """One outcome per (replication, seller) -- or per period if ``time=None``.

    Parameters
    ----------
    result : cbecsim result (or sweep) Dataset
    variable : str or DataArray
        A derived horizon outcome (:data:`DERIVED_OUTCOMES`: ``"survival"``,
        ``"cm2_margin"``, ``"final_cash"``, ``"top_market_share"``; computed from the
        result's paths, or read from a ``--summary-only`` sweep store's variables), a
        result variable (``"revenue"``, ``"cash"``, ...), or a DataArray with a
        ``replication`` dim.
    time : {"auto", "sum", "mean", "last", None}
        Reduction over ``time``: ``"auto"`` takes the last period of levels (cash,
        alive, stock, customers, ltv, rating), averages shares and per-unit quantities
        (visibility, organic_share, landed_cost, return_rate, top_market_share,
        repeat_purchase_rate, cac, delivery_days) and sums everything else (flows: USD,
        units, counts); ``None`` keeps ``time`` (for fan charts).
    market : {"auto", "sum", "mean", None}
        Reduction over ``market``; ``"mean"`` averages over the markets the seller serves.

    Returns
    -------
    DataArray
        dims ``([scenario,] replication, [time,] seller)``; attrs ``units``,
        ``description``.
    """
    if isinstance(variable, xr.DataArray):
        data = variable
        name = str(variable.name)
        if "replication" not in data.dims:
            raise ResultError(f"outcome {name!r} has no 'replication' dim")
    elif variable in DERIVED_OUTCOMES and all(v in result.data_vars for v in _DERIVED_INPUTS[variable]):
        data = _derived(result, variable, time)
        units, description = DERIVED_OUTCOMES[variable]
        data.attrs.update(units=units, description=description)
        data.name = variable
        return data
    elif variable in result.data_vars:  # includes the --summary-only sweep outcomes
        data = result[variable]
        name = variable
    elif variable == "survival" and "survived" in result.data_vars:
        data = result["survived"]  # a sweep stored with --summary-only
        name = "survival"
    else:
        known = sorted([str(name) for name in result.data_vars] + list(DERIVED_OUTCOMES))
        raise ResultError(f"unknown variable {variable!r} (or its inputs are missing); have {', '.join(known)}")
    attrs = dict(data.attrs)
    market_how = _MARKET_AUTO.get(name, "sum") if market == "auto" else market
    time_how = _TIME_AUTO.get(name, "sum") if time == "auto" else time
    if data.dtype == bool:
        data = data.astype(float)
    data = _reduce_time(_reduce_market(data, market_how, result), time_how)
    data.attrs.update(attrs)
    data.attrs.setdefault("units", "1")
    data.name = name
    return data


def _derived(result: xr.Dataset, name: str, time: str | None) -> xr.DataArray:
    keep_time = time is None
    if name == "survival":
        alive = result["alive"].astype(float)
        return alive if keep_time else _reduce_time(alive, "last")
    if name == "final_cash":
        return result["cash"] if keep_time else _reduce_time(result["cash"], "last")
    revenue_by_market = result["revenue"] if keep_time else result["revenue"].sum("time")
    revenue = revenue_by_market.sum("market")
    if name == "cm2_margin":
        cm2 = result["cm2"] if keep_time else result["cm2"].sum("time")
        return (cm2.sum("market") / revenue).where(revenue > 0)
    if name == "top_market_share":
        return (revenue_by_market.max("market") / revenue).where(revenue > 0)
    raise AssertionError(name)  # pragma: no cover


def replication_values(result: xr.Dataset, variable: str | xr.DataArray, by: str | None = "strategy",
                       time: str | None = "auto", market: str | None = "auto",
                       seller: str = "mean") -> xr.DataArray:
    """One number per replication and group: the replication is the independent unit.

    The outcome per seller (:func:`outcome`) is reduced over the group's sellers within
    each replication (``seller="mean"`` or ``"sum"``, NaN skipped). ``"cm2_margin"`` is
    pooled instead, as everywhere in cbecsim: the group's sum of CM2 over its sum of
    revenue in each replication (NaN without revenue), whatever ``seller``.

    Returns
    -------
    DataArray
        dims ``([scenario,] replication, [time,] <by>)``, the group dim named after
        ``by`` (``"group"`` with the one label ``"all"`` for ``by=None``); attrs
        ``units`` (``units`` of the outcome) and ``description``.
    """
    if (isinstance(variable, str) and variable == "cm2_margin" and "cm2_margin" not in result.data_vars
            and all(v in result.data_vars for v in _DERIVED_INPUTS["cm2_margin"])):
        cm2 = replication_values(result, "cm2", by, time, market, seller="sum")
        revenue = replication_values(result, "revenue", by, time, market, seller="sum")
        pooled = (cm2 / revenue).where(revenue > 0)
        pooled.name = "cm2_margin"
        return pooled.assign_attrs(units="1", description="sum of CM2 / sum of revenue over the group's sellers "
                                                          "and markets (pooled; NaN without revenue)")
    data = outcome(result, variable, time=time, market=market)
    attrs = dict(data.attrs)
    if "seller" not in data.dims:
        if by is not None:
            raise ResultError(f"{data.name!r} has no seller dim, so it cannot be grouped by {by!r}; pass by=None")
        return data.expand_dims(group=["all"], axis=-1).assign_attrs(attrs)
    labels = group_labels(result, by)
    dim = by or "group"
    pieces = []
    for label in labels:
        chosen = data.isel(seller=group_members(result, by, label))
        if seller == "mean":
            pieces.append(chosen.mean("seller", skipna=True))
        elif seller == "sum":
            pieces.append(chosen.sum("seller", skipna=True))
        else:
            raise ValueError(f"seller reduction must be 'mean' or 'sum', got {seller!r}")
    stacked = xr.concat(pieces, dim=pd.Index(labels, name=dim), coords="minimal", compat="override")
    drop = [c for c, v in stacked.coords.items() if "seller" in v.dims]
    stacked = stacked.drop_vars(drop)
    stacked.attrs.update(attrs)
    stacked.name = data.name
    return stacked


def combine_runs(runs: Mapping[Hashable, xr.Dataset] | Sequence[xr.Dataset],
                 factors: Mapping[str, Sequence[Any]] | None = None) -> xr.Dataset:
    """Stack run results along a new leading ``scenario`` dim (the sweep store's shape).

    Parameters
    ----------
    runs : mapping name -> result, or a sequence of results
        Runs with the same sellers, markets, time axis and replications (e.g. the same
        scenario with a few parameters changed). Named runs get their names as the
        ``scenario`` coordinate; a sequence gets 0..n-1.
    factors : mapping factor name -> one value per run, optional
        Stored as coordinates along ``scenario`` (as a sweep stores its factors).

    Returns
    -------
    Dataset with dims ``(scenario, replication, time, seller, market)``; the first
    run's attrs, plus ``design = "combined runs"``.
    """
    if isinstance(runs, Mapping):
        names, datasets = list(runs.keys()), list(runs.values())
    else:
        datasets = list(runs)
        names = list(range(len(datasets)))
    if not datasets:
        raise ValueError("combine_runs needs at least one run")
    for i, data in enumerate(datasets):
        check_result(data, f"run {names[i]!r}")
        if data.sizes != datasets[0].sizes:
            raise ResultError(f"run {names[i]!r} has sizes {dict(data.sizes)}, the first run "
                              f"{dict(datasets[0].sizes)}")
    combined = xr.concat(datasets, dim=pd.Index(names, name="scenario"), coords="minimal",
                         compat="override", join="exact", combine_attrs="override")
    for factor, values in (factors or {}).items():
        column = np.asarray(values)
        if column.shape != (len(datasets),):
            raise ValueError(f"factor {factor!r} needs one value per run ({len(datasets)}), got shape {column.shape}")
        combined = combined.assign_coords({factor: ("scenario", column)})
    combined.attrs = dict(datasets[0].attrs)
    combined.attrs["design"] = "combined runs"
    return combined
