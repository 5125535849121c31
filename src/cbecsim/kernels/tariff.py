"""Duty and landed cost per unit under the regime in force.

Rules (DESIGN.md "Landed cost and the tariff kernel"):

* a direct **parcel** (B2C, shipped per order) is valued at the transaction price net of
  VAT. If the de minimis exemption applies and the value is at or under the threshold,
  it pays only the flat low-value duty (zero unless the regime sets one, e.g. the EU's
  EUR 3 per item from 2026-07-01); otherwise ad valorem rate x value + specific duty;
* a **bulk** import to an overseas warehouse (B2B) is valued at its import (cost) value
  and is always dutiable: ad valorem rate x cost + specific duty.

One item per parcel is assumed, so the EU's EUR 3 "per distinct tariff sub-heading in a
parcel" is EUR 3 per item here.
"""

from __future__ import annotations

from numba import njit

from .layout import (
    KIND_PARCEL,
    MD_FREIGHT,
    MD_HANDLING_FEE,
    MD_KIND,
    MK_VAT,
    RG_AD_VALOREM,
    RG_DE_MINIMIS,
    RG_LOW_VALUE_DUTY,
    RG_SPECIFIC,
    RG_THRESHOLD,
)


@njit(cache=True, _nrt=False)
def duty_per_unit(kind, customs_value, ad_valorem_rate, specific_duty, de_minimis,
                  threshold, low_value_duty):
    """Customs duty on one unit [USD].

    Parameters
    ----------
    kind : int
        KIND_PARCEL or KIND_BULK.
    customs_value : float
        Transaction price net of VAT (parcel) or import cost value (bulk) [USD].
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
    if kind == KIND_PARCEL and de_minimis > 0.5 and customs_value <= threshold:
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
def landed_cost_per_unit(kind, unit_cost, net_price, freight, handling_fee, regime_row):
    """Landed cost and duty of one unit [USD], before platform fees.

    ``unit_cost + freight + duty + handling_fee`` where duty follows :func:`regime_duty`
    with customs value ``net_price`` for parcels and ``unit_cost`` for bulk imports.

    Returns
    -------
    (landed_cost, duty) : tuple of float
    """
    customs_value = net_price if kind == KIND_PARCEL else unit_cost
    duty = regime_duty(kind, customs_value, regime_row)
    return unit_cost + freight + duty + handling_fee, duty


@njit(cache=True, _nrt=False)
def landed_cost_by_mode(market, usd_rate, modes, regime, origin, price_local, unit_cost, out):
    """Landed cost per unit of every seller-market under every fulfilment mode [USD].

    Parameters
    ----------
    market : float64 (M, N_MARKET_COLUMNS); modes : (F, N_MODE_COLUMNS)
    usd_rate : float64 (B, M), USD per unit of each market's currency today (the FX path;
        the market kernel values parcels at the same rate)
    regime : float64 (M, O, 2, N_REGIME_COLUMNS), the regime in force
    origin : int64 (S,)
    price_local, unit_cost : float64 (B, S, M)
    out : float64 (B, S, M, F), written
    """
    n_batch, n_sellers, n_markets = price_local.shape
    for b in range(n_batch):
        for s in range(n_sellers):
            for m in range(n_markets):
                net_price = price_local[b, s, m] / (1.0 + market[m, MK_VAT]) * usd_rate[b, m]
                for f in range(modes.shape[0]):
                    kind = int(modes[f, MD_KIND])
                    out[b, s, m, f] = landed_cost_per_unit(
                        kind, unit_cost[b, s, m], net_price, modes[f, MD_FREIGHT],
                        modes[f, MD_HANDLING_FEE], regime[m, origin[s], kind],
                    )[0]
