"""Kernels of the model layers of issue 7: FX paths and capability costs.

The per-sale layers (returns, ratings, customers and retention, the DTC channel,
compliance incidents) run inside the daily market step (:mod:`cbecsim.kernels.market`),
which calls the small rules below (the hazards and probabilities shared with the review
layer are in :mod:`cbecsim.kernels.formulas`); :func:`first_incident_clocks` sets up the
state, and two per-replication steps here run once a day (see :mod:`cbecsim.kernels.day`):

* :func:`advance_fx` -- before the market step: the day's USD rate of every market,
  ``rate = base_rate(t) * exp(sigma_m * W_c(t))`` with ``W_c`` a standard random walk per
  currency (one N(0, 1) shock a day from the FX stream, market component = currency
  index), so markets that share a currency share its shocks;
* :func:`charge_capabilities` -- at the day's close: localisation and compliance costs
  per listed market, the CM2/LTV analytics cost and one-off costs (market research).

Shapes as in :mod:`cbecsim.kernels.state`; ``C`` currencies.
"""

from __future__ import annotations

import math

from numba import njit

from . import layout as L
from . import rng
from . import state as K

#: Best possible star rating; a buyer's experience is scored against it.
RATING_CEILING = 5.0
RATING_FLOOR = 1.0


#: Customers are reviewed for lapse once a week, at the close of days 6, 13, 20, ...
#: [assumption]: a customer base changes slowly (a lifetime of about a year at the
#: default rate), and one draw a week instead of one a day is most of the customer
#: layer's cost. The daily rate keeps its meaning: a week's lapse is ``1 - (1 - p)^7``.
LAPSE_EVERY_DAYS = 7


@njit(cache=True, _nrt=False)
def lapse_probability_today(day, daily_rate):
    """Probability a customer lapses at the close of ``day``: ``1 - (1 - p)^7`` on the
    last day of each week (``(day + 1) % 7 == 0``), else 0."""
    if not daily_rate > 0.0 or (day + 1) % LAPSE_EVERY_DAYS != 0:
        return 0.0
    if daily_rate >= 1.0:
        return 1.0
    return -math.expm1(LAPSE_EVERY_DAYS * math.log1p(-daily_rate))


@njit(cache=True, _nrt=False)
def first_incident_clocks(seed, replication0, out):
    """Fill ``out`` (B, S, M) with each listing's first incident clock, Exp(1).

    Key: (seed, INCIDENT, replication0 + b, day -1, m, s); later clocks are drawn on the
    day of an incident (see :func:`cbecsim.kernels.market.market_day`).
    """
    n_batch, n_sellers, n_markets = out.shape
    for b in range(n_batch):
        for m in range(n_markets):
            key = rng.market_key(seed, rng.INCIDENT, replication0 + b, rng.NO_DAY, m)
            for s in range(n_sellers):
                out[b, s, m] = rng.standard_exponential(rng.absorb(key, s))


@njit(cache=True, _nrt=False)
def updated_rating(rating, units, returned, delivery_days, market_row):
    """The rating after a day with ``units`` sold (``units > 0``).

    Each day's buyers score their experience ``e = 5 - p_r * returned / units - p_d *
    delivery_days``; the rating moves toward it with weight ``units / (units + memory)``
    (an average over roughly the last ``memory`` units), clipped to 1..5. A memory of 0
    switches the dynamics off.
    """
    memory = market_row[L.MK_RATING_MEMORY]
    if not memory > 0.0:
        return rating
    experience = (
        RATING_CEILING
        - market_row[L.MK_RATING_RETURN_PENALTY] * (returned / units)
        - market_row[L.MK_RATING_DELIVERY_PENALTY] * delivery_days
    )
    weight = units / (units + memory)
    value = rating + weight * (experience - rating)
    if value > RATING_CEILING:
        return RATING_CEILING
    if value < RATING_FLOOR:
        return RATING_FLOOR
    return value


@njit(cache=True, _nrt=False, no_cpython_wrapper=True)
def advance_fx(b, day, seed, replication, tables, state):
    """Draw the day's FX shocks of replication ``b`` and set every market's USD rate.

    ``rate = fx_base[day, m] * exp(sigma_m * W_c)`` with ``W_c`` the cumulative N(0, 1)
    shocks of the market's currency (FX stream, market component = currency index).
    """
    fx_walk = state.fx_walk[b]
    for c in range(fx_walk.shape[0]):
        if tables.currency_active[c]:
            fx_walk[c] += rng.standard_normal(rng.stream_key(seed, rng.FX, replication, day, c, rng.NO_SELLER))
    for m in range(tables.market.shape[0]):
        state.usd_rate[b, m] = tables.fx_base[day, m] * math.exp(
            tables.market[m, L.MK_FX_VOLATILITY] * fx_walk[tables.market_currency[m]])


@njit(cache=True, _nrt=False, no_cpython_wrapper=True, inline="always")
def charge_capabilities(b, row, period, tables, state, out):
    """Pay replication ``b``'s capability costs of the day [USD].

    ``localisation * loc_cost_day + compliance * compliance_cost_day`` for each listed
    market, plus the analytics cost of the CM2/LTV guardrail and any one-off cost due
    (then cleared). Everything is paid from cash and booked in the seller's ``costs`` and
    ``capability_costs``.
    """
    n_sellers, n_markets = state.listed.shape[1], state.listed.shape[2]
    for s in range(n_sellers):
        if not state.alive[b, s]:
            continue
        layer = tables.seller_layer[s]
        per_market = (
            state.levers[b, s, L.LV_LOCALISATION] * layer[L.SL_LOC_COST_DAY]
            + state.levers[b, s, L.LV_COMPLIANCE] * layer[L.SL_COMPLIANCE_COST_DAY]
        )
        total = layer[L.SL_ANALYTICS_COST_DAY] + state.one_off_cost[b, s]
        state.one_off_cost[b, s] = 0.0
        if per_market > 0.0:
            for m in range(n_markets):
                if state.listed[b, s, m]:
                    total += per_market
        if total > 0.0:
            state.cash[b, s] -= total
            state.seller_sum[b, s, K.SACC_COSTS] += total
            state.seller_sum[b, s, K.SACC_CAPABILITY_COSTS] += total
