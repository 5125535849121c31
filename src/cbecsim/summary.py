"""Per-strategy summary of a run: the table ``cbecsim run`` prints at the end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["exit_reason_table", "seller_outcomes", "strategy_summary"]


def seller_outcomes(result: xr.Dataset) -> xr.Dataset:
    """Horizon outcomes per (replication, seller).

    Returns a Dataset with ``revenue_total`` and ``cm2_total`` [USD] (summed over the
    horizon and all markets), ``final_cash`` [USD], ``cm2_margin`` (sum of CM2 / sum of
    revenue over the horizon and all markets; NaN without revenue), ``survived``
    (bool) and ``mean_visibility`` (mean share of attention over the periods and markets
    the seller's population serves).
    """
    revenue = result["revenue"].sum(["time", "market"])
    cm2 = result["cm2"].sum(["time", "market"])
    served = result["served"]
    visibility = result["visibility"].where(served).mean(["time", "market"])
    return xr.Dataset(
        {
            "revenue_total": revenue,
            "cm2_total": cm2,
            "final_cash": result["cash"].isel(time=-1),
            "cm2_margin": (cm2 / revenue).where(revenue > 0),
            "survived": result["alive"].isel(time=-1),
            "mean_visibility": visibility,
        }
    )


def _band(values: np.ndarray) -> tuple[float, float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (np.nan, np.nan, np.nan)
    q05, q50, q95 = np.quantile(values, [0.05, 0.5, 0.95])
    return float(q50), float(q05), float(q95)


def strategy_summary(result: xr.Dataset) -> pd.DataFrame:
    """Median and 5-95% band per strategy of final cash, CM2 margin, survival, visibility.

    ``cm2_margin_*`` is pooled, as everywhere in cbecsim: in each replication the sum of
    the strategy's sellers' CM2 over the sum of their revenue (horizon, all markets); the
    median and band are over replications. ``median_seller_cm2_margin`` is the median over
    sellers x replications of each seller's own margin. Cash and visibility bands are over
    sellers x replications; the survival share's band is over replications (the share of
    the strategy's sellers alive at the horizon end in each replication).
    """
    outcomes = seller_outcomes(result).load()
    rows = []
    for strategy in pd.unique(result["strategy"].values):
        chosen = outcomes.where(outcomes["strategy"] == strategy, drop=True)
        row = {"strategy": strategy, "sellers": int(chosen.sizes["seller"])}
        for name in ("final_cash", "mean_visibility"):
            median, low, high = _band(chosen[name].values.ravel())
            row[f"{name}_median"], row[f"{name}_p05"], row[f"{name}_p95"] = median, low, high
        total_revenue = chosen["revenue_total"].sum("seller")
        pooled = (chosen["cm2_total"].sum("seller") / total_revenue).where(total_revenue > 0)
        row["cm2_margin_median"], row["cm2_margin_p05"], row["cm2_margin_p95"] = _band(pooled.values)
        row["median_seller_cm2_margin"] = _band(chosen["cm2_margin"].values.ravel())[0]
        share = chosen["survived"].astype(float).mean("seller").values
        row["survival_median"], row["survival_p05"], row["survival_p95"] = _band(share)
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")


def exit_reason_table(result: xr.Dataset) -> pd.DataFrame:
    """Share of each strategy's seller-replications by how they ended the horizon.

    Rows are strategies, columns the ``exit_reason`` codes present in the run
    (``survived``, ``insolvent``, ``unprofitable``, ``strategic``); each row sums to 1.
    The counts behind it are over sellers x replications; a result without
    ``exit_reason`` (written before it existed) gives an empty table.
    """
    if "exit_reason" not in result:
        return pd.DataFrame()
    reasons = result["exit_reason"].values.astype(str)  # (replication, seller)
    strategies = np.asarray(result["strategy"].values).astype(str)  # (seller,)
    frame = pd.DataFrame({
        "strategy": np.broadcast_to(strategies, reasons.shape).ravel(),
        "exit_reason": reasons.ravel(),
    })
    table = pd.crosstab(frame["strategy"], frame["exit_reason"], normalize="index")
    order = [name for name in ("survived", "insolvent", "unprofitable", "strategic") if name in table]
    return table[order + [name for name in table if name not in order]]
