"""The fees of one sale, line by line (what ``cbecsim fees quote`` prints)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from typing import Any

from ._library import FeeError, FeeTerms, resolve_fees
from ._schema import FeeSchedule

__all__ = ["FeeQuote", "quote_sale"]


@dataclasses.dataclass(frozen=True)
class FeeQuote:
    """Per-unit fees of one unit sold at ``price`` [``terms.currency``].

    ``per_unit_sold`` = referral + fulfilment + inbound placement + payment: what one unit
    received into the warehouse and sold once costs in fees. Storage is per month held
    (``storage_this_month`` is the month of the sale's date); the return lines say what a
    full refund of the unit costs in fees (the refund administration fee kept from the
    referral fee, and returns processing; the fulfilment fee is not refunded).
    """

    terms: FeeTerms
    price: float
    referral: float
    referral_lines: tuple[tuple[float, float, float, float], ...]
    referral_minimum_applies: bool
    fulfilment: float
    inbound_placement: float
    payment: float
    per_unit_sold: float
    storage_this_month: float
    refund_admin: float
    referral_refund: float
    returns_processing: float

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "terms"}
        data["referral_lines"] = [
            {"from": low, "to": None if math.isinf(high) else high, "rate": rate, "amount": amount}
            for low, high, rate, amount in self.referral_lines
        ]
        data["currency"] = self.terms.currency
        data["terms"] = self.terms.to_dict()
        return data


def _referral_lines(terms: FeeTerms, price: float) -> tuple[tuple[float, float, float, float], ...]:
    """``(from, to, rate, amount)`` per tier used, for display (the total comes from the kernel)."""
    p = max(price, 0.0)
    if terms.referral_rule == "whole_price":
        low = 0.0
        for upper, rate in terms.referral_tiers:
            if p <= upper:
                return ((low, upper, rate, rate * p),)
            low = upper
        upper, rate = terms.referral_tiers[-1]
        return ((low, upper, rate, rate * p),)
    lines = []
    low = 0.0
    for upper, rate in terms.referral_tiers:
        if p <= low:
            break
        portion = min(p, upper) - low
        lines.append((low, upper, rate, rate * portion))
        low = upper
    return tuple(lines)


def quote_sale(
    schedule: str | FeeSchedule,
    category: str,
    price: float,
    on: dt.date | str,
    size_tier: str | None = None,
    *,
    unit_volume: float | None = None,
) -> FeeQuote:
    """The fees of one unit of ``category`` sold at ``price`` on day ``on``.

    ``price`` is the total sales price in the schedule's currency (VAT included for the
    EU stores, net of sales tax in the US: ``terms.referral_base``). Raises
    :class:`FeeError` for a negative or non-finite price and as :func:`resolve_fees`.
    """
    try:
        price = float(price)
    except (TypeError, ValueError):
        raise FeeError(f"price must be a number, got {price!r}") from None
    if not (math.isfinite(price) and price >= 0):
        raise FeeError(f"price must be a finite number >= 0, got {price!r}")
    terms = resolve_fees(schedule, category, on, size_tier, unit_volume=unit_volume)
    referral = terms.referral_fee(price)
    lines = _referral_lines(terms, price)
    percentage = sum(line[3] for line in lines)
    fulfilment = terms.fulfilment_fee(price)
    payment = terms.payment_fee(price)
    admin = terms.refund_admin_fee(price)
    return FeeQuote(
        terms=terms,
        price=price,
        referral=referral,
        referral_lines=lines,
        referral_minimum_applies=referral > percentage,
        fulfilment=fulfilment,
        inbound_placement=terms.inbound_placement_per_unit,
        payment=payment,
        per_unit_sold=referral + fulfilment + terms.inbound_placement_per_unit + payment,
        storage_this_month=terms.storage_for_month(terms.date.month),
        refund_admin=admin,
        referral_refund=referral - admin,
        returns_processing=terms.returns_processing_per_unit,
    )
