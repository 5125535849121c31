"""Paired differences between scenarios or strategies under common random numbers.

Two results run with the same seed and replications saw the same shopper arrivals and
lead-time draws in replication ``r`` (DESIGN.md sec. 4), so the per-replication
difference ``D_r = X_r - Y_r`` cancels the shared noise. The variance reduction is
reported as ``var(D) / (var(X) + var(Y))``: the ratio of the paired to the unpaired
variance of a difference of two means over the same number of replications (1 = no
gain; 0.1 = the paired comparison needs a tenth of the replications for the same
precision).
"""

from __future__ import annotations

from typing import cast

import numpy as np
import xarray as xr
from scipy import stats as _st

from ._common import ResultError, check_result, replication_values

__all__ = ["paired_difference", "paired_statistics", "check_paired"]


def check_paired(a: xr.Dataset, b: xr.Dataset, require_same_seed: bool = True) -> None:
    """Refuse two results that cannot be compared replication by replication.

    They need the same replications, sellers (and their strategies), markets and time
    axis, and -- for common random numbers -- the same seed. Raises :class:`ResultError`
    saying what differs.
    """
    check_result(a, "the first result")
    check_result(b, "the second result")
    problems = []
    for dim in ("replication", "seller", "market", "time"):
        if a.sizes[dim] != b.sizes[dim]:
            problems.append(f"{dim}: {a.sizes[dim]} vs {b.sizes[dim]}")
        elif not np.array_equal(a[dim].values, b[dim].values):
            problems.append(f"{dim} coordinates differ")
    if not problems and not np.array_equal(a["strategy"].values, b["strategy"].values):
        problems.append("sellers follow different strategies")
    if require_same_seed:
        seed_a, seed_b = a.attrs.get("seed"), b.attrs.get("seed")
        if seed_a is None or seed_b is None or int(seed_a) != int(seed_b):
            problems.append(f"seeds differ ({seed_a} vs {seed_b}): replication r of the two did not see the "
                            "same shocks (no common random numbers)")
    if problems:
        raise ResultError("results cannot be paired: " + "; ".join(problems))


def paired_difference(a: xr.Dataset, b: xr.Dataset | None, variable: str | xr.DataArray,
                      by: str | None = "strategy", contrast: tuple | None = None, time: str | None = "auto",
                      market: str | None = "auto", level: float = 0.95,
                      require_same_seed: bool = True) -> xr.Dataset:
    """Mean paired difference ``a - b`` per group, its interval and the variance reduction.

    Parameters
    ----------
    a, b : results with the same seed and replications (scenario A vs scenario B), or
        ``b=None`` with ``contrast=(g1, g2)``: group ``g1`` minus group ``g2`` of ``a``
        (e.g. two strategies in one world, which saw the same shocks in each replication)
    variable, by, time, market : as :func:`cbecsim.analysis.replication_values`: the
        group's mean per replication is the paired unit
    level : confidence level of the t intervals: the paired one with ``R - 1`` degrees of
        freedom, the unpaired (Welch) one with the Welch-Satterthwaite degrees of freedom
        ``(vx/R + vy/R)^2 / ((vx/R)^2/(R-1) + (vy/R)^2/(R-1))``
    require_same_seed : refuse results run with different seeds (default True)

    Returns
    -------
    Dataset over ``([scenario,] <by>, [time])`` (one entry ``"g1 - g2"`` for a
    contrast): ``mean_a``, ``mean_b``, ``difference`` (mean of D), ``difference_low``,
    ``difference_high`` (paired t interval) and ``unpaired_low``, ``unpaired_high`` (the
    Welch interval that ignores the pairing) in the outcome's units;
    ``var_paired`` = var(D) and ``var_unpaired`` = var(X) + var(Y) in units squared;
    ``variance_ratio`` = var_paired / var_unpaired [1]; ``n_replications``.
    """
    if b is None:
        if contrast is None or len(contrast) != 2:
            raise ValueError("with one result, pass contrast=(group_1, group_2)")
        check_result(a)
        values = replication_values(a, variable, by=by, time=time, market=market)
        dim = by or "group"
        missing = [g for g in contrast if g not in values[dim].values]
        if missing:
            raise ResultError(f"no {dim} {', '.join(map(str, missing))} in the result "
                              f"(have {', '.join(map(str, values[dim].values))})")
        x = values.sel({dim: [contrast[0]]}).assign_coords({dim: [f"{contrast[0]} - {contrast[1]}"]})
        y = values.sel({dim: [contrast[1]]}).assign_coords({dim: [f"{contrast[0]} - {contrast[1]}"]})
        comparison = f"{contrast[0]} - {contrast[1]}"
    else:
        check_paired(a, b, require_same_seed)
        x = replication_values(a, variable, by=by, time=time, market=market)
        y = replication_values(b, variable, by=by, time=time, market=market)
        comparison = "a - b"
    out = paired_statistics(x, y, level)
    out.attrs["variable"] = str(x.name)
    out.attrs["comparison"] = comparison
    return out


