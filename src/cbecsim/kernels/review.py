"""What a strategy review sees of costs and fees: the rules of the market kernel, per mode.

:func:`review_costs` evaluates, for one population's sellers at a review, the landed
cost and the selling fees of a unit under every fulfilment mode with the same njit
functions the market and fulfilment kernels charge (:mod:`.tariff`, :mod:`.market`'s fee
helpers, :mod:`.fulfilment`'s inbound fee), so what a strategy compares is what the
kernels will charge. Money in USD.
"""

from __future__ import annotations

from numba import njit

from . import layout as L
from .fulfilment import inbound_fee_usd
from .market import fulfilment_fee_usd, referral_fee_local
from .tariff import landed_cost_per_unit


@njit(cache=True, _nrt=False)
def review_costs(day, seller0, tables, state, regime, origins, landed, fulfilment, referral, storage):
    """Per-unit costs of sellers ``seller0 .. seller0 + n - 1`` under every mode, today.

    Parameters
    ----------
    day : int
    seller0 : int
        First seller of the population (the outputs cover ``n = landed.shape[1]`` sellers).
    tables, state : kernels.state.Tables, State
    regime : float64 (M, O, N_KINDS, N_REGIME_COLUMNS), the regime to cost under (today's,
        or an announced one)
    origins : int64 (B, n), the origin each seller's units are costed from (its production
        origin ``state.origin``, or an origin it could move to)
    landed : float64 (B, n, M, F), written: landed cost of a unit sold in mode f [USD/unit]
        -- parcel kinds: factory cost + freight + duty and entry fees per unit of the
        market's basket of parcels on the sale value + handling; bulk:
        factory cost + freight + duty on the cost value + inbound placement + handling
    fulfilment : float64 (B, n, M, F), written: fulfilment fee of a unit [USD/unit]
    referral : float64 (B, n, M), written: referral fee of a marketplace unit [USD/unit]
    storage : float64 (M, F), written: warehouse storage per unit-day [USD/unit/day] (0 for
        parcel kinds), at the first replication's FX rate
    """
    n_batch, n_sellers, n_markets, n_modes = landed.shape
    for m in range(n_markets):
        fee_row = tables.fee_index[day, m]
        fees_m = tables.fee_rows[fee_row]
        for f in range(n_modes):
            mode_row = tables.modes[f]
            if int(mode_row[L.MD_KIND]) != L.KIND_BULK:
                storage[m, f] = 0.0
            elif mode_row[L.MD_SCHEDULE_FEES] > 0.5:
                storage[m, f] = tables.storage_fee_day[day, m] * state.usd_rate[0, m]
            else:
                storage[m, f] = mode_row[L.MD_STORAGE_MONTH] * (12.0 / 365.0)
        vat = tables.market[m, L.MK_VAT]
        for b in range(n_batch):
            usd_rate = state.usd_rate[b, m]
            for i in range(n_sellers):
                s = seller0 + i
                price = state.price_local[b, s, m]
                unit_cost = state.unit_cost[b, s, m]
                net_price = price / (1.0 + vat) * usd_rate
                referral[b, i, m] = referral_fee_local(price, vat, fees_m, tables.fee_referral_tiers[fee_row]) \
                    * usd_rate
                for f in range(n_modes):
                    mode_row = tables.mode_by_origin[origins[b, i], f]  # freight from the origin costed
                    kind = int(mode_row[L.MD_KIND])
                    cost = landed_cost_per_unit(kind, unit_cost, net_price, mode_row[L.MD_FREIGHT],
                                                mode_row[L.MD_HANDLING_FEE], regime[m, origins[b, i], kind],
                                                tables.basket[m], int(tables.seller_layer[s, L.SL_POSTAL_METHOD]),
                                                tables.seller_layer[s, L.SL_IOSS])[0]
                    if kind == L.KIND_BULK:
                        cost += inbound_fee_usd(mode_row, fees_m, usd_rate)
                    landed[b, i, m, f] = cost
                    fulfilment[b, i, m, f] = fulfilment_fee_usd(mode_row, fees_m, tables.fee_fulfilment_bands[fee_row],
                                                                price, usd_rate)
