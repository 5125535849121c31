"""Plotting helpers: fan charts, survival curves, distribution comparisons, sensitivity bars.

Each function builds a :class:`matplotlib.figure.Figure` on the Agg canvas (no pyplot,
no global backend switch, so it works the same in scripts, tests, servers and
notebooks) and returns it. Save with ``fig.savefig(path)``; in a notebook, run
``%matplotlib inline`` once (it registers the PNG display of Figures) and leave the
Figure as a cell's last value or pass it to ``IPython.display.display``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._common import ResultError, group_labels, group_members, outcome, replication_values
from .stats import quantiles_sorted

__all__ = ["fan_chart", "survival_plot", "distribution_plot", "sensitivity_plot", "new_figure", "COLOURS"]

#: Colour-blind-safe palette (Okabe & Ito 2008), one colour per group in order.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


def new_figure(width: float = 7.0, height: float = 4.0) -> Figure:
    """An empty Figure on the Agg canvas (inches)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _label(data: xr.DataArray | xr.Dataset, fallback: str) -> str:
    units = data.attrs.get("units")
    name = data.attrs.get("variable", getattr(data, "name", None)) or fallback
    return f"{name} [{units}]" if units else str(name)


def fan_chart(result: xr.Dataset, variable: str | xr.DataArray, by: str | None = "strategy",
              quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95), market: str | None = "auto",
              level: str = "seller", title: str | None = None, figure: Figure | None = None) -> Figure:
    """Quantile bands of a variable over time, one colour per group.

    Parameters
    ----------
    result : result Dataset (no ``scenario`` dim: select one scenario of a sweep first)
    variable : per-period variable (e.g. ``"cash"``, ``"cm2"``, ``"visibility"``,
        ``"survival"``) or DataArray with ``replication`` and ``time``
    by : seller coordinate to group by, or None
    quantiles : symmetric probabilities; the outer pairs are shaded bands, the middle
        one (the median) a line
    market : reduction over markets (see :func:`cbecsim.analysis.outcome`)
    level : ``"seller"`` (bands over seller-replications) or ``"replication"`` (bands
        over replications of the group mean)

    Returns
    -------
    Figure with one axes: x the period start date, y the variable in its units.
    """
    if "scenario" in result.dims:
        raise ResultError("fan_chart draws one result: select a scenario of the sweep first (sweep.isel(scenario=i))")
    probabilities = np.sort(np.asarray(quantiles, float))
    if level == "replication":
        data = replication_values(result, variable, by=by, time=None, market=market)
        group_dim = by or "group"
    else:
        data = outcome(result, variable, time=None, market=market)
        group_dim = None
    figure = figure or new_figure()
    axes = figure.add_subplot()
    labels = group_labels(result, by)
    times = pd.to_datetime(result["time"].values)
    for g, label in enumerate(labels):
        colour = COLOURS[g % len(COLOURS)]
        if group_dim is not None:
            chosen = data.sel({group_dim: label}).transpose("time", "replication")
            array = np.asarray(chosen.values, float)
        else:
            chosen = data.isel(seller=group_members(result, by, label)).transpose("time", "replication", "seller")
            array = np.asarray(chosen.values, float).reshape(chosen.sizes["time"], -1)
        bands = quantiles_sorted(array, probabilities)  # (T, k)
        k = probabilities.size
        for i in range(k // 2):
            shade = 0.12 + 0.18 * i / max(1, k // 2 - 1) if k // 2 > 1 else 0.25
            axes.fill_between(times, bands[:, i], bands[:, k - 1 - i], color=colour, alpha=shade, linewidth=0,
                              label=f"{label} {probabilities[i]:.0%}-{probabilities[k - 1 - i]:.0%}")
        middle = bands[:, k // 2] if k % 2 else np.nanmean(bands, axis=1)
        axes.plot(times, middle, color=colour, linewidth=1.8,
                  label=f"{label} {'median' if k % 2 and probabilities[k // 2] == 0.5 else 'middle'}")
    axes.set_ylabel(_label(data, str(variable)))
    axes.set_xlabel("period start")
    axes.set_title(title or f"{data.name}: quantile bands by {by or 'all sellers'}")
    axes.legend(fontsize="x-small", ncols=max(1, len(labels)), loc="best")
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    return figure


def survival_plot(curves: xr.Dataset, title: str | None = None, figure: Figure | None = None) -> Figure:
    """Kaplan-Meier curves with their interval bands (from :func:`cbecsim.analysis.kaplan_meier`).

    ``curves`` without a ``scenario`` dim; one step line and band per group. Returns
    the Figure (x: date, y: share still trading).
    """
    if "scenario" in curves.dims:
        raise ResultError("survival_plot draws one set of curves: select a scenario first (curves.isel(scenario=i))")
    figure = figure or new_figure()
    axes = figure.add_subplot()
    group_dim = next(d for d in curves["survival"].dims if d != "day")
    dates = pd.to_datetime(curves["date"].values)
    for g, label in enumerate(curves[group_dim].values):
        colour = COLOURS[g % len(COLOURS)]
        chosen = curves.sel({group_dim: label})
        axes.fill_between(dates, chosen["survival_low"].values, chosen["survival_high"].values, step="post",
                          color=colour, alpha=0.2, linewidth=0)
        axes.step(dates, chosen["survival"].values, where="post", color=colour, linewidth=1.8, label=str(label))
    axes.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    axes.set_ylim(-0.02, 1.02)
    axes.set_ylabel("share still trading [1]")
    axes.set_xlabel("date")
    axes.set_title(title or f"Kaplan-Meier survival ({curves.attrs.get('level', 0.95):.0%} "
                            f"{curves.attrs.get('ci_method', '')} band)")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    return figure


def distribution_plot(results: xr.Dataset | Mapping[str, xr.Dataset], variable: str | xr.DataArray,
                      by: str | None = "strategy", time: str | None = "auto", market: str | None = "auto",
                      title: str | None = None, figure: Figure | None = None) -> Figure:
    """Box plots of a horizon outcome per group, side by side for one or more results.

    Parameters
    ----------
    results : one result, or ``{name: result}`` to compare scenarios (same groups)
    variable, by, time, market : the outcome per seller-replication, as
        :func:`cbecsim.analysis.outcome` (reduced over time and markets)

    Returns
    -------
    Figure: one box (5-95% whiskers, quartile box, median line) per group and result.
    """
    if isinstance(results, xr.Dataset):
        results = {"": results}
    figure = figure or new_figure()
    axes = figure.add_subplot()
    names = list(results)
    first = results[names[0]]
    labels = group_labels(first, by)
    width = 0.8 / len(names)
    units = ""
    for i, name in enumerate(names):
        data = outcome(results[name], variable, time=time, market=market)
        units = data.attrs.get("units", "")
        columns = []
        for label in labels:
            values = np.asarray(data.isel(seller=group_members(results[name], by, label)).values, float).ravel()
            columns.append(values[np.isfinite(values)])
        positions = np.arange(len(labels)) + (i - (len(names) - 1) / 2) * width
        parts = axes.boxplot(columns, positions=positions, widths=width * 0.9, whis=(5, 95), showfliers=False,
                             patch_artist=True, manage_ticks=False)
        for box in parts["boxes"]:
            box.set_facecolor(COLOURS[i % len(COLOURS)])
            box.set_alpha(0.5)
        if name:
            axes.plot([], [], color=COLOURS[i % len(COLOURS)], linewidth=6, alpha=0.5, label=str(name))
    axes.set_xticks(np.arange(len(labels)), [str(label) for label in labels])
    axes.set_ylabel(f"{data.name} [{units}]" if units else str(data.name))
    axes.set_title(title or f"{data.name} per seller-replication (box: quartiles, whiskers: 5-95%)")
    if len(names) > 1 or names[0]:
        axes.legend(fontsize="small")
    axes.grid(alpha=0.3, axis="y")
    return figure


def sensitivity_plot(indices: xr.Dataset, group: object | None = None, title: str | None = None,
                     figure: Figure | None = None) -> Figure:
    """Bars of first- and total-order Sobol indices per factor with their intervals.

    ``indices`` from :func:`cbecsim.analysis.sobol_indices`; ``group`` picks one group
    (default: the first). Error bars are the replication-bootstrap intervals where
    present, else SALib's design half-widths; white diamonds mark the noise-corrected
    indices (``S1_denoised``, ``ST_denoised``).
    """
    group_dim = next(d for d in indices["S1"].dims if d != "factor")
    chosen = indices.sel({group_dim: group if group is not None else indices[group_dim].values[0]})
    figure = figure or new_figure()
    axes = figure.add_subplot()
    factors = [str(f) for f in chosen["factor"].values]
    x = np.arange(len(factors))
    for offset, (name, colour) in zip((-0.2, 0.2), (("S1", COLOURS[0]), ("ST", COLOURS[1])), strict=True):
        values = chosen[name].values
        low, high = chosen[f"{name}_low"].values, chosen[f"{name}_high"].values
        if np.all(np.isfinite(low)):
            errors = np.vstack([np.clip(values - low, 0, None), np.clip(high - values, 0, None)])
        else:
            errors = chosen[f"{name}_conf"].values
        axes.bar(x + offset, values, width=0.4, color=colour, yerr=errors, capsize=3,
                 label={"S1": "first order S1", "ST": "total order ST"}[name])
        if f"{name}_denoised" in chosen and np.any(np.isfinite(chosen[f"{name}_denoised"].values)):
            axes.plot(x + offset, chosen[f"{name}_denoised"].values, linestyle="none", marker="D", markersize=5,
                      markerfacecolor="white", markeredgecolor="black",
                      label="noise-corrected" if name == "S1" else None)
    axes.set_xticks(x, factors)
    axes.set_ylabel("Sobol index [1]")
    noise = float(chosen["noise_share"]) if "noise_share" in chosen else np.nan
    axes.set_title(title or f"Sobol indices of {indices.attrs.get('variable', '')} ({chosen[group_dim].values}); "
                            f"noise share {noise:.1%}")
    axes.axhline(0, color="black", linewidth=0.6)
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3, axis="y")
    return figure
