"""Calibration check: does a scenario reproduce the observed marketplace aggregates?

``cbecsim validate CONFIG --calibration`` simulates CONFIG (by default the reference
``configs/baseline.yaml``, the 2024 status quo) and compares a handful of aggregates with
the figures in ../shared/FACTS.md, each with a stated tolerance band:

=============================  ==============================================  ===============
target                         computed from the results as                    band
=============================  ==============================================  ===============
site conversion                units sold / shoppers, all markets              2.5 -- 3.0 %
cost per click [USD]           ad spend / sponsored clicks                     0.88 -- 1.30
ad click conversion            ad-attributed units / sponsored clicks          7 -- 13 %
ACoS                           ad spend / ad-attributed revenue                25 -- 35 %
traffic-first marketing        ad spend / revenue of ``traffic_first`` sellers 23 -- 33 %
brand-matrix gross margin      1 - landed cost of units sold / revenue,        38 -- 48 %
                               ``brand_matrix`` sellers
=============================  ==============================================  ===============

Each aggregate is a ratio of sums within one replication; the estimate is the mean over
replications and its 95% confidence interval is the normal interval of that mean (the
replications are independent). A target *passes* when its estimate lies in the band.
Ad-attributed units are the units bought through sponsored attention
(``units_sold * (1 - organic_share)``); landed cost is the period mean per unit times
the units sold in the period.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr

from .experiment import STATISTICS, ratio_per_replication

__all__ = ["Target", "TARGETS", "calibration_table", "check_calibration"]


@dataclasses.dataclass(frozen=True)
class Target:
    """An observed aggregate the baseline should reproduce.

    Attributes
    ----------
    name : str
        Key in the calibration table.
    label : str
        What is measured, in words.
    low, high : float
        Tolerance band; the estimate must lie within [low, high].
    observed : str
        The observed figure, as FACTS.md states it.
    source : str
        Where the figure comes from (FACTS.md section and confidence grade).
    per_replication : callable(Dataset) -> DataArray over ``replication``
    """

    name: str
    label: str
    low: float
    high: float
    observed: str
    source: str
    per_replication: Callable[[xr.Dataset], xr.DataArray]
    percent: bool = True


def _sponsored_units(result: xr.Dataset) -> xr.DataArray:
    return result["units_sold"] * (1.0 - result["organic_share"].fillna(1.0))


def _of_strategy(result: xr.Dataset, strategy: str) -> xr.Dataset:
    # An absent strategy gives an empty selection, hence a NaN target (documented).
    return result.isel(seller=np.flatnonzero(result["strategy"].values == strategy))


def _site_conversion(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(r["units_sold"], r["shoppers"])


def _cpc(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(r["ad_spend"], r["clicks"])


def _click_conversion(r: xr.Dataset) -> xr.DataArray:
    return ratio_per_replication(_sponsored_units(r), r["clicks"])


def _acos(r: xr.Dataset) -> xr.DataArray:
    sponsored_revenue = r["revenue"] * (1.0 - r["organic_share"].fillna(1.0))
    return ratio_per_replication(r["ad_spend"], sponsored_revenue)


def _traffic_first_marketing(r: xr.Dataset) -> xr.DataArray:
    return STATISTICS["ad_share"][1](_of_strategy(r, "traffic_first"))


def _brand_matrix_gross_margin(r: xr.Dataset) -> xr.DataArray:
    return STATISTICS["gross_margin"][1](_of_strategy(r, "brand_matrix"))


TARGETS: tuple[Target, ...] = (
    Target("site_conversion", "units sold / shoppers", 0.025, 0.030, "2.5-3%",
           "FACTS.md, Marketplace economics: site conversion (M)", _site_conversion),
    Target("cost_per_click", "ad spend / sponsored clicks [USD]", 0.88, 1.30,
           "median USD 0.98 (2024), ~USD 1.18 (2026)",
           "FACTS.md, Marketplace economics: Sponsored Products CPC (M)", _cpc, percent=False),
    Target("ad_click_conversion", "ad-attributed units / sponsored clicks", 0.07, 0.13, "~10%",
           "FACTS.md, Marketplace economics: ad click conversion (L-M)", _click_conversion),
    Target("acos", "ad spend / ad-attributed revenue", 0.25, 0.35, "~30%",
           "FACTS.md, Marketplace economics: ACoS (L)", _acos),
    Target("traffic_first_marketing_share", "ad spend / revenue, traffic_first sellers", 0.23, 0.33,
           "28% (PDD Q3 2025 sales & marketing / revenue)",
           "FACTS.md, seed paper's cases: PDD / Temu", _traffic_first_marketing),
    Target("brand_matrix_gross_margin", "1 - landed cost of units sold / revenue, brand_matrix sellers",
           0.38, 0.48, "43% (Anker FY2024 gross profit / revenue)",
           "FACTS.md, seed paper's cases: Anker", _brand_matrix_gross_margin),
)


def calibration_table(result: xr.Dataset, targets: tuple[Target, ...] = TARGETS) -> pd.DataFrame:
    """Compare a result with the calibration targets.

    Parameters
    ----------
    result : Dataset
        A ``cbecsim.run`` result (any resolution).

    Returns
    -------
    DataFrame indexed by target name, with columns ``label``, ``estimate`` (mean over
    replications), ``ci_low``, ``ci_high`` (95% normal interval of the mean), ``low``,
    ``high`` (the band), ``passed``, ``observed`` and ``source``. A target whose
    population is absent from the result has NaN estimates and ``passed`` False.
    """
    rows = []
    for target in targets:
        values = np.asarray(target.per_replication(result).values, dtype=float).ravel()
        values = values[np.isfinite(values)]
        n = values.size
        estimate = float(values.mean()) if n else math.nan
        half = 1.96 * float(values.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
        rows.append({
            "target": target.name,
            "label": target.label,
            "estimate": estimate,
            "ci_low": estimate - half,
            "ci_high": estimate + half,
            "low": target.low,
            "high": target.high,
            "passed": bool(n and target.low <= estimate <= target.high),
            "percent": target.percent,
            "observed": target.observed,
            "source": target.source,
            "replications": n,
        })
    return pd.DataFrame(rows).set_index("target")


def check_calibration(scenario, replications: int = 20, seed: int | None = None,
                      threads: int | None = None, progress=False) -> pd.DataFrame:
    """Simulate ``scenario`` (weekly output) and return :func:`calibration_table` of it."""
    from .api import run

    result = run(scenario, replications=replications, seed=seed, threads=threads,
                 resolution="week", progress=progress)
    return calibration_table(result)
