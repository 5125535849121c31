"""The output schema as data: every result variable's dims, dtype, units, reductions and
description, in one table that every reader derives from.

:data:`VARIABLES` is the single source for: the Dataset the engine's outputs are wrapped
in (:mod:`cbecsim.results`), the byte estimates of a run (:func:`dataset_bytes`), the
analysis's automatic reductions over markets and time (:mod:`cbecsim.analysis`), and the
sweep store's template. Where a variable lives in the kernels' output arrays comes from
:data:`cbecsim.kernels.state.OUTPUT_FIELDS` (a test ties the two together).

This module imports no numerical library, so the analysis can use it without loading
the engine.
"""

from __future__ import annotations

import dataclasses

from .kernels.state import OUTPUT_FIELDS, OUTPUT_GROUPS

__all__ = ["Variable", "VARIABLES", "ITEM_BYTES", "dataset_bytes", "SM", "S", "M"]

SM = ("replication", "time", "seller", "market")
S = ("replication", "time", "seller")
M = ("replication", "time", "market")

#: Bytes per value of each dtype in the table.
ITEM_BYTES = {"float64": 8, "float32": 4, "int32": 4, "bool": 1, "datetime64[ns]": 8}


@dataclasses.dataclass(frozen=True)
class Variable:
    """One result variable.

    Attributes
    ----------
    dims : tuple of str
    units : str
    dtype : str
    description : str
    over_market : {"sum", "mean"}
        How the analysis reduces it over markets by default (means over the markets the
        seller serves).
    over_time : {"sum", "mean", "last"}
        How the analysis reduces it over time by default: flows are summed, shares and
        per-unit quantities averaged, levels (period-end values, values to date) taken at
        the last period.

    Iterating gives ``(dims, units, dtype, description)``, the tuple earlier versions
    stored, so ``for name, (dims, units, dtype, description) in VARIABLES.items()`` keeps
    working.
    """

    dims: tuple[str, ...]
    units: str
    dtype: str
    description: str
    over_market: str = "sum"
    over_time: str = "sum"

    def __iter__(self):
        return iter((self.dims, self.units, self.dtype, self.description))

    @property
    def attrs(self) -> dict[str, str]:
        return {"units": self.units, "description": self.description}


