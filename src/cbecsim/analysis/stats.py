"""Means and quantiles of outcomes with Monte Carlo confidence intervals.

The replication is the independent unit. Sellers in one replication share its shopper
arrivals, auctions and shocks, so their outcomes are correlated; every interval here is
built from replication-level information: the bootstrap resamples whole replications
(all sellers of a drawn replication come along), and the analytic intervals use the
between-replication variance (a ratio / cluster estimator).

Two levels of outcome:

- ``level="seller"``: the distribution over seller-replications of the group (the
  population of sellers following a strategy): "the median seller's CM2";
- ``level="replication"``: one number per replication, the group's mean (the Monte
  Carlo distribution of a strategy-level outcome): "the survival share".

References
----------
Efron, B. & Tibshirani, R. (1993). *An Introduction to the Bootstrap*, ch. 13-14
(percentile and BCa intervals). Woodruff, R. S. (1952). Confidence intervals for
medians and other position measures. *JASA* 47, 635-646 (analytic quantile interval
through the standard error of the estimated distribution function).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Sequence

import numpy as np
import xarray as xr
from scipy import stats as _st

from ._common import ResultError, group_labels, group_members, outcome

__all__ = ["describe", "bootstrap_ci", "mean_ci", "replications_needed", "smallest_replications", "quantiles_sorted"]

#: Elements materialised at once while resampling (bounds memory, ~32 MiB of float64).
_CHUNK_ELEMENTS = 1 << 22


def quantiles_sorted(values: np.ndarray, probabilities: Sequence[float] | np.ndarray) -> np.ndarray:
    """Linear-interpolation quantiles (numpy's default, Hyndman-Fan type 7) along the last axis, NaN skipped.

    Parameters
    ----------
    values : array (..., n)
    probabilities : array (k,) in [0, 1]

    Returns
    -------
    array (..., k); NaN where a row has no finite value.
    """
    probabilities = np.asarray(probabilities, float)
    ordered = np.sort(values, axis=-1)  # NaN sort last
    valid = np.sum(~np.isnan(ordered), axis=-1)  # (...)
    position = probabilities * np.maximum(valid[..., None] - 1, 0)  # (..., k)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, np.maximum(valid[..., None] - 1, 0))
    fraction = position - low
    below = np.take_along_axis(ordered, low, axis=-1)
    above = np.take_along_axis(ordered, high, axis=-1)
    out = below + fraction * (above - below)
    return np.where(valid[..., None] > 0, out, np.nan)


# --------------------------------------------------------------------------------------
# Statistics on (outer, replication, member) arrays
# --------------------------------------------------------------------------------------


def _resample(rng: np.random.Generator, n_boot: int, n_rep: int) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap draws of replications: indices (n_boot, n_rep) and counts (n_boot, n_rep).

    ``counts[b, j]`` is how often replication ``j`` is drawn in resample ``b``.
    """
    indices = rng.integers(0, n_rep, size=(n_boot, n_rep))
    offsets = (np.arange(n_boot) * n_rep)[:, None]
    counts = np.bincount((indices + offsets).ravel(), minlength=n_boot * n_rep).reshape(n_boot, n_rep)
    return indices, counts.astype(float)


def _mean_parts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    finite = ~np.isnan(values)
    return np.where(finite, values, 0.0).sum(-1), finite.sum(-1).astype(float)  # (outer, R) each


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.full(np.broadcast(numerator, denominator).shape, np.nan),
                     where=denominator > 0)


def _bootstrap_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    sums, counts = _mean_parts(values)
    return _ratio(sums @ weights.T, counts @ weights.T)  # (outer, B)


def _jackknife_means(values: np.ndarray) -> np.ndarray:
    sums, counts = _mean_parts(values)
    return _ratio(sums.sum(-1, keepdims=True) - sums, counts.sum(-1, keepdims=True) - counts)  # (outer, R)


