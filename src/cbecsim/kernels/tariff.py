"""Duty and landed cost per unit under the regime in force.

Rules (DESIGN.md "Landed cost and the tariff kernel"; the same as ``cbecsim policies
duty``, :func:`cbecsim.policies.quote_duty`):

* a **bulk** import to an overseas warehouse (B2B) is valued at its import (cost) value
  and is always dutiable: ad valorem rate x cost + specific duty per unit;
* a direct **parcel** or **postal** item (B2C, shipped per order from the origin) is
  valued at the transaction price net of VAT. Sales ship in parcels of the market's
  *basket* (units and distinct tariff sub-headings per parcel, with shares); each
  parcel is valued at its units x the unit's value, and its duty is spread over its
  units (the duty per unit sold is the basket's duty over its units):

  - a parcel at or under the de minimis threshold, when the exemption applies, pays only
    the flat low-value duty: per distinct sub-heading (the EU's EUR 3 from 2026-07-01,
    Council Regulation (EU) 2026/382) or per item; where the flat duty is for IOSS
    sellers only, a non-IOSS seller's parcel pays the normal tariff instead;
  - a postal item under postal options (US from 2025-05-02) pays the duty method its
    carrier elected: ad valorem (the origin's rate x value) or a specific amount per
    postal package; ``cheapest_per_parcel`` takes the cheaper per parcel (a bound);
  - otherwise ad valorem rate x value + specific duty per unit;
  - a parcel that pays duty also pays the regime's entry and broker fees per parcel
    (US informal-entry MPF after de minimis): a landed cost, not duty.

The threshold test is :func:`cbecsim.kernels.rules.low_value_exempt` (at or under),
shared with the calculator.
"""

from __future__ import annotations

from numba import njit

from .layout import (
    BK_HEADINGS,
    BK_SHARE,
    BK_UNITS,
    KIND_BULK,
    KIND_POSTAL,
    POSTAL_AD_VALOREM,
    POSTAL_SPECIFIC,
    RG_AD_VALOREM,
    RG_DE_MINIMIS,
    RG_ENTRY_FEE,
    RG_IOSS_ONLY,
    RG_LOW_VALUE_DUTY,
    RG_LOW_VALUE_PER_HEADING,
    RG_PER_HEADING,
    RG_POSTAL_SPECIFIC,
    RG_POSTAL_SPECIFIC_AVAILABLE,
    RG_SPECIFIC,
    RG_THRESHOLD,
)
from .rules import low_value_exempt


@njit(cache=True, _nrt=False)
def duty_per_unit(kind, customs_value, ad_valorem_rate, specific_duty, de_minimis,
                  threshold, low_value_duty):
    """Customs duty on one unit [USD] (a one-item parcel, or a bulk unit).

    Parameters
    ----------
    kind : int
        KIND_PARCEL, KIND_POSTAL or KIND_BULK (bulk is never exempt).
    customs_value : float
        Transaction price net of VAT (direct) or import cost value (bulk) [USD].
    ad_valorem_rate : float
        Fraction of the customs value.
    specific_duty : float
        Per-item duty on dutiable imports [USD/unit].
    de_minimis : float
        1.0 if the de minimis exemption applies to parcels, else 0.0.
    threshold : float
        De minimis threshold [USD]; values at or under it are exempt.
    low_value_duty : float
        Flat duty per exempt low-value parcel item [USD/unit].
    """
    if kind != KIND_BULK and de_minimis > 0.5 and low_value_exempt(customs_value, threshold):
        return low_value_duty
    return ad_valorem_rate * customs_value + specific_duty


@njit(cache=True, _nrt=False)
def regime_duty(kind, customs_value, regime_row):
    """:func:`duty_per_unit` with the regime given as one row of the regime table."""
    return duty_per_unit(
        kind,
        customs_value,
        regime_row[RG_AD_VALOREM],
        regime_row[RG_SPECIFIC],
        regime_row[RG_DE_MINIMIS],
        regime_row[RG_THRESHOLD],
        regime_row[RG_LOW_VALUE_DUTY],
    )