#: name -> :class:`Variable`, in the order of the result Dataset.
VARIABLES: dict[str, Variable] = {
    "revenue": Variable(
        SM, "USD", "float64", "sales revenue net of VAT in the period", over_market="sum", over_time="sum"
    ),
    "units_sold": Variable(SM, "units", "int32", "units sold in the period", over_market="sum", over_time="sum"),
    "lost_sales": Variable(
        SM, "units", "int32", "units demanded but out of stock in the period", over_market="sum", over_time="sum"
    ),
    "ad_spend": Variable(SM, "USD", "float64", "sponsored-ad spend in the period", over_market="sum", over_time="sum"),
    "duty_paid": Variable(
        SM,
        "USD",
        "float64",
        "customs duty paid in the period (parcels at sale, bulk imports on arrival)",
        over_market="sum",
        over_time="sum",
    ),
    "landed_cost": Variable(
        SM,
        "USD/unit",
        "float64",
        "landed cost per unit of the next unit to ship, averaged over the days the seller traded: from the "
        "warehouse its moving-average landed cost + handling, by parcel the unit cost + freight + the day's duty + "
        "handling; NaN after exit",
        over_market="mean",
        over_time="mean",
    ),
    "cm2": Variable(
        SM,
        "USD",
        "float64",
        "contribution margin after ads (CM2): revenue net of VAT - cost of the units sold (each stock pool's "
        "moving-average landed cost: factory cost, and for warehouse stock the freight, duty and inbound "
        "placement paid on arrival; for parcels the parcel freight and the duty of the sale day) - handling - "
        "fees (referral, fulfilment, storage, returns processing, DTC card fees) - ad spend - DTC acquisition "
        "(CAC x new DTC customers) - refunds + referral fees credited back on refunds - return freight + the cost "
        "of returned units put back in stock. Fixed costs, interest and capability costs are not in CM2",
        over_market="sum",
        over_time="sum",
    ),
    "visibility": Variable(
        SM,
        "1",
        "float32",
        "seller's share of the examination weight of the market's results page (organic position + sponsored "
        "attention), mean over the period",
        over_market="mean",
        over_time="mean",
    ),
    "organic_share": Variable(
        SM,
        "1",
        "float32",
        "share of units sold attributed to organic attention; NaN with no sales",
        over_market="mean",
        over_time="mean",
    ),
    "stock": Variable(
        SM, "units", "int32", "stock on hand at the end of the period", over_market="sum", over_time="last"
    ),
    "clicks": Variable(SM, "1", "int32", "sponsored-ad clicks in the period", over_market="sum", over_time="sum"),
    "cash": Variable(S, "USD", "float64", "cash at the end of the period", over_market="sum", over_time="last"),
    "alive": Variable(
        S, "1", "bool", "seller still trading at the end of the period", over_market="sum", over_time="last"
    ),
    "costs": Variable(
        S,
        "USD",
        "float64",
        "all cash paid out in the period, net of fee credits (stock, freight, duty, fees, ads, refunds, interest, "
        "fixed costs)",
        over_market="sum",
        over_time="sum",
    ),
    "shoppers": Variable(
        M, "1", "int32", "shoppers arriving in the market in the period", over_market="sum", over_time="sum"
    ),
    "returns": Variable(
        SM,
        "units",
        "int32",
        "units returned in the period (refunded; restocked at factory cost)",
        over_market="sum",
        over_time="sum",
    ),
    "return_rate": Variable(
        SM,
        "1",
        "float32",
        "returns / units sold in the period; NaN with no sales",
        over_market="mean",
        over_time="mean",
    ),
    "refunds": Variable(
        SM,
        "USD",
        "float64",
        "price refunded on returns in the period (booked in costs, not revenue)",
        over_market="sum",
        over_time="sum",
    ),
    "rating": Variable(
        S,
        "stars",
        "float32",
        "star rating (1..5) at the end of the period; moves with returns and delivery time",
        over_market="mean",
        over_time="last",
    ),
    "listing_interruptions": Variable(
        SM,
        "1",
        "int32",
        "compliance incidents that took the listing down, started in the period",
        over_market="sum",
        over_time="sum",
    ),
    "interrupted_days": Variable(
        SM, "days", "int32", "days the listing was down after a compliance incident", over_market="sum", over_time="sum"
    ),
    "listed_days": Variable(
        SM, "days", "int32", "days the live seller listed in the market", over_market="sum", over_time="sum"
    ),
    "repeat_purchase_rate": Variable(
        SM,
        "1",
        "float32",
        "share of units sold in the period bought by returning customers (marketplace and DTC); NaN with no sales",
        over_market="mean",
        over_time="mean",
    ),
    "repeat_revenue": Variable(
        SM,
        "USD",
        "float64",
        "revenue from returning customers' purchases in the period",
        over_market="sum",
        over_time="sum",
    ),
    "new_customers": Variable(
        SM,
        "1",
        "int32",
        "first purchases in the period, marketplace and DTC (one customer each)",
        over_market="sum",
        over_time="sum",
    ),
    "dtc_new_customers": Variable(
        SM, "1", "int32", "first purchases through the DTC channel in the period", over_market="sum", over_time="sum"
    ),
    "customers": Variable(
        SM,
        "1",
        "int32",
        "customers (marketplace + DTC) not yet lapsed at the end of the period",
        over_market="sum",
        over_time="last",
    ),
    "ltv": Variable(
        SM,
        "USD/customer",
        "float64",
        "realised lifetime value to date: cumulative (first-purchase + repeat) revenue / cumulative new "
        "customers, from the start to the period end; NaN before the first customer",
        over_market="mean",
        over_time="last",
    ),
    "acquisition_spend": Variable(
        SM,
        "USD",
        "float64",
        "sponsored-ad spend + DTC paid acquisition (CAC x new DTC customers)",
        over_market="sum",
        over_time="sum",
    ),
    "cac": Variable(
        SM,
        "USD/customer",
        "float64",
        "blended customer acquisition cost: acquisition_spend / new_customers in the period; NaN with none",
        over_market="mean",
        over_time="mean",
    ),
    "dtc_revenue": Variable(
        SM,
        "USD",
        "float64",
        "revenue through the DTC channel (own site / social), net of VAT",
        over_market="sum",
        over_time="sum",
    ),
    "dtc_units": Variable(
        SM, "units", "int32", "units sold through the DTC channel", over_market="sum", over_time="sum"
    ),
    "fees": Variable(
        SM,
        "USD",
        "float64",
        "marketplace and payment fees in the period: referral fees (less what refunds credited back, net of the "
        "refund administration fee), fulfilment fees (the fee schedule's by price band for marketplace "
        "warehouses, else the mode's), warehouse storage, returns processing and DTC card fees; inbound "
        "placement is part of the warehouse stock's landed cost instead",
        over_market="sum",
        over_time="sum",
    ),
    "inventory_value": Variable(
        SM,
        "USD",
        "float64",
        "stock on hand and in transit at the end of the period at cost: each stock pool at its moving-average "
        "landed cost (factory cost, and for warehouse stock the freight, import duty and inbound placement paid "
        "when it arrived), an order in transit at what was paid for it so far; 0 after exit (written off)",
        over_market="sum",
        over_time="last",
    ),
    "units_from_warehouse": Variable(
        SM, "units", "int32", "units sold from the overseas warehouse in the period (the rest shipped by parcel "
        "from the origin)", over_market="sum", over_time="sum"
    ),
    "equity": Variable(
        S, "USD", "float64", "cash + inventory_value over the seller's markets at the end of the period",
        over_market="sum", over_time="last",
    ),
    "interest": Variable(
        S, "USD", "float64", "interest paid on drawn credit (negative cash) in the period (in costs, not in CM2)",
        over_market="sum", over_time="sum",
    ),
    "top_market_share": Variable(
        S,
        "1",
        "float32",
        "largest market's share of the seller's revenue in the period; NaN with no revenue",
        over_market="mean",
        over_time="mean",
    ),
    "delivery_days": Variable(
        SM,
        "days",
        "float32",
        "mean delivery time of the units sold in the period; NaN with no sales",
        over_market="mean",
        over_time="mean",
    ),
    "capability_costs": Variable(
        S,
        "USD",
        "float64",
        "localisation, compliance, CM2/LTV analytics and market-research costs in the period (included in costs)",
        over_market="sum",
        over_time="sum",
    ),
}