def _bootstrap_quantiles(values: np.ndarray, probabilities: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Pooled quantiles of resampled replications: values (O, R, n), indices (B, R') -> (O, B, k)."""
    outer, _, members = values.shape
    rows, width = indices.shape
    chunk = max(1, _CHUNK_ELEMENTS // max(1, outer * width * members))
    out = np.empty((outer, rows, probabilities.size))
    for start in range(0, rows, chunk):
        take = indices[start:start + chunk]  # (b, R')
        drawn = values[:, take, :].reshape(outer, take.shape[0], width * members)
        out[:, start:start + chunk] = quantiles_sorted(drawn, probabilities)
    return out


def _interval_from_distribution(estimate: np.ndarray, replicates: np.ndarray, jackknife: np.ndarray | None,
                                level: float, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Percentile or BCa interval from bootstrap replicates along the last axis.

    estimate (...,), replicates (..., B), jackknife (..., R) for BCa.
    """
    alpha = 1.0 - level
    if method == "percentile":
        low = np.nanquantile(replicates, alpha / 2, axis=-1)
        high = np.nanquantile(replicates, 1 - alpha / 2, axis=-1)
        return low, high
    if method != "bca":
        raise ValueError(f"bootstrap method must be 'percentile' or 'bca', got {method!r}")
    assert jackknife is not None, "the BCa interval needs the jackknife estimates"
    # Bias correction: share of replicates below the estimate (ties count half).
    with np.errstate(invalid="ignore"):
        below = np.mean(replicates < estimate[..., None], axis=-1) + 0.5 * np.mean(
            replicates == estimate[..., None], axis=-1)
    z0 = _st.norm.ppf(np.clip(below, 1e-10, 1 - 1e-10))
    # Acceleration from the leave-one-replication-out jackknife.
    centred = np.nanmean(jackknife, axis=-1, keepdims=True) - jackknife
    numerator = np.nansum(centred**3, axis=-1)
    denominator = 6.0 * np.nansum(centred**2, axis=-1) ** 1.5
    acceleration = _ratio(numerator, denominator)
    acceleration = np.where(np.isfinite(acceleration), acceleration, 0.0)
    bounds = []
    for tail in (alpha / 2, 1 - alpha / 2):
        z = _st.norm.ppf(tail)
        adjusted = _st.norm.cdf(z0 + (z0 + z) / (1 - acceleration * (z0 + z)))
        adjusted = np.where(np.isfinite(adjusted), adjusted, tail)
        flat_rep = replicates.reshape(-1, replicates.shape[-1])
        flat_q = np.clip(adjusted.reshape(-1), 0.0, 1.0)
        values = np.array([np.nanquantile(r, q) if np.isfinite(r).any() else np.nan
                           for r, q in zip(flat_rep, flat_q, strict=True)])
        bounds.append(values.reshape(adjusted.shape))
    return bounds[0], bounds[1]


def _t_quantile(level: float, replications: int | np.ndarray) -> np.ndarray:
    return _st.t.ppf(0.5 + level / 2, np.maximum(np.asarray(replications) - 1, 1))


def _analytic_mean(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ratio-estimator mean and its t interval from the between-replication variance."""
    sums, counts = _mean_parts(values)
    used = counts > 0
    replications = used.sum(-1)
    mean = _ratio(sums.sum(-1), counts.sum(-1))
    mean_count = _ratio(counts.sum(-1), replications)
    residual = np.where(used, (sums - mean[..., None] * counts) / mean_count[..., None], np.nan)
    se = np.nanstd(residual, axis=-1, ddof=1) / np.sqrt(np.maximum(replications, 1))
    half = _t_quantile(level, replications) * se
    return mean, mean - half, mean + half


def _analytic_quantiles(values: np.ndarray, probabilities: np.ndarray, estimate: np.ndarray,
                        level: float) -> tuple[np.ndarray, np.ndarray]:
    """Woodruff interval: invert the pooled distribution function at p -/+ t * SE(F(q_p)).

    SE(F) is the between-replication (cluster) standard error of the share of values
    at or below the estimated quantile.
    """
    outer, n_rep, members = values.shape
    finite = ~np.isnan(values)
    counts = finite.sum(-1).astype(float)  # (O, R)
    used = counts > 0
    replications = used.sum(-1)  # (O,)
    mean_count = _ratio(counts.sum(-1), replications)
    low = np.full(estimate.shape, np.nan)
    high = np.full(estimate.shape, np.nan)
    pooled = values.reshape(outer, n_rep * members)
    for j, p in enumerate(probabilities):
        at_or_below = (values <= estimate[:, None, None, j]).sum(-1).astype(float)  # (O, R)
        share = _ratio(at_or_below.sum(-1), counts.sum(-1))
        residual = np.where(used, (at_or_below - share[:, None] * counts) / mean_count[:, None], np.nan)
        se = np.nanstd(residual, axis=-1, ddof=1) / np.sqrt(np.maximum(replications, 1))
        half = _t_quantile(level, replications) * se
        for o in range(outer):
            bounds = np.clip([p - half[o], p + half[o]], 0.0, 1.0)
            if not np.all(np.isfinite(bounds)):
                continue
            low[o, j], high[o, j] = quantiles_sorted(pooled[o], bounds)
    return low, high


def _summarise(values: np.ndarray, probabilities: np.ndarray, level: float | None, method: str,
               bootstrap: str, n_boot: int, rng: np.random.Generator,
               want_mean: bool = True, want_quantiles: bool = True) -> dict[str, np.ndarray]:
    """values (O, R, n) -> mean_value (O,), its interval, quantile_value (O, k) and their intervals."""
    out: dict[str, np.ndarray] = {}
    sums, counts = _mean_parts(values)
    if want_mean:
        out["mean_value"] = _ratio(sums.sum(-1), counts.sum(-1))
    if want_quantiles:
        out["quantile_value"] = quantiles_sorted(values.reshape(values.shape[0], -1), probabilities)
    out["n_replications"] = (counts > 0).sum(-1)
    if level is None:
        return out
    if not 0 < level < 1:
        raise ValueError(f"ci must be a confidence level in (0, 1), got {level}")
    n_rep = values.shape[1]
    if method == "analytic":
        if want_mean:
            _, out["mean_low"], out["mean_high"] = _analytic_mean(values, level)
        if want_quantiles:
            out["quantile_low"], out["quantile_high"] = _analytic_quantiles(values, probabilities,
                                                                            out["quantile_value"], level)
        return out
    if method != "bootstrap":
        raise ValueError(f"method must be 'bootstrap' or 'analytic', got {method!r}")
    if bootstrap not in ("bca", "percentile"):
        raise ValueError(f"bootstrap must be 'bca' or 'percentile', got {bootstrap!r}")
    indices, weights = _resample(rng, n_boot, n_rep)
    if want_mean:
        boot_mean = _bootstrap_means(values, weights)
        jack_mean = _jackknife_means(values) if bootstrap == "bca" else None
        out["mean_low"], out["mean_high"] = _interval_from_distribution(out["mean_value"], boot_mean, jack_mean,
                                                                        level, bootstrap)
    if want_quantiles:
        boot_quant = _bootstrap_quantiles(values, probabilities, indices)  # (O, B, k)
        jack_quant = None
        if bootstrap == "bca":
            leave_one_out = np.array([np.delete(np.arange(n_rep), i) for i in range(n_rep)])
            jack_quant = np.moveaxis(_bootstrap_quantiles(values, probabilities, leave_one_out), 1, -1)
        out["quantile_low"], out["quantile_high"] = _interval_from_distribution(
            out["quantile_value"], np.moveaxis(boot_quant, 1, -1), jack_quant, level, bootstrap)
    return out


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def bootstrap_ci(values: np.ndarray | xr.DataArray, statistic: str | float = "mean", level: float = 0.95,
                 method: str = "bca", n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Estimate and bootstrap interval of a statistic, resampling along the first axis.

    Parameters
    ----------
    values : array (n_replications,) or (n_replications, n_members)
        One row per replication (the independent unit); members of a row (sellers) are
        resampled together.
    statistic : "mean" or a probability in [0, 1] (that quantile of the pooled values)
    level : confidence level, e.g. 0.95
    method : "percentile" or "bca" (bias-corrected and accelerated)
    n_boot : bootstrap resamples
    seed : seed of the resampling (numpy ``default_rng``), so intervals are reproducible

    Returns
    -------
    (estimate, low, high) in the units of ``values``.
    """
    array = np.asarray(values, float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] < 2:
        raise ValueError(f"values must be (n_replications >= 2[, n_members]), got shape {np.shape(values)}")
    is_mean = isinstance(statistic, str) and statistic == "mean"
    if not is_mean and not 0 <= float(statistic) <= 1:
        raise ValueError(f"statistic must be 'mean' or a probability in [0, 1], got {statistic!r}")
    probabilities = np.array([0.5 if is_mean else float(statistic)])
    parts = _summarise(array[None], probabilities, level, "bootstrap", method, n_boot, np.random.default_rng(seed),
                       want_mean=is_mean, want_quantiles=not is_mean)
    if is_mean:
        return float(parts["mean_value"][0]), float(parts["mean_low"][0]), float(parts["mean_high"][0])
    return (float(parts["quantile_value"][0, 0]), float(parts["quantile_low"][0, 0]),
            float(parts["quantile_high"][0, 0]))


def mean_ci(values: np.ndarray | xr.DataArray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and analytic Monte Carlo interval (t over replications), first axis = replication.

    ``values`` (n_replications,) or (n_replications, n_members): with members, the
    mean is pooled and its standard error comes from the between-replication spread of
    the ratio estimator (members of a replication are not independent).
    Returns (mean, low, high) in the units of ``values``.
    """
    array = np.asarray(values, float)
    if array.ndim == 1:
        array = array[:, None]
    mean, low, high = _analytic_mean(array[None], level)
    return float(mean[0]), float(low[0]), float(high[0])


def describe(result: xr.Dataset, variable: str | xr.DataArray, by: str | None = "strategy",
             time: str | None = "auto", market: str | None = "auto", level: str = "seller",
             quantiles: Sequence[float] = (0.05, 0.25, 0.5, 0.75, 0.95), ci: float | None = 0.95,
             method: str = "bootstrap", bootstrap: str = "bca", n_boot: int = 1000, seed: int = 0) -> xr.Dataset:
    """Mean and quantiles of an outcome per group (and scenario, and period) with CIs.

    Parameters
    ----------
    result : result Dataset from :func:`cbecsim.run`, or a sweep (leading ``scenario`` dim)
    variable : result variable name, derived outcome (``"survival"``, ``"cm2_margin"``,
        ``"final_cash"``, ``"top_market_share"``) or a DataArray with ``replication``
        (see :func:`cbecsim.analysis.outcome`)
    by : seller coordinate to group by (``"strategy"``, ``"population"``, ``"origin"``,
        ``"home_market"``) or None for all sellers
    time, market : reductions before the statistics (see :func:`outcome`); ``time=None``
        keeps one set of statistics per period
    level : ``"seller"`` (distribution over the group's seller-replications) or
        ``"replication"`` (first average the group's sellers within each replication)
    quantiles : probabilities in [0, 1]
    ci : confidence level of the intervals, or None for point estimates only
    method : ``"bootstrap"`` (resample replications) or ``"analytic"`` (t interval
        from the between-replication variance for the mean; Woodruff interval for
        quantiles)
    bootstrap : ``"bca"`` or ``"percentile"``
    n_boot : bootstrap resamples
    seed : seed of the bootstrap resampling (numpy ``default_rng``)

    Returns
    -------
    Dataset with dims ``([scenario,] <by>, [time,] quantile)``:
    ``mean_value``, ``mean_low``, ``mean_high`` (``([scenario,] <by>, [time])``),
    ``quantile_value``, ``quantile_low``, ``quantile_high`` (``(..., quantile)``) in the
    outcome's ``units``; ``n_replications`` (replications with a finite value). Attrs
    record the variable, units, level, ci, method, n_boot and seed.
    """
    if level not in ("seller", "replication"):
        raise ValueError(f"level must be 'seller' or 'replication', got {level!r}")
    probabilities = np.asarray(quantiles, float)
    if probabilities.ndim != 1 or np.any((probabilities < 0) | (probabilities > 1)):
        raise ValueError(f"quantiles must be probabilities in [0, 1], got {quantiles}")
    data = outcome(result, variable, time=time, market=market)
    units = data.attrs.get("units", "1")
    if "seller" not in data.dims:
        if by is not None:
            raise ResultError(f"{data.name!r} has no seller dim, so it cannot be grouped by {by!r}; pass by=None")
        data = data.expand_dims(seller=[0], axis=-1)
    labels = group_labels(result, by)
    group_dim = by or "group"
    outer_dims = [d for d in data.dims if d not in ("replication", "seller")]
    rng = np.random.default_rng(seed)
    per_group = []
    for label in labels:
        chosen = data.isel(seller=group_members(result, by, label))
        array = np.asarray(chosen.transpose(*outer_dims, "replication", "seller").values, float)
        outer_shape = array.shape[:-2]
        array = array.reshape((-1,) + array.shape[-2:])
        if level == "replication":
            with np.errstate(invalid="ignore"), _quiet_mean():
                array = np.nanmean(array, axis=-1, keepdims=True)
        parts = _summarise(array, probabilities, ci, method, bootstrap, n_boot,
                           np.random.default_rng(rng.integers(2**63)))
        per_group.append({k: v.reshape(outer_shape + v.shape[1:]) for k, v in parts.items()})
    coords: dict[Hashable, object] = {group_dim: labels, "quantile": probabilities}
    for dim in outer_dims:
        coords[dim] = data.coords[dim].values
    dims = [group_dim] + outer_dims
    variables = {}
    for name in per_group[0]:
        stacked = np.stack([g[name] for g in per_group])
        var_dims = dims + (["quantile"] if name.startswith("quantile_") else [])
        attrs = {"units": "1" if name == "n_replications" else units}
        variables[name] = (var_dims, stacked, attrs)
    described = xr.Dataset(variables, coords=coords)
    if "scenario" in described.dims:
        described = described.transpose("scenario", ...)
        for coord_name, coord in data.coords.items():
            if coord.dims == ("scenario",) and coord_name != "scenario":
                described = described.assign_coords({coord_name: coord})
    described.attrs = {
        "variable": str(data.name), "units": units, "description": data.attrs.get("description", ""),
        "level": level, "ci": "none" if ci is None else float(ci), "method": method,
        "bootstrap": bootstrap if method == "bootstrap" else "n/a", "n_boot": int(n_boot), "seed": int(seed),
    }
    return described


def _t_width(n: int, sd: float, level: float) -> float:
    return 2.0 * float(_st.t.ppf(0.5 + level / 2, n - 1)) * sd / np.sqrt(n)


def smallest_replications(sd: float, width: float, level: float = 0.95) -> int:
    """Smallest ``n >= 2`` whose t interval ``2 t_{n-1} sd / sqrt(n)`` is no wider than ``width``.

    ``w(n)`` decreases in ``n`` (``t_{n-1}`` falls, ``sqrt(n)`` grows), so the set of ``n``
    that meet the width is ``[n*, inf)``: bracket ``n*`` from the normal lower bound by
    doubling, then bisect.
    """
    if not (sd > 0 and width > 0 and 0 < level < 1):
        raise ValueError(f"need sd > 0, width > 0 and 0 < level < 1, got {sd}, {width}, {level}")
    low = max(2, int(np.floor((2 * _st.norm.ppf(0.5 + level / 2) * sd / width) ** 2)))
    if _t_width(low, sd, level) <= width:
        # The normal bound is a lower bound, but floor() may step below it: walk down.
        while low > 2 and _t_width(low - 1, sd, level) <= width:
            low -= 1
        return low
    high = max(low + 1, 2 * low)
    while _t_width(high, sd, level) > width:
        low, high = high, 2 * high
    while high - low > 1:  # invariant: w(low) > width >= w(high)
        middle = (low + high) // 2
        if _t_width(middle, sd, level) <= width:
            high = middle
        else:
            low = middle
    return high


class _quiet_mean:
    """Silence 'Mean of empty slice' for groups without finite values (they stay NaN)."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)
        return self

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def replications_needed(result_or_values: xr.Dataset | np.ndarray, width: float,
                        variable: str | xr.DataArray | None = None, by: str | None = "strategy",
                        level: float = 0.95, relative: bool = False, **reduce) -> xr.DataArray | int:
    """Replications needed for a CI of the mean no wider than ``width``.

    From a pilot run: with the between-replication standard deviation ``s`` of the
    replication-level values, the t interval's full width is ``w(n) = 2 t_{n-1} s /
    sqrt(n)``, which decreases in ``n``. The answer is the smallest ``n >= 2`` with
    ``w(n) <= width``: a lower bound comes from the normal quantile (``t_{n-1} > z``),
    then the search steps up by doubling and bisects, so it never returns an ``n`` whose
    interval is wider than asked (a fixed-point iteration on ``t`` can oscillate and stop
    one short).

    Parameters
    ----------
    result_or_values : a pilot result Dataset (with ``variable``), or an array of
        replication-level values ``(n_replications,)``
    width : target full width of the interval, in the outcome's units (or a fraction of
        the mean's absolute value with ``relative=True``)
    variable, by, **reduce : as :func:`cbecsim.analysis.replication_values` (the mean of
        the group's sellers per replication)
    level : confidence level

    Returns
    -------
    int for an array; DataArray ``([scenario,] <by>)`` of ints (units "replications")
    for a Dataset.
    """
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")

    def needed(sd: float, mean: float) -> int:
        target = width * abs(mean) if relative else width
        if not np.isfinite(sd) or not np.isfinite(target) or target <= 0:
            return -1
        if sd == 0:
            return 2
        return smallest_replications(sd, target, level)

    if not isinstance(result_or_values, xr.Dataset):
        values = np.asarray(result_or_values, float)
        values = values[np.isfinite(values)]
        return needed(float(np.std(values, ddof=1)), float(np.mean(values)))
    if variable is None:
        raise ValueError("pass the variable whose mean the interval is for")
    from ._common import replication_values

    per_replication = replication_values(result_or_values, variable, by=by, **reduce)
    sd = per_replication.std("replication", ddof=1, skipna=True)
    mean = per_replication.mean("replication", skipna=True)
    counts = xr.apply_ufunc(np.vectorize(needed), sd, mean)
    unit_text = " x |mean|" if relative else " " + per_replication.attrs.get("units", "")
    counts.attrs = {"units": "replications", "description": f"replications for a {level:.0%} CI of the mean of "
                    f"{per_replication.name} no wider than {width}{unit_text} (-1: undefined)"}
    counts.name = "replications_needed"
    return counts

