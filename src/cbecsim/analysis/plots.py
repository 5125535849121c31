"""Plotting helpers: fan charts, survival curves, distribution comparisons, sensitivity bars.

Each function builds a :class:`matplotlib.figure.Figure` on the Agg canvas (no pyplot,
no global backend switch, so it works the same in scripts, tests, servers and
notebooks) and returns it. Save with ``fig.savefig(path)``; in a notebook, run
``%matplotlib inline`` once (it registers the PNG display of Figures) and leave the
Figure as a cell's last value or pass it to ``IPython.display.display``.
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ._common import _TIME_AUTO, DERIVED_OUTCOMES, ResultError, group_labels, group_members, outcome, replication_values
from .stats import quantiles_sorted

__all__ = ["fan_chart", "survival_plot", "distribution_plot", "sensitivity_plot", "difference_fan_chart",
           "survival_pair_plot", "mark_changes", "outside_legend", "new_figure", "COLOURS"]

#: Colour-blind-safe palette (Okabe & Ito 2008), one colour per group in order.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")


def new_figure(width: float = 7.0, height: float = 4.0) -> Figure:
    """An empty Figure on the Agg canvas (inches)."""
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def mark_changes(axes, dates: Sequence | None, labels: Sequence[str] | None = None) -> None:
    """A dashed vertical line at each date (e.g. the duty-change dates) and its label.

    Each line's SVG id is ``change-date-YYYY-MM-DD-<n>`` (``gid``), so a report written as
    SVG can be checked for its markers. Dates closer than 2.5% of the x range share one
    label (``2025-04-09 / 04-10``) so that labels do not overprint. Call after plotting
    (the x range must be set).
    """
    if not dates:
        return
    from matplotlib.dates import date2num

    transform = axes.get_xaxis_transform()  # x in data, y in axes fraction
    stamps = [pd.Timestamp(d) for d in dates]
    texts = list(labels) if labels is not None else [str(stamp.date()) for stamp in stamps]
    left, right = axes.get_xlim()
    close = 0.025 * abs(right - left)
    groups: list[list[int]] = []
    for i in np.argsort([date2num(stamp) for stamp in stamps]):
        if groups and date2num(stamps[i]) - date2num(stamps[groups[-1][-1]]) < close:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    for group in groups:
        for i in group:
            line = axes.axvline(stamps[i], color="#444444", linewidth=0.9, linestyle="--", zorder=5)
            line.set_gid(f"change-date-{stamps[i].date()}-{next(_MARK_IDS)}")
        text = texts[group[0]] + "".join(
            f" / {texts[i][5:] if labels is None and texts[i][:4] == texts[group[0]][:4] else texts[i]}"
            for i in group[1:])
        axes.text(stamps[group[0]], 0.99, f" {text}", transform=transform, rotation=90, ha="right", va="top",
                  fontsize="x-small", color="#444444", zorder=6,
                  bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 0.5})
    axes.set_xlim(left, right)


#: Keeps the markers' SVG ids unique within a report (several charts mark the same date).
_MARK_IDS = itertools.count(1)


def outside_legend(figure: Figure, axes, columns: int | None = None) -> None:
    """The axes' legend below the plot, outside it, so it never covers a band or a line."""
    handles, labels = axes.get_legend_handles_labels()
    if not handles:
        return
    if axes.get_legend() is not None:
        axes.get_legend().remove()
    figure.legend(handles, labels, loc="outside lower center", fontsize="x-small",
                  ncols=columns or min(len(handles), 3), frameon=False)


def _is_flow(variable) -> bool:
    """Summed over time (a flow, in units per period): a short last period would read as a drop."""
    return isinstance(variable, str) and variable not in DERIVED_OUTCOMES and _TIME_AUTO.get(variable, "sum") == "sum"


def _complete_periods(result: xr.Dataset) -> np.ndarray:
    """(T,) True for periods as long as the typical one (a short last period is False)."""
    if "period_end" not in result.coords:
        return np.ones(result.sizes["time"], bool)
    days = (pd.to_datetime(result["period_end"].values) - pd.to_datetime(result["time"].values)).days + 1
    return np.asarray(days >= np.median(days))


def _label(data: xr.DataArray | xr.Dataset, fallback: str) -> str:
    units = data.attrs.get("units")
    name = data.attrs.get("variable", getattr(data, "name", None)) or fallback
    return f"{name} [{units}]" if units else str(name)