@njit(cache=True, _nrt=False)
def parcel_duty(kind, parcel_value, units, headings, regime_row, postal_method, ioss):
    """Customs duty and entry fees on one direct parcel [USD].

    Parameters
    ----------
    kind : int
        KIND_PARCEL or KIND_POSTAL.
    parcel_value : float
        Customs value of the whole parcel: its units x the transaction price net of VAT [USD].
    units, headings : float
        Units in the parcel and distinct tariff sub-headings among them.
    regime_row : float64 (N_REGIME_COLUMNS,)
        The regime of the parcel's market, origin and kind.
    postal_method : int
        POSTAL_* code of the carrier's election (used for kind postal).
    ioss : float
        1.0 if the seller is IOSS-registered.

    Returns
    -------
    (duty, fees) : tuple of float
        [USD per parcel]; fees are the entry and broker fees of a parcel that pays duty.
    """
    if regime_row[RG_DE_MINIMIS] > 0.5 and low_value_exempt(parcel_value, regime_row[RG_THRESHOLD]):
        if ioss > 0.5 or regime_row[RG_IOSS_ONLY] < 0.5:
            if regime_row[RG_PER_HEADING] > 0.5:
                duty = regime_row[RG_LOW_VALUE_PER_HEADING] * headings
            else:
                duty = regime_row[RG_LOW_VALUE_DUTY] * units
            # An exempt parcel makes no formal entry; one paying the flat duty is entered.
            fees = regime_row[RG_ENTRY_FEE] if duty > 0.0 else 0.0
            return duty, fees
    if kind == KIND_POSTAL and regime_row[RG_POSTAL_SPECIFIC_AVAILABLE] > 0.5:
        ad_valorem = regime_row[RG_AD_VALOREM] * parcel_value
        specific = regime_row[RG_POSTAL_SPECIFIC]
        if postal_method == POSTAL_AD_VALOREM:
            duty = ad_valorem
        elif postal_method == POSTAL_SPECIFIC:
            duty = specific
        else:
            duty = ad_valorem if ad_valorem <= specific else specific
        return duty, regime_row[RG_ENTRY_FEE]
    return (regime_row[RG_AD_VALOREM] * parcel_value + regime_row[RG_SPECIFIC] * units,
            regime_row[RG_ENTRY_FEE])


@njit(cache=True, _nrt=False)
def direct_duty_per_unit(kind, customs_value, regime_row, basket, postal_method, ioss):
    """Duty and entry fees per unit sold by direct parcel, over the market's basket [USD/unit].

    ``sum_i share_i x parcel_duty(units_i x customs_value, units_i, headings_i) /
    sum_i share_i x units_i`` over the rows of ``basket`` (NB, N_BASKET): the parcels'
    duty spread over the units they hold. With the one-item basket (1 unit, 1 heading)
    this is the duty of a one-item parcel.

    Returns
    -------
    (duty, fees) : tuple of float [USD/unit]
    """
    duty = 0.0
    fees = 0.0
    units = 0.0
    for i in range(basket.shape[0]):
        share = basket[i, BK_SHARE]
        if share <= 0.0:
            continue
        parcel_units = basket[i, BK_UNITS]
        parcel, parcel_fees = parcel_duty(kind, parcel_units * customs_value, parcel_units,
                                          basket[i, BK_HEADINGS], regime_row, postal_method, ioss)
        duty += share * parcel
        fees += share * parcel_fees
        units += share * parcel_units
    return duty / units, fees / units


@njit(cache=True, _nrt=False)
def landed_cost_per_unit(kind, unit_cost, net_price, freight, handling_fee, regime_row, basket, postal_method,
                         ioss):
    """Landed cost and duty of one unit [USD], before platform fees.

    ``unit_cost + freight + duty + entry fees + handling_fee``. Bulk: duty on the cost value
    (:func:`regime_duty`), no parcel fees. Parcel and postal: :func:`direct_duty_per_unit`
    on the sale value ``net_price`` over the market's ``basket``, with the seller's postal
    method and IOSS flag.

    Returns
    -------
    (landed_cost, duty) : tuple of float
    """
    if kind == KIND_BULK:
        duty = regime_duty(kind, unit_cost, regime_row)
        return unit_cost + freight + duty + handling_fee, duty
    duty, fees = direct_duty_per_unit(kind, net_price, regime_row, basket, postal_method, ioss)
    return direct_landed_cost(unit_cost, freight, duty, fees, handling_fee), duty


@njit(cache=True, _nrt=False, inline="always")
def direct_landed_cost(unit_cost, freight, duty, fees, handling_fee):
    """Landed cost of one unit shipped by parcel or post [USD]: cost, freight, the duty and
    entry fees per unit (:func:`direct_duty_per_unit`) and handling, summed in that order."""
    return unit_cost + freight + duty + fees + handling_fee