def paired_statistics(x: xr.DataArray, y: xr.DataArray, level: float = 0.95) -> xr.Dataset:
    """Paired statistics of per-replication values ``x`` and ``y`` (``x - y`` per replication).

    The statistics behind :func:`paired_difference`, for values formed elsewhere (e.g. a
    pooled ratio per replication and group, or two per-replication effects whose
    difference is an interaction). A replication where either value is NaN is left out
    of both.

    Parameters
    ----------
    x, y : DataArrays with a ``replication`` dim and the same other dims (aligned by
        coordinate); ``x.attrs["units"]`` gives the units (default ``"1"``)
    level : confidence level of the t intervals (``R - 1`` degrees of freedom)

    Returns
    -------
    Dataset over the other dims: ``mean_a``, ``mean_b``, ``difference``,
    ``difference_low``, ``difference_high``, ``unpaired_low``, ``unpaired_high``,
    ``var_paired``, ``var_unpaired``, ``variance_ratio``, ``n_replications``, as
    documented in :func:`paired_difference`.
    """
    units = x.attrs.get("units", "1")
    difference = x - y
    # A NumPy ufunc on a DataArray returns a DataArray (xarray's __array_ufunc__).
    valid = cast(xr.DataArray, np.isfinite(difference))
    n = valid.sum("replication")
    x_valid, y_valid = x.where(valid), y.where(valid)
    mean_d = difference.mean("replication", skipna=True)
    var_d = difference.var("replication", ddof=1, skipna=True)
    var_x = x_valid.var("replication", ddof=1, skipna=True)
    var_y = y_valid.var("replication", ddof=1, skipna=True)
    t = xr.apply_ufunc(lambda k: _st.t.ppf(0.5 + level / 2, np.maximum(k - 1, 1)), n)
    half_paired = t * np.sqrt(var_d / n)
    # Welch: each mean over the same n replications, variances unpooled; the
    # Welch-Satterthwaite degrees of freedom (Welch 1947), as scipy.stats.ttest_ind(equal_var=False).
    se_x, se_y = var_x / n, var_y / n
    welch_df = (se_x + se_y) ** 2 / (se_x**2 / np.maximum(n - 1, 1) + se_y**2 / np.maximum(n - 1, 1))
    t_welch = xr.apply_ufunc(lambda df: _st.t.ppf(0.5 + level / 2, df), welch_df.where(np.isfinite(welch_df)))
    half_unpaired = t_welch * np.sqrt(se_x + se_y)
    var_unpaired = var_x + var_y
    square = f"({units})^2" if units != "1" else "1"
    out = xr.Dataset({
        "mean_a": x_valid.mean("replication").assign_attrs(units=units),
        "mean_b": y_valid.mean("replication").assign_attrs(units=units),
        "difference": mean_d.assign_attrs(units=units, description="mean over replications of a - b"),
        "difference_low": (mean_d - half_paired).assign_attrs(units=units),
        "difference_high": (mean_d + half_paired).assign_attrs(units=units),
        "unpaired_low": (mean_d - half_unpaired).assign_attrs(
            units=units, description="Welch interval of mean(a) - mean(b) ignoring the pairing"),
        "unpaired_high": (mean_d + half_unpaired).assign_attrs(units=units),
        "welch_df": welch_df.assign_attrs(units="1", description="Welch-Satterthwaite degrees of freedom"),
        "var_paired": var_d.assign_attrs(units=square, description="variance of the paired differences"),
        "var_unpaired": var_unpaired.assign_attrs(units=square, description="var(a) + var(b)"),
        "variance_ratio": (var_d / var_unpaired).where(var_unpaired > 0).assign_attrs(
            units="1", description="var_paired / var_unpaired (< 1: pairing reduces the variance)"),
        "n_replications": n.assign_attrs(units="replications"),
    })
    if "scenario" in out.dims:
        out = out.transpose("scenario", ...)
    out.attrs = {"units": units, "level": float(level),
                 "method": "paired t over replications (common random numbers)"}
    return out