def _check_layout() -> None:
    """Every variable has a home in the kernels' output arrays with its dims and dtype."""
    for name, variable in VARIABLES.items():
        group, _ = OUTPUT_FIELDS[name]
        _, dims, dtype = OUTPUT_GROUPS[group]
        if dims != variable.dims or dtype != variable.dtype:
            raise AssertionError(f"{name}: schema {variable.dims} {variable.dtype} vs layout {dims} {dtype}")
    missing = set(OUTPUT_FIELDS) - set(VARIABLES)
    if missing:
        raise AssertionError(f"output fields without a schema entry: {sorted(missing)}")


_check_layout()


def dataset_bytes(sizes: dict[str, int], names=None) -> int:
    """Bytes of the result variables ``names`` (default: all) for dims of ``sizes``,
    plus ``exit_day``, ``initial_cash`` (8 bytes per replication x seller each),
    ``exit_reason`` (12 characters of 4 bytes) and ``production_origin`` (2 characters of 4 bytes)."""
    total = 0
    for name in VARIABLES if names is None else names:
        variable = VARIABLES[name]
        cells = 1
        for dim in variable.dims:
            cells *= sizes[dim]
        total += cells * ITEM_BYTES[variable.dtype]
    return total + (2 * 8 + 48 + 8) * sizes["replication"] * sizes["seller"]
