"""Sensitivity of sweep outcomes: Sobol indices with replicate noise, and scenario discovery.

A sweep result (the sweep store's contract) is a result Dataset with a leading
``scenario`` dim; each factor is a numeric coordinate along ``scenario`` named by the
factor; the dataset attributes name the design kind (``design``).

**Sobol indices with replicate noise** (:func:`sobol_indices`). The model output at a
design point is random: replication ``r`` of scenario ``s`` gives ``Y[s, r] = f(x_s) +
c[r] + e[s, r]``, where ``c[r]`` is noise common to all scenarios (common random
numbers: replication ``r`` sees the same shocks everywhere) and ``e`` the rest. We
analyse the replication mean ``Ybar[s]`` with :func:`SALib.analyze.sobol.analyze`
(Saltelli 2010 first-order, Jansen total-order estimators) and account for the noise
by a bootstrap over replications: each draw resamples the replication indices once and
applies them to every scenario (keeping the common random numbers), recomputes
``Ybar`` and the indices.

1. ``noise_share``: the mean over scenarios of the bootstrap variance of the *centred*
   replication mean ``Ybar[s] - mean_s Ybar`` (times ``R / (R - 1)``), divided by
   ``var_s(Ybar)``. It is the share of the analysed variance that is Monte Carlo noise
   varying from scenario to scenario; the common part ``c`` cancels in the centring,
   as it does in the indices. The factors explain at most ``1 - noise_share``, so
   first-order indices of a noisy output sum short of 1 by about that share; above a
   few percent, run more replications.
2. ``S1_denoised = S1 / (1 - noise_share)`` and ``ST_denoised = (ST - noise_share) /
   (1 - noise_share)``: the indices of ``f`` itself, removing the noise's known effect
   on the estimators (noise inflates the variance in every denominator, and the Jansen
   total-order numerator by the noise variance). Approximate: their own spread grows
   with the noise.
3. ``S1_low/S1_high``, ``ST_low/ST_high``: basic (reverse-percentile) bootstrap
   intervals ``2 * estimate - quantiles``: how much the indices move because of
   replicate noise alone. (The resampled means carry the noise twice, so the bootstrap
   distribution sits below the estimate by about the noise bias; reflecting it corrects
   for that shift, where a percentile interval would not.) ``S1_conf``/``ST_conf`` are
   SALib's own half-widths, from resampling the design rows (the finite base sample).

**Scenario discovery** (:func:`scenario_discovery`): PRIM (Friedman & Fisher 1999) with
peeling and pasting. A scenario is a *case of interest* when its replication-mean
outcome is below (or above) a threshold, e.g. survival share < 50%.

1. *Peeling*: starting from the box spanning all factor values, each step considers,
   for every factor, cutting the ``peel_alpha`` quantile of the box's scenarios off its
   upper and off its lower side, and makes the cut that leaves the highest share of cases
   (density) in the box; ties go to the box with fewer restricted factors, then to the
   first factor in order, upper side first. It stops when the next box would hold less
   than ``min_mass`` of all scenarios, or no cut leaves a case inside.
2. *Box selection* (the stated rule): on that peeling trajectory, the densest box that
   still holds at least ``min_coverage`` of all cases (ties: the one with more coverage).
3. *Pasting*: the selected box is then widened again, one side of one restricted factor
   at a time, each time by the ``paste_alpha`` quantile of the scenarios just outside
   that side (within the box's other limits), choosing the widening with the highest
   density, as long as it raises the density. Pasting undoes peels that were too
   greedy, so the final box has at least the selected box's coverage and density.

Limits are the cut points (quantiles as in the sdtoolkit / EMA Workbench, midway
between scenarios); factors whose limits were never moved are unrestricted. The
steps are those of :class:`ema_workbench.analysis.prim.Prim` with its ``ORIGINAL``
objective (the density of the new box), which the tests compare trajectory by
trajectory.

References
----------
Saltelli, A. et al. (2010). Variance based sensitivity analysis of model output.
*Computer Physics Communications* 181, 259-270. Herman, J. & Usher, W. (2017). SALib.
*JOSS* 2(9). Friedman, J. H. & Fisher, N. I. (1999). Bump hunting in high-dimensional
data. *Statistics and Computing* 9, 123-143. Bryant, B. P. & Lempert, R. J. (2010).
Thinking inside the box. *Technological Forecasting & Social Change* 77, 34-49.
Kwakkel, J. H. (2017). The Exploratory Modeling Workbench. *Environmental Modelling &
Software* 96, 239-250.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ._common import ResultError, factor_names, group_labels, replication_values

__all__ = ["sobol_indices", "scenario_discovery", "DiscoveredBox", "design_kind", "saltelli_second_order"]


def design_kind(sweep: xr.Dataset) -> str | None:
    """The sweep's design kind: its ``design`` attribute (written by the sweep store and
    by :func:`combine_runs`), or None."""
    value = sweep.attrs.get("design")
    return value if isinstance(value, str) and value else None


def saltelli_second_order(points: np.ndarray) -> bool:
    """Tell the two Saltelli layouts apart from the design matrix (n_points, n_factors).

    Blocks of ``D + 2`` rows ``[A, AB_1..AB_D, B]`` (first and total order only) or
    ``2 D + 2`` rows ``[A, AB_1..AB_D, BA_1..BA_D, B]`` (with second order). In the
    second layout row ``D + 1`` (``BA_1``) takes factor 0 from ``A``; in the first it is
    ``B``. Raises :class:`ResultError` if the points fit neither layout.
    """
    n, d = points.shape
    if d < 1:
        raise ResultError("a Sobol design needs at least one factor")

    def fits(block: int, second: bool) -> bool:
        if n % block:
            return False
        blocks = points.reshape(n // block, block, d)
        a, b = blocks[:, 0], blocks[:, -1]
        for i in range(d):
            ab = blocks[:, 1 + i]
            expect = a.copy()
            expect[:, i] = b[:, i]
            if not np.allclose(ab, expect):
                return False
            if second:
                ba = blocks[:, 1 + d + i]
                expect = b.copy()
                expect[:, i] = a[:, i]
                if not np.allclose(ba, expect):
                    return False
        return True

    if fits(2 * d + 2, True):
        return True
    if fits(d + 2, False):
        return False
    raise ResultError(f"the {n} scenarios do not form a Saltelli (Sobol) design over {d} factors in "
                      "SALib's sample order; Sobol indices need one (use a design of kind 'sobol')")


def salib_seed(seed: int) -> int:
    """The seed handed to SALib for ``seed``: SALib's ``sobol.analyze`` treats a falsy seed
    (0) as "no seed" and draws from numpy's global generator, so 0 would not be
    reproducible; ``seed + 1`` is never 0 and keeps distinct seeds distinct."""
    if not 0 <= int(seed) < 2**63 - 1:
        raise ValueError(f"seed must be in 0 .. 2**63-2, got {seed}")
    return int(seed) + 1


def _analyze(problem: dict, output: np.ndarray, second_order: bool, num_resamples: int, level: float,
             seed: int) -> dict:
    from SALib.analyze import sobol

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", RuntimeWarning)
        return sobol.analyze(problem, output, calc_second_order=second_order, num_resamples=num_resamples,
                             conf_level=level, print_to_console=False, seed=salib_seed(seed))


def sobol_indices(sweep: xr.Dataset, variable: str | xr.DataArray, by: str | None = "strategy",
                  factors: Sequence[str] | None = None, time: str | None = "auto", market: str | None = "auto",
                  level: float = 0.95, n_boot: int = 100, num_resamples: int = 100, seed: int = 0) -> xr.Dataset:
    """First- and total-order Sobol indices of a sweep outcome, with replicate noise.

    Parameters
    ----------
    sweep : sweep Dataset ``(scenario, replication, time, seller, market)`` whose
        scenarios are a Saltelli design in SALib's sample order (layout with or without
        second order is detected from the points)
    variable, by, time, market : the outcome, as
        :func:`cbecsim.analysis.replication_values` (the group's mean per replication)
    factors : factor coordinates to analyse (default: the factors of the store's
        ``design_unit`` sample, else every numeric coordinate along ``scenario``)
    level : confidence level of the intervals
    n_boot : bootstrap draws over replications (0 to skip)
    num_resamples : SALib's design bootstrap resamples (``S1_conf``, ``ST_conf``)
    seed : seed of both bootstraps (any ``seed >= 0``, 0 included, gives reproducible
        intervals; SALib receives ``seed + 1``, see :func:`salib_seed`)

    Returns
    -------
    Dataset with dims ``(<by>, factor)``: ``S1``, ``ST``, ``S1_conf``, ``ST_conf``,
    ``S1_low``, ``S1_high``, ``ST_low``, ``ST_high`` [1]; over ``<by>``:
    ``noise_share`` [1], ``output_variance`` [units^2], ``noise_variance`` [units^2].
    See the module docstring for the method.
    """
    if "scenario" not in sweep.dims:
        raise ResultError("Sobol indices need a sweep result (a 'scenario' dim)")
    kind = design_kind(sweep)
    if kind is not None and not any(k in kind.lower() for k in ("sobol", "saltelli")):
        raise ResultError(f"Sobol indices need a Sobol (Saltelli) design; this sweep's design is {kind!r}")
    if factors is None and "design_unit" in sweep.coords:
        # A sweep store keeps the unit sample every point was mapped from, one column per
        # factor, including factors whose values are not numbers (levels of strings or
        # booleans), which the coordinates alone would leave out of the design.
        names = [str(name) for name in sweep.coords["factor"].values]
        points = np.asarray(sweep.coords["design_unit"].transpose("scenario", "factor").values, float)
    else:
        names = list(factors) if factors is not None else factor_names(sweep)
        if not names:
            raise ResultError("the sweep has no factor coordinates along 'scenario'")
        points = np.column_stack([np.asarray(sweep.coords[f].values, float) for f in names])
    second_order = saltelli_second_order(points)
    stated = sweep.attrs.get("sobol_second_order")
    if stated is not None and bool(int(stated)) != second_order:
        raise ResultError(f"the sweep says sobol_second_order={stated}, but its points are laid out "
                          f"{'with' if second_order else 'without'} second order")
    problem = {"num_vars": len(names), "names": names,
               "bounds": [[float(points[:, j].min()), float(points[:, j].max())] for j in range(len(names))]}
    values = replication_values(sweep, variable, by=by, time=time, market=market)
    group_dim = by or "group"
    values = values.transpose("scenario", "replication", group_dim)
    units = values.attrs.get("units", "1")
    array = np.asarray(values.values, float)  # (S, R, G)
    n_scenarios, n_rep, n_groups = array.shape
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, n_rep, n_rep) for _ in range(n_boot)]
    names_out = ("S1", "ST", "S1_conf", "ST_conf", "S1_low", "S1_high", "ST_low", "ST_high",
                 "S1_denoised", "ST_denoised")
    out = {name: np.full((n_groups, len(names)), np.nan) for name in names_out}
    noise = np.full(n_groups, np.nan)
    output_var = np.full(n_groups, np.nan)
    alpha = 1 - level
    for g in range(n_groups):
        samples = array[:, :, g]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(samples, axis=1)
        if not np.all(np.isfinite(mean)):
            continue
        found = _analyze(problem, mean, second_order, num_resamples, level, seed)
        for key in ("S1", "ST", "S1_conf", "ST_conf"):
            out[key][g] = found[key]
        output_var[g] = np.var(mean, ddof=1)
        boot_s1, boot_st, boot_centred = [], [], []
        for draw in draws:
            resampled = np.nanmean(samples[:, draw], axis=1)
            if not np.all(np.isfinite(resampled)):
                continue
            boot_centred.append(resampled - resampled.mean())
            again = _analyze(problem, resampled, second_order, 1, level, seed)
            boot_s1.append(again["S1"])
            boot_st.append(again["ST"])
        if len(boot_centred) >= 2:
            # Noise of the replication means that varies across scenarios: the bootstrap
            # variance of each centred mean (a part common to all scenarios, as common random
            # numbers give, cancels), scaled by R / (R - 1) for the plug-in variance.
            noise_var = np.mean(np.var(np.array(boot_centred), axis=0, ddof=1)) * n_rep / max(n_rep - 1, 1)
            # Basic (reverse percentile) intervals: 2 * estimate - bootstrap quantiles. The
            # bootstrap means carry the noise a second time, so their indices are shifted by the
            # noise bias; reflecting the quantiles about the estimate corrects for that shift.
            for key, boot in (("S1", boot_s1), ("ST", boot_st)):
                q_low, q_high = np.quantile(boot, [alpha / 2, 1 - alpha / 2], axis=0)
                out[f"{key}_low"][g] = 2 * out[key][g] - q_high
                out[f"{key}_high"][g] = 2 * out[key][g] - q_low
        else:
            # No bootstrap: treat the noise as independent across scenarios.
            noise_var = np.mean(np.nanvar(samples, axis=1, ddof=1) / np.sum(np.isfinite(samples), axis=1))
        share = noise_var / output_var[g] if output_var[g] > 0 else np.nan
        noise[g] = share
        if np.isfinite(share) and share < 1:
            out["S1_denoised"][g] = out["S1"][g] / (1 - share)
            out["ST_denoised"][g] = (out["ST"][g] - share) / (1 - share)
    labels = list(values[group_dim].values)
    data: dict[str, tuple[tuple[str, ...], np.ndarray, dict[str, str]]] = {
        name: ((group_dim, "factor"), out[name], {"units": "1"}) for name in names_out}
    data["S1_denoised"][2]["description"] = "S1 / (1 - noise_share): first order of the noise-free output"
    data["ST_denoised"][2]["description"] = ("(ST - noise_share) / (1 - noise_share): total order of the "
                                             "noise-free output")
    noise_variance = noise * output_var
    data["noise_share"] = ((group_dim,), noise, {"units": "1", "description":
                           "share of var(replication mean) that is Monte Carlo noise"})
    data["output_variance"] = ((group_dim,), output_var, {"units": f"({units})^2"})
    data["noise_variance"] = ((group_dim,), noise_variance, {"units": f"({units})^2"})
    return xr.Dataset(data, coords={group_dim: labels, "factor": names}, attrs={
        "variable": str(values.name), "units": units, "level": float(level), "n_boot": int(n_boot),
        "num_resamples": int(num_resamples), "seed": int(seed), "second_order_layout": int(second_order),
        "n_scenarios": n_scenarios, "n_replications": n_rep,
        "method": "SALib sobol.analyze of the replication mean; intervals over replications by bootstrap"})


@dataclass
class DiscoveredBox:
    """A PRIM box: factor limits where the cases of interest concentrate.

    ``limits``: DataFrame indexed by factor with ``low``, ``high`` (the cut points),
    ``restricted``, and ``low_observed``, ``high_observed`` (the extreme factor values of
    the scenarios inside the box, e.g. the grid levels it keeps);
    ``coverage``: share of all cases inside the box; ``density``: share of the box's
    scenarios that are cases; ``mass``: share of all scenarios inside the box;
    ``trajectory``: every box tried, one row per step, ``phase`` "peel" or "paste"
    (the pasting steps start from ``selected_step``); ``rule``: the box in words.
    """

    limits: pd.DataFrame
    coverage: float
    density: float
    mass: float
    n_cases: int
    n_scenarios: int
    rule: str
    trajectory: pd.DataFrame = field(repr=False)
    inside: np.ndarray = field(repr=False)
    selected_step: int = 0


def edge_quantile(values: np.ndarray, quantile: float) -> float:
    """The quantile used for PRIM's cut points (sdtoolkit's, as in EMA Workbench).

    Linear position ``(n - 1) q``; the value is the midpoint of the two order statistics
    around it, moved outwards past ties (for ``q > 0.5`` the lower one steps down, else
    the upper one steps up), so a cut never splits tied values.
    """
    if not 0 < quantile < 1:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    data = np.sort(np.asarray(values, float))
    position = (data.size - 1) * quantile
    lower, higher = int(np.floor(position)), int(np.ceil(position))
    if quantile > 0.5:
        while data[lower] == data[higher] and lower > 0:
            lower -= 1
    else:
        while data[lower] == data[higher] and higher < data.size - 1:
            higher += 1
    return float((data[lower] + data[higher]) / 2)


def _in_box(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.all((points >= low) & (points <= high), axis=1)


def _restricted(low, high, init_low, init_high) -> np.ndarray:
    return (low != init_low) | (high != init_high)


def _peel(points: np.ndarray, cases: np.ndarray, peel_alpha: float, min_mass: float):
    """The peeling trajectory: [(low, high, inside)] from the full box down (see module docstring)."""
    n, d = points.shape
    init_low, init_high = points.min(0), points.max(0)
    low, high = init_low.copy(), init_high.copy()
    inside = np.ones(n, bool)
    boxes = [(low.copy(), high.copy(), inside.copy())]
    while True:
        members = np.flatnonzero(inside)
        best = None
        for j in range(d):
            x = points[members, j]
            for side in ("high", "low"):
                if side == "high":
                    bound = edge_quantile(x, 1 - peel_alpha)
                    kept = members[x <= bound]
                else:
                    bound = edge_quantile(x, peel_alpha)
                    kept = members[x >= bound]
                new_low, new_high = low.copy(), high.copy()
                (new_high if side == "high" else new_low)[j] = bound
                density = cases[kept].mean() if kept.size else -1.0
                key = (density, d - int(_restricted(new_low, new_high, init_low, init_high).sum()))
                if best is None or key > best[0]:  # strict: the first of equal candidates wins
                    best = (key, new_low, new_high, kept)
        if best is None:
            break
        (density, _), new_low, new_high, kept = best
        if not (kept.size / n >= min_mass and kept.size < members.size and density > 0):
            break
        low, high = new_low, new_high
        inside = np.zeros(n, bool)
        inside[kept] = True
        boxes.append((low.copy(), high.copy(), inside.copy()))
    return boxes


def _paste(points: np.ndarray, cases: np.ndarray, low: np.ndarray, high: np.ndarray, paste_alpha: float,
           min_mass: float):
    """Pasting steps from the box ``(low, high)``: [(low, high, inside)] (see module docstring)."""
    n, d = points.shape
    init_low, init_high = points.min(0), points.max(0)
    low, high = low.copy(), high.copy()
    steps = []
    while True:
        restricted = np.flatnonzero(_restricted(low, high, init_low, init_high))
        inside = _in_box(points[:, restricted], low[restricted], high[restricted])
        mass_old, density_old = inside.sum(), cases[inside].mean()
        best = None
        for j in restricted:
            others = [k for k in restricted if k != j]
            within = _in_box(points[:, others], low[others], high[others])
            for side in ("low", "high"):
                new_low, new_high = low.copy(), high.copy()
                if side == "low":
                    data = points[within & (points[:, j] >= init_low[j]) & (points[:, j] <= low[j]), j]
                    new_low[j] = edge_quantile(data, 1 - paste_alpha) if data.size else init_low[j]
                else:
                    data = points[within & (points[:, j] >= high[j]) & (points[:, j] <= init_high[j]), j]
                    new_high[j] = edge_quantile(data, paste_alpha) if data.size else init_high[j]
                candidate = _in_box(points[:, restricted], new_low[restricted], new_high[restricted])
                density = cases[candidate].mean() if candidate.any() else -1.0
                key = (density, d - int(_restricted(new_low, new_high, init_low, init_high).sum()))
                if best is None or key > best[0]:
                    best = (key, new_low, new_high, candidate)
        if best is None:
            break
        (density, _), new_low, new_high, candidate = best
        mass_new = candidate.sum()
        if not (mass_new / n >= min_mass and mass_new > mass_old and density > 0 and density > density_old):
            break
        low, high = new_low, new_high
        steps.append((low.copy(), high.copy(), _in_box(points, low, high)))
    return steps


def scenario_discovery(sweep: xr.Dataset, variable: str | xr.DataArray = "survival",
                       threshold: float = 0.5, below: bool = True, by: str | None = "strategy",
                       group: object | None = None, factors: Sequence[str] | None = None,
                       peel_alpha: float = 0.05, min_mass: float = 0.05, min_coverage: float = 0.5,
                       time: str | None = "auto", market: str | None = "auto",
                       paste_alpha: float = 0.05) -> DiscoveredBox:
    """Which factor ranges lead to a bad outcome: a PRIM box over the sweep's factors.

    Parameters
    ----------
    sweep : sweep Dataset (any design: grid, Latin hypercube, Sobol)
    variable : outcome, as :func:`cbecsim.analysis.replication_values`; default
        ``"survival"`` (share of the group's sellers alive at the horizon)
    threshold, below : a scenario is a case when its replication-mean outcome is
        ``< threshold`` (``below=True``) or ``> threshold``
    by, group : the seller group to look at (e.g. ``by="strategy",
        group="traffic_first"``); ``group=None`` with ``by=None`` takes all sellers
    factors : factor coordinates (default: all numeric coordinates along ``scenario``)
    peel_alpha : share of the box's scenarios removed per peeling step
    min_mass : stop peeling when the box would hold less than this share of scenarios
    min_coverage : the box selected from the peeling trajectory is the densest one
        holding at least this share of all cases; it is then pasted
    paste_alpha : share of the scenarios just outside a side added per pasting step

    Returns
    -------
    :class:`DiscoveredBox` (limits in the factors' own units).
    """
    if "scenario" not in sweep.dims:
        raise ResultError("scenario discovery needs a sweep result (a 'scenario' dim)")
    names = list(factors) if factors is not None else factor_names(sweep)
    if not names:
        raise ResultError("the sweep has no factor coordinates along 'scenario'")
    values = replication_values(sweep, variable, by=by, time=time, market=market)
    group_dim = by or "group"
    if group is None:
        labels = group_labels(sweep, by)
        if len(labels) != 1:
            raise ValueError(f"pick one {group_dim} with group= (one of {', '.join(map(str, labels))})")
        group = labels[0]
    outcome_mean = values.sel({group_dim: group}).mean("replication", skipna=True).values
    points = np.column_stack([np.asarray(sweep.coords[f].values, float) for f in names])
    cases = (outcome_mean < threshold) if below else (outcome_mean > threshold)
    cases = cases & np.isfinite(outcome_mean)
    n_cases = int(cases.sum())
    if n_cases == 0:
        raise ResultError(f"no scenario has {values.name} {'<' if below else '>'} {threshold} for {group}: "
                          "nothing to discover")
    if not (0 < peel_alpha < 0.5 and 0 < paste_alpha < 0.5):
        raise ValueError(f"peel_alpha and paste_alpha must be in (0, 0.5), got {peel_alpha}, {paste_alpha}")
    boxes = _peel(points, cases.astype(float), peel_alpha, min_mass)

    def stats(inside: np.ndarray) -> dict:
        return {"coverage": cases[inside].sum() / n_cases, "density": cases[inside].mean(), "mass": inside.mean()}

    peel_stats = [stats(inside) for _, _, inside in boxes]
    eligible = [i for i, row in enumerate(peel_stats) if row["coverage"] >= min_coverage] or [0]
    selected = max(eligible, key=lambda i: (peel_stats[i]["density"], peel_stats[i]["coverage"]))
    pasted = _paste(points, cases.astype(float), boxes[selected][0], boxes[selected][1], paste_alpha, min_mass)
    rows = []
    for step, (low, high, inside) in enumerate(boxes + pasted):
        rows.append({"step": step, "phase": "peel" if step < len(boxes) else "paste", **stats(inside),
                     **{f"{n}_low": low[j] for j, n in enumerate(names)},
                     **{f"{n}_high": high[j] for j, n in enumerate(names)}})
    trajectory = pd.DataFrame(rows).set_index("step")
    chosen_step = len(boxes) + len(pasted) - 1 if pasted else selected
    low, high, inside = (boxes + pasted)[chosen_step]
    full_low, full_high = points.min(0), points.max(0)
    observed = points[inside]
    limits = pd.DataFrame({"low": low, "high": high,
                           "restricted": (low > full_low) | (high < full_high),
                           "low_observed": observed.min(0), "high_observed": observed.max(0)},
                          index=pd.Index(names, name="factor"))
    coverage, density, mass = (float(trajectory.loc[chosen_step, k]) for k in ("coverage", "density", "mass"))
    clauses = []
    for name, row in limits.iterrows():
        if not row["restricted"]:
            continue
        if row["low"] > full_low[names.index(name)] and row["high"] < full_high[names.index(name)]:
            clauses.append(f"{row['low']:.4g} <= {name} <= {row['high']:.4g}")
        elif row["low"] > full_low[names.index(name)]:
            clauses.append(f"{name} >= {row['low']:.4g}")
        else:
            clauses.append(f"{name} <= {row['high']:.4g}")
    condition = " and ".join(clauses) if clauses else "anywhere in the design (no restriction found)"
    rule = (f"{group}: {values.name} {'<' if below else '>'} {threshold:g} when {condition} "
            f"(coverage {coverage:.0%}, density {density:.0%}, {mass:.0%} of scenarios)")
    return DiscoveredBox(limits=limits, coverage=coverage, density=density, mass=mass, n_cases=n_cases,
                         n_scenarios=int(points.shape[0]), rule=rule, trajectory=trajectory, inside=inside,
                         selected_step=int(selected))
