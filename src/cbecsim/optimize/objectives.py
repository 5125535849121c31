"""The outcomes an optimisation can maximise, minimise or constrain: one registry.

Each outcome is defined once here, as a function of a result Dataset (dims
``replication``, ``time``, ``seller``, ``market``) and a boolean mask over ``seller``
(the focal population's sellers), returning one value per replication
(a DataArray over ``replication``). Where the project already defines the quantity
(the seed paper's Table 4 KPIs in :data:`cbecsim.analysis.KPIS`, the experiment
statistics in :data:`cbecsim.experiment.STATISTICS`), the entry calls that definition,
so the optimiser, the KPI table and the experiments agree by construction.

To add or change an objective, edit :data:`OUTCOMES` (or call
:func:`register_outcome` from your own code before loading a spec).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import xarray as xr

__all__ = ["Outcome", "OUTCOMES", "register_outcome", "outcome_values", "focal_mask", "MissingVariableError"]


class MissingVariableError(KeyError):
    """A result lacks a variable an outcome needs; the message names it."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One optimisable outcome.

    ``compute(result, mask)`` returns a DataArray over ``replication`` [``units``];
    ``needs`` names the result variables it reads (checked before computing, so a
    missing variable is reported by name).
    """

    name: str
    units: str
    description: str
    needs: tuple[str, ...]
    compute: Callable[[xr.Dataset, np.ndarray], xr.DataArray]


def _kpi(name: str) -> Callable[[xr.Dataset, np.ndarray], xr.DataArray]:
    def compute(result: xr.Dataset, mask: np.ndarray) -> xr.DataArray:
        from ..analysis.kpi import KPIS

        per_replication = next(k for k in KPIS if k.name == name).compute(result, mask)
        # Only return_rate_trend (without a time dim) gives None; it is not an outcome.
        assert per_replication is not None, f"KPI {name!r} gave no values"
        return per_replication

    return compute


def _statistic(name: str) -> Callable[[xr.Dataset, np.ndarray], xr.DataArray]:
    def compute(result: xr.Dataset, mask: np.ndarray) -> xr.DataArray:
        from ..experiment import STATISTICS

        return STATISTICS[name][1](result.isel(seller=np.flatnonzero(mask)))

    return compute


def _last_period_mean(variable: str) -> Callable[[xr.Dataset, np.ndarray], xr.DataArray]:
    def compute(result: xr.Dataset, mask: np.ndarray) -> xr.DataArray:
        chosen = result[variable].isel(seller=np.flatnonzero(mask), time=-1)
        return chosen.astype(float).mean("seller").drop_vars(["time", "period_end"], errors="ignore")

    return compute


#: name -> Outcome. Values are per replication, over the focal sellers.
OUTCOMES: dict[str, Outcome] = {}


def register_outcome(outcome: Outcome) -> Outcome:
    """Add (or replace) an outcome in :data:`OUTCOMES`; returns it."""
    OUTCOMES[outcome.name] = outcome
    return outcome


for _outcome in (
    Outcome("cm2_margin", "1",
            "pooled CM2 margin: sum of CM2 / sum of revenue over the focal sellers, their markets and the "
            "horizon (the Table 4 KPI of cbecsim.analysis.KPIS); NaN without revenue",
            ("cm2", "revenue"), _kpi("cm2_margin")),
    Outcome("survival", "1", "share of the focal sellers still trading at the end of the horizon",
            ("alive",), _statistic("survival")),
    Outcome("visibility", "1",
            "the focal sellers' summed share of attention (organic + sponsored), mean over periods and the "
            "markets they serve (the experiments' 'visibility' statistic)",
            ("visibility",), _statistic("visibility")),
    Outcome("ltv_cac", "ratio",
            "mean LTV at the horizon end / blended CAC of the focal sellers (the Table 4 KPI); NaN without "
            "acquisition spend", ("ltv", "acquisition_spend", "new_customers"), _kpi("ltv_cac")),
    Outcome("final_equity", "USD",
            "equity (cash + inventory value) at the last period, mean over the focal sellers",
            ("equity",), _last_period_mean("equity")),
    Outcome("contribution_after_levers", "USD per seller",
            "CM2 less what the levers cost (localisation, compliance, analytics, market research) per focal "
            "seller over the horizon (the experiments' 'contribution_after_levers' statistic)",
            ("cm2", "capability_costs"), _statistic("contribution_after_levers")),
    Outcome("final_cash", "USD", "cash at the last period, mean over the focal sellers",
            ("cash",), _last_period_mean("cash")),
    Outcome("top_market_share", "1",
            "share of a focal seller's revenue from its largest market, mean over focal sellers with revenue "
            "(the Table 4 KPI; the paper's guardrail is <= 50%)",
            ("revenue",), _kpi("top_market_share")),
):
    register_outcome(_outcome)


def outcome_values(result: xr.Dataset, name: str, mask: np.ndarray) -> np.ndarray:
    """Outcome ``name`` per replication over the sellers in ``mask``: float array (R,).

    Raises
    ------
    KeyError
        For a name not in :data:`OUTCOMES`.
    MissingVariableError
        When the result lacks a variable the outcome needs (the message names it).
    """
    outcome = OUTCOMES[name]
    missing = [v for v in outcome.needs if v not in result.data_vars]
    if missing:
        raise MissingVariableError(
            f"outcome {name!r} needs the result variable{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)}, which this cbecsim result does not have")
    values = outcome.compute(result, np.asarray(mask, dtype=bool))
    return np.asarray(values.transpose("replication").values, dtype=float)


def focal_mask(result: xr.Dataset, first: int, count: int, label: str) -> np.ndarray:
    """Boolean mask over ``seller``: the ``count`` sellers from index ``first``.

    Sellers are laid out population by population in config order, so the focal
    population's sellers are a contiguous block; the result's ``population`` coordinate
    must name ``label`` there (a check that the layout is what we assume).
    """
    n = result.sizes["seller"]
    mask = np.zeros(n, dtype=bool)
    mask[first:first + count] = True
    if "population" in result.coords:
        labels = np.asarray(result.coords["population"].values)[mask]
        if labels.size and not np.all(labels == label):
            raise ValueError(f"sellers {first}..{first + count - 1} are not population {label!r} in the result "
                             f"(found {sorted(set(map(str, labels)))})")
    return mask
