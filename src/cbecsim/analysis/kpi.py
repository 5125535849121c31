"""The seed paper's Table 4 KPIs per strategy (and scenario), or why one cannot be computed.

Table 4 of the seed paper (``shared/seed/000_c9888313d6cbe1df.txt``) names the KPIs of
a staged plan: stage 1 (0-3 months) CM2 >= 0, return rate trend, listing
interruptions; stage 2 (3-9 months) revenue share of the top market <= 50%, delivery
timeliness; stage 3 (9-18 months) repeat purchase rate, LTV/CAC, organic share.

Each KPI is first computed per replication for the strategy's sellers (the replication
is the independent unit), then reported as the mean over replications with a t
interval. A KPI whose inputs are not in the result is reported as
``"not modelled: needs variable X"`` with no value -- never filled in.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats as _st

from ._common import check_result, group_labels

__all__ = ["kpi_table", "KPIS", "Kpi"]

_KEEP = ("scenario", "replication", "seller")


def _other_dims(data: xr.DataArray) -> list[Hashable]:
    return [d for d in data.dims if d not in _KEEP]


def _total(data: xr.DataArray) -> xr.DataArray:
    """Sum over every dim but scenario/replication/seller (time, market), NaN as 0."""
    return data.sum(_other_dims(data), skipna=True)


def _weighted_mean(data: xr.DataArray, weights: xr.DataArray | None) -> xr.DataArray:
    """Weighted mean over time/market (weights reduced to the data's dims); plain mean without weights."""
    dims = _other_dims(data)
    if weights is None:
        return data.mean(dims, skipna=True)
    extra = [d for d in weights.dims if d not in data.dims]
    weights = weights.sum(extra) if extra else weights
    weights = weights.where(np.isfinite(data), 0.0).astype(float)
    numerator = (data.fillna(0.0) * weights).sum(dims)
    denominator = weights.sum(dims)
    plain = data.mean(dims, skipna=True)
    return xr.where(denominator > 0, numerator / denominator.where(denominator > 0), plain)


def _group_sum(data: xr.DataArray, mask: np.ndarray) -> xr.DataArray:
    return data.isel(seller=np.flatnonzero(mask)).sum("seller", skipna=True)


def _group_mean(data: xr.DataArray, mask: np.ndarray) -> xr.DataArray:
    return data.isel(seller=np.flatnonzero(mask)).mean("seller", skipna=True)


def _units_weights(result: xr.Dataset) -> xr.DataArray | None:
    """Units sold through every channel (marketplace + DTC where modelled)."""
    if "units_sold" not in result:
        return None
    units = result["units_sold"].astype(float)
    if "dtc_units" in result and result["dtc_units"].dims == units.dims:
        units = units + result["dtc_units"].astype(float)
    return units


def _latest(data: xr.DataArray) -> xr.DataArray:
    """The last finite value along ``time`` (a to-date quantity at the horizon end)."""
    if "time" not in data.dims:
        return data
    finite = np.isfinite(data)
    steps = xr.DataArray(np.arange(data.sizes["time"]), dims="time")
    last = steps.where(finite).max("time", skipna=True)  # index of the last finite value (NaN: none)
    picked = data.isel(time=last.fillna(0).astype(int))
    return picked.where(np.isfinite(last)).drop_vars(["time", "period_end"], errors="ignore")


# --- KPI definitions: each maps (result, seller mask) -> per-replication DataArray --------


def _cm2_margin(result, mask):
    cm2 = _group_sum(_total(result["cm2"]), mask)
    revenue = _group_sum(_total(result["revenue"]), mask)
    return (cm2 / revenue).where(revenue > 0)


def _cm2_nonnegative(result, mask):
    cm2 = _total(result["cm2"]).isel(seller=np.flatnonzero(mask))
    return (cm2 >= 0).astype(float).mean("seller")


def _return_rate_per_seller(result) -> tuple[xr.DataArray, xr.DataArray]:
    """(returned units, sold units) per seller and period-and-market cell."""
    units = result["units_sold"].astype(float)
    if "returns" in result:
        return result["returns"].astype(float), units
    rate = result["return_rate"].astype(float)
    extra = [d for d in units.dims if d not in rate.dims]
    units = units.sum(extra) if extra else units
    return rate * units, units


def _return_rate(result, mask):
    returned, sold = _return_rate_per_seller(result)
    returned, sold = _group_sum(_total(returned), mask), _group_sum(_total(sold), mask)
    return (returned / sold).where(sold > 0)


def _return_rate_trend(result, mask):
    returned, sold = _return_rate_per_seller(result)
    if "time" not in returned.dims:
        return None
    half = returned.sizes["time"] // 2
    rates = []
    for part in (slice(0, half), slice(half, None)):
        r = _group_sum(_total(returned.isel(time=part)), mask)
        s = _group_sum(_total(sold.isel(time=part)), mask)
        rates.append((r / s).where(s > 0))
    return rates[1] - rates[0]


def _listing_interruptions(result, mask):
    return _group_mean(_total(result["listing_interruptions"].astype(float)), mask)


def _top_share_per_seller(result) -> xr.DataArray:
    if "top_market_share" in result:
        share = result["top_market_share"].astype(float)
        weights = result["revenue"] if "revenue" in result else None
        return _weighted_mean(share, weights).where(_total(result["revenue"]) > 0)
    by_market = result["revenue"].sum([d for d in result["revenue"].dims if d not in _KEEP + ("market",)])
    total = by_market.sum("market")
    return (by_market.max("market") / total).where(total > 0)


def _top_market_share(result, mask):
    return _group_mean(_top_share_per_seller(result), mask)


def _top_market_share_le_half(result, mask):
    share = _top_share_per_seller(result).isel(seller=np.flatnonzero(mask))
    return (share <= 0.5).where(np.isfinite(share)).mean("seller", skipna=True)


def _delivery_days(result, mask):
    return _group_mean(_weighted_mean(result["delivery_days"].astype(float), _units_weights(result)), mask)


def _repeat_purchase_rate(result, mask):
    return _group_mean(_weighted_mean(result["repeat_purchase_rate"].astype(float), _units_weights(result)), mask)


def _ltv_cac(result, mask):
    # LTV is a value to date: its last finite value per seller (and market), averaged.
    ltv = _group_mean(_weighted_mean(_latest(result["ltv"].astype(float)), None), mask)
    if "acquisition_spend" in result and "new_customers" in result:
        # Blended CAC over the horizon: all acquisition spend / all new customers.
        spend = _group_sum(_total(result["acquisition_spend"].astype(float)), mask)
        new = _group_sum(_total(result["new_customers"].astype(float)), mask)
        cac = (spend / new).where(new > 0)
    else:
        cac = _group_mean(_weighted_mean(result["cac"].astype(float), None), mask)
    return (ltv / cac).where(cac > 0)


def _organic_share(result, mask):
    share = result["organic_share"].astype(float)
    units = result["units_sold"].astype(float)
    organic = _group_sum(_total(share.fillna(0.0) * units), mask)
    sold = _group_sum(_total(units.where(np.isfinite(share), 0.0)), mask)
    return (organic / sold).where(sold > 0)


@dataclass(frozen=True)
class Kpi:
    """One KPI: which stage of Table 4, how it is computed and from which variables."""

    name: str
    label: str
    stage: int
    units: str
    target: str
    definition: str
    needs: tuple[tuple[str, ...], ...]  # alternatives: any one tuple of variables suffices
    compute: Callable[[xr.Dataset, np.ndarray], xr.DataArray | None]
    meets: Callable[[float], bool] | None = None
    #: definition per alternative in ``needs`` where they differ (default: ``definition``)
    alternatives: tuple[str, ...] | None = None

    def describe(self, used: tuple[str, ...] | None) -> str:
        if used is None or self.alternatives is None:
            return self.definition
        return self.alternatives[self.needs.index(used)]

    def available(self, result: xr.Dataset) -> tuple[str, ...] | None:
        for variables in self.needs:
            if all(v in result.data_vars for v in variables):
                return variables
        return None

    def missing(self) -> str:
        options = [" and ".join(v) for v in self.needs]
        return "not modelled: needs variable " + " (or ".join(options) + ")" * (len(options) - 1)


_TOP_SHARE_ENGINE = (
    "revenue-weighted mean over periods of the engine's top_market_share (the largest market's share of the "
    "seller's revenue in each period, so at least the horizon share), mean over sellers with revenue")

KPIS: tuple[Kpi, ...] = (
    Kpi("cm2_margin", "CM2 margin", 1, "1", ">= 0",
        "sum of CM2 / sum of revenue over the strategy's sellers, markets and the horizon",
        (("cm2", "revenue"),), _cm2_margin, lambda v: v >= 0),
    Kpi("cm2_nonnegative_share", "sellers with CM2 >= 0", 1, "1", "CM2 >= 0",
        "share of the strategy's sellers whose horizon CM2 is >= 0", (("cm2",),), _cm2_nonnegative),
    Kpi("return_rate", "return rate", 1, "1", "",
        "returned units / units sold over the horizon", (("returns", "units_sold"), ("return_rate", "units_sold")),
        _return_rate),
    Kpi("return_rate_trend", "return rate trend", 1, "1", "falling",
        "return rate in the second half of the horizon minus the first half",
        (("returns", "units_sold"), ("return_rate", "units_sold")), _return_rate_trend),
    Kpi("listing_interruptions", "listing interruptions", 1, "interruptions per seller", "",
        "listing interruptions per seller over the horizon (all markets)", (("listing_interruptions",),),
        _listing_interruptions),
    Kpi("top_market_share", "top-market revenue share", 2, "1", "<= 50%",
        "share of a seller's horizon revenue from its largest market, mean over sellers with revenue",
        (("top_market_share", "revenue"), ("revenue",)), _top_market_share, lambda v: v <= 0.5,
        (_TOP_SHARE_ENGINE, "share of a seller's horizon revenue from its largest market, mean over sellers "
                            "with revenue")),
    Kpi("top_market_share_le_50", "sellers with top-market share <= 50%", 2, "1", "",
        "share of sellers with revenue whose top market brings <= 50% of their revenue",
        (("top_market_share", "revenue"), ("revenue",)), _top_market_share_le_half,
        alternatives=("share of sellers with revenue whose top_market_share (revenue-weighted mean over periods) "
                      "is <= 50%", "share of sellers with revenue whose top market brings <= 50% of their "
                      "horizon revenue")),
    Kpi("delivery_days", "delivery time", 2, "days", "",
        "delivery days, weighted by units sold", (("delivery_days",),), _delivery_days),
    Kpi("repeat_purchase_rate", "repeat purchase rate", 3, "1", "",
        "repeat purchase rate, weighted by units sold", (("repeat_purchase_rate",),), _repeat_purchase_rate),
    Kpi("ltv_cac", "LTV/CAC", 3, "ratio", "> 1",
        "mean LTV at the horizon end / CAC (acquisition_spend / new_customers over the horizon where "
        "present, else mean cac)", (("ltv", "cac"),), _ltv_cac,
        lambda v: v > 1),
    Kpi("organic_share", "organic share of sales", 3, "1", "",
        "units sold through organic attention / units sold", (("organic_share", "units_sold"),), _organic_share),
)

def _mean_interval(values: np.ndarray, level: float) -> tuple[float, float, float, int]:
    values = values[np.isfinite(values)]
    n = values.size
    if n == 0:
        return np.nan, np.nan, np.nan, 0
    mean = float(values.mean())
    if n < 2:
        return mean, np.nan, np.nan, n
    half = float(_st.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half, n


def kpi_table(result: xr.Dataset, by: str = "strategy", level: float = 0.95) -> pd.DataFrame:
    """Table 4 KPIs per group (and scenario), long format.

    Parameters
    ----------
    result : result Dataset or sweep (one block of rows per ``scenario``)
    by : seller coordinate to group by
    level : confidence level of the t interval over replications

    Returns
    -------
    DataFrame, one row per ([scenario,] group, KPI), columns: ``[scenario,] <by>,
    stage, kpi, label, value, ci_low, ci_high, units, target, meets_target, status,
    source, definition, n_replications``. ``value`` is the mean over replications of
    the per-replication KPI; ``status`` is ``"ok"``, ``"not modelled: needs variable
    X"`` (value NaN) or ``"undefined"`` (inputs present, no finite value, e.g. no sales);
    ``source`` names the variables used.
    """
    check_result(result)
    labels = group_labels(result, by)
    scenarios = list(result["scenario"].values) if "scenario" in result.dims else [None]
    rows = []
    for kpi in KPIS:
        used = kpi.available(result)
        for label in labels:
            mask = np.asarray(result.coords[by].values == label)
            per_replication = None if used is None else kpi.compute(result, mask)
            for scenario in scenarios:
                row = {"scenario": scenario, by: label, "stage": kpi.stage, "kpi": kpi.name, "label": kpi.label,
                       "units": kpi.units, "target": kpi.target, "definition": kpi.describe(used),
                       "source": ", ".join(used) if used else ""}
                if used is None or per_replication is None:
                    status = kpi.missing() if used is None else "not modelled: needs a time dim in " + ", ".join(used)
                    row.update(value=np.nan, ci_low=np.nan, ci_high=np.nan, n_replications=0,
                               meets_target=None, status=status)
                else:
                    values = per_replication if scenario is None else per_replication.sel(scenario=scenario)
                    mean, low, high, n = _mean_interval(np.asarray(values.values, float).ravel(), level)
                    row.update(value=mean, ci_low=low, ci_high=high, n_replications=n,
                               meets_target=(bool(kpi.meets(mean)) if kpi.meets and np.isfinite(mean) else None),
                               status="ok" if np.isfinite(mean) else "undefined")
                rows.append(row)
    table = pd.DataFrame(rows)
    if scenarios == [None]:
        table = table.drop(columns="scenario")
    order = ["scenario", by, "stage", "kpi", "label", "value", "ci_low", "ci_high", "units", "target",
             "meets_target", "status", "source", "definition", "n_replications"]
    table = table[[c for c in order if c in table.columns]]
    sort = [c for c in ("scenario", by) if c in table.columns]
    table[by] = pd.Categorical(table[by], categories=labels, ordered=True)
    table = table.sort_values(sort, kind="stable").reset_index(drop=True)
    table[by] = table[by].astype(str)
    table.attrs = {"level": level, "method": "mean over replications of the per-replication KPI; t interval"}
    return table