def fan_chart(result: xr.Dataset, variable: str | xr.DataArray, by: str | None = "strategy",
              quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95), market: str | None = "auto",
              level: str = "seller", title: str | None = None, figure: Figure | None = None,
              marks: Sequence | None = None) -> Figure:
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
    marks : dates to mark with a labelled vertical line (e.g. duty changes)

    Returns
    -------
    Figure with one axes: x the period start date, y the variable in its units; the
    legend below the axes. A flow (summed per period) leaves out a last period shorter
    than the others, which would read as a drop.
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
    figure = figure or new_figure(height=4.6)
    axes = figure.add_subplot()
    labels = group_labels(result, by)
    keep = _complete_periods(result) if _is_flow(variable) else np.ones(result.sizes["time"], bool)
    times = pd.to_datetime(result["time"].values)[keep]
    for g, label in enumerate(labels):
        colour = COLOURS[g % len(COLOURS)]
        if group_dim is not None:
            chosen = data.sel({group_dim: label}).transpose("time", "replication")
            array = np.asarray(chosen.values, float)
        else:
            chosen = data.isel(seller=group_members(result, by, label)).transpose("time", "replication", "seller")
            array = np.asarray(chosen.values, float).reshape(chosen.sizes["time"], -1)
        bands = quantiles_sorted(array[keep], probabilities)  # (T, k)
        k = probabilities.size
        for i in range(k // 2):
            shade = 0.12 + 0.18 * i / max(1, k // 2 - 1) if k // 2 > 1 else 0.25
            axes.fill_between(times, bands[:, i], bands[:, k - 1 - i], color=colour, alpha=shade, linewidth=0,
                              label=f"{label} {probabilities[i]:.0%}-{probabilities[k - 1 - i]:.0%}")
        middle = bands[:, k // 2] if k % 2 else np.nanmean(bands, axis=1)
        axes.plot(times, middle, color=colour, linewidth=1.8,
                  label=f"{label} {'median' if k % 2 and probabilities[k // 2] == 0.5 else 'middle'}")
    axes.set_ylabel(_label(data, str(variable)))
    dropped = " (the last, shorter period is not drawn)" if not keep.all() else ""
    axes.set_xlabel(f"period start{dropped}")
    axes.set_title(title or f"{data.name}: quantile bands by {by or 'all sellers'}")
    axes.grid(alpha=0.3)
    axes.margins(x=0)
    mark_changes(axes, marks)
    outside_legend(figure, axes, columns=max(1, len(labels)))
    figure.autofmt_xdate()
    return figure


def survival_plot(curves: xr.Dataset, title: str | None = None, figure: Figure | None = None,
                  marks: Sequence | None = None) -> Figure:
    """Kaplan-Meier curves with their interval bands (from :func:`cbecsim.analysis.kaplan_meier`).

    ``curves`` without a ``scenario`` dim; one step line and band per group; ``marks``
    are dates to mark with a labelled vertical line. Returns the Figure (x: date, y:
    share still trading), the legend below the axes.
    """
    if "scenario" in curves.dims:
        raise ResultError("survival_plot draws one set of curves: select a scenario first (curves.isel(scenario=i))")
    figure = figure or new_figure(height=4.4)
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
    axes.grid(alpha=0.3)
    axes.margins(x=0)
    mark_changes(axes, marks)
    outside_legend(figure, axes, columns=max(1, curves.sizes[group_dim]))
    figure.autofmt_xdate()
    return figure


def difference_fan_chart(paths: xr.Dataset, outcome: str, marks: Sequence | None = None,
                         title: str | None = None, figure: Figure | None = None) -> Figure:
    """The paired difference shocked - counterfactual over time, one colour per group.

    ``paths`` from :func:`cbecsim.analysis.effects.effect_paths`. Per group: the 5-95%
    band of the per-replication differences (light), the 95% interval of the mean
    difference (dark) and the mean (line); ``marks`` are dates to mark (the change
    dates). Flows leave out a short last period. Shares are drawn in percentage points.
    """
    chosen = paths.sel(outcome=outcome)
    units = str(chosen["units"].values)
    flow = units.endswith("per seller")
    keep = np.asarray(paths["complete"].values, bool) if flow else np.ones(paths.sizes["time"], bool)
    scale, shown = (100.0, "percentage points") if units == "1" else (1.0, units)
    figure = figure or new_figure(height=4.6)
    axes = figure.add_subplot()
    times = pd.to_datetime(paths["time"].values)[keep]
    probabilities = paths["quantile"].values
    for g, group in enumerate(paths["group"].values):
        colour = COLOURS[g % len(COLOURS)]
        row = chosen.sel(group=group)
        quantile = row["difference_quantile"].values[keep] * scale
        outer = (int(np.argmin(probabilities)), int(np.argmax(probabilities)))
        axes.fill_between(times, quantile[:, outer[0]], quantile[:, outer[1]], color=colour, alpha=0.12,
                          linewidth=0,
                          label=f"{group} {probabilities[outer[0]]:.0%}-{probabilities[outer[1]]:.0%} of replications")
        axes.fill_between(times, row["low"].values[keep] * scale, row["high"].values[keep] * scale, color=colour,
                          alpha=0.35, linewidth=0, label=f"{group} 95% CI of the mean")
        axes.plot(times, row["effect"].values[keep] * scale, color=colour, linewidth=1.8, label=f"{group} mean")
    axes.axhline(0, color="black", linewidth=0.7)
    axes.set_ylabel(f"shocked - counterfactual [{'pp' if units == '1' else shown}]")
    dropped = " (the last, shorter period is not drawn)" if not keep.all() else ""
    axes.set_xlabel(f"period start{dropped}")
    axes.set_title(title or f"effect on {outcome} per period"
                            f"{' (percentage points)' if units == '1' else ''}")
    axes.grid(alpha=0.3)
    axes.margins(x=0)
    mark_changes(axes, marks)
    outside_legend(figure, axes, columns=max(1, paths.sizes["group"]))
    figure.autofmt_xdate()
    return figure


def survival_pair_plot(survival: xr.Dataset, labels: Sequence[str] = ("shocked", "counterfactual"),
                       marks: Sequence | None = None, figure: Figure | None = None) -> Figure:
    """Kaplan-Meier curves of both worlds (top) and their difference with its band (bottom).

    ``survival`` from :func:`cbecsim.analysis.effects.survival_difference`. Solid lines:
    the first world, dashed: the second; bands: 95% (Greenwood for the curves, paired
    bootstrap over replications for the difference).
    """
    figure = figure or new_figure(height=6.6)
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    group_dim = next(d for d in survival["difference"].dims if d != "day")
    dates = pd.to_datetime(survival["date"].values)
    for g, group in enumerate(survival[group_dim].values):
        colour = COLOURS[g % len(COLOURS)]
        row = survival.sel({group_dim: group})
        for world, style, name in (("shocked", "-", labels[0]), ("counterfactual", "--", labels[1])):
            top.fill_between(dates, row[f"survival_{world}_low"].values, row[f"survival_{world}_high"].values,
                             step="post", color=colour, alpha=0.12, linewidth=0)
            top.step(dates, row[f"survival_{world}"].values, where="post", color=colour, linestyle=style,
                     linewidth=1.6, label=f"{group}, {name}")
        bottom.fill_between(dates, 100 * row["difference_low"].values, 100 * row["difference_high"].values,
                            step="post", color=colour, alpha=0.25, linewidth=0)
        bottom.step(dates, 100 * row["difference"].values, where="post", color=colour, linewidth=1.6)
    # Zoomed to the curves (a survival near 1 would be a flat line on 0..1), never above 1.
    lowest = min(float(np.nanmin(survival[f"survival_{w}_low"].values)) for w in ("shocked", "counterfactual"))
    top.set_ylim(max(0.0, lowest - 0.05 * max(1.0 - lowest, 0.02)) - 0.001, 1.0 + 0.02 * max(1.0 - lowest, 0.05))
    top.set_ylabel("share still trading [1]")
    top.set_title(f"Kaplan-Meier survival: {labels[0]} (solid) and {labels[1]} (dashed)")
    bottom.axhline(0, color="black", linewidth=0.7)
    bottom.set_ylabel("difference [pp]")
    bottom.set_xlabel("date")
    for axes in (top, bottom):
        axes.grid(alpha=0.3)
        axes.margins(x=0)
        mark_changes(axes, marks)
    outside_legend(figure, top, columns=2)
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
    axes.grid(alpha=0.3, axis="y")
    if len(names) > 1 or names[0]:
        outside_legend(figure, axes, columns=len(names))
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
    axes.grid(alpha=0.3, axis="y")
    outside_legend(figure, axes)
    return figure
