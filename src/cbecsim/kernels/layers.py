"""Kernels of the model layers of issue 7: FX paths and capability costs.

The per-sale layers (returns, ratings, customers and retention, the DTC channel,
compliance incidents) run inside the daily market step (:mod:`cbecsim.kernels.market`),
which calls the small rules below; :func:`first_incident_clocks` sets up the state, and
two batch kernels here run once a day:

* :func:`advance_fx` -- before the market step: the day's USD rate of every market,
  ``rate = base_rate(t) * exp(sigma_m * W_c(t))`` with ``W_c`` a standard random walk per
  currency (one N(0, 1) shock a day from the FX stream, market component = currency
  index), so markets that share a currency share its shocks;
* :func:`charge_capabilities` -- at the day's close: localisation and compliance costs
  per listed market, the CM2/LTV analytics cost and one-off costs (market research).

Shapes as in :func:`cbecsim.kernels.market.market_day`; ``C`` currencies.
"""

from __future__ import annotations

import math

from numba import njit, prange

from . import rng
from .layout import (
    LV_COMPLIANCE,
    LV_LOCALISATION,
    MK_FX_VOLATILITY,
    MK_RATING_DELIVERY_PENALTY,
    MK_RATING_MEMORY,
    MK_RATING_RETURN_PENALTY,
    O_CAPABILITY_COSTS,
    OS_CAPABILITY_COSTS,
    OS_COSTS,
    SL_ANALYTICS_COST_DAY,
    SL_COMPLIANCE_COST_DAY,
    SL_COMPLIANCE_CUT,
    SL_LOC_COST_DAY,
    SL_LOC_RETENTION_LIFT,
    SL_LOC_RETURN_CUT,
)

#: Best possible star rating; a buyer's experience is scored against it.
RATING_CEILING = 5.0
RATING_FLOOR = 1.0


@njit(cache=True)
def return_probability(base_rate, localisation, seller_row):
    """Probability a sold unit is returned: ``base * (1 - cut * localisation)``."""
    return base_rate * (1.0 - seller_row[SL_LOC_RETURN_CUT] * localisation)


@njit(cache=True)
def repurchase_hazard(base_hazard, localisation, seller_row):
    """Daily repurchase hazard of a marketplace customer: ``h0 * (1 + lift * loc)``."""
    return base_hazard * (1.0 + seller_row[SL_LOC_RETENTION_LIFT] * localisation)


#: Customers are reviewed for lapse once a week, at the close of days 6, 13, 20, ...
#: [assumption]: a customer base changes slowly (a lifetime of about a year at the
#: default rate), and one draw a week instead of one a day is most of the customer
#: layer's cost. The daily rate keeps its meaning: a week's lapse is ``1 - (1 - p)^7``.
LAPSE_EVERY_DAYS = 7


@njit(cache=True)
def lapse_probability_today(day, daily_rate):
    """Probability a customer lapses at the close of ``day``: ``1 - (1 - p)^7`` on the
    last day of each week (``(day + 1) % 7 == 0``), else 0."""
    if not daily_rate > 0.0 or (day + 1) % LAPSE_EVERY_DAYS != 0:
        return 0.0
    if daily_rate >= 1.0:
        return 1.0
    return -math.expm1(LAPSE_EVERY_DAYS * math.log1p(-daily_rate))


@njit(cache=True)
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


@njit(cache=True)
def incident_hazard(base_hazard, rule_change_multiplier, compliance, seller_row):
    """Daily incident hazard of a listing: ``h0 * mult(t) * (1 - cut * compliance)``."""
    return base_hazard * rule_change_multiplier * (1.0 - seller_row[SL_COMPLIANCE_CUT] * compliance)


@njit(cache=True)
def updated_rating(rating, units, returned, delivery_days, market_row):
    """The rating after a day with ``units`` sold (``units > 0``).

    Each day's buyers score their experience ``e = 5 - p_r * returned / units - p_d *
    delivery_days``; the rating moves toward it with weight ``units / (units + memory)``
    (an average over roughly the last ``memory`` units), clipped to 1..5. A memory of 0
    switches the dynamics off.
    """
    memory = market_row[MK_RATING_MEMORY]
    if not memory > 0.0:
        return rating
    experience = (
        RATING_CEILING
        - market_row[MK_RATING_RETURN_PENALTY] * (returned / units)
        - market_row[MK_RATING_DELIVERY_PENALTY] * delivery_days
    )
    weight = units / (units + memory)
    value = rating + weight * (experience - rating)
    if value > RATING_CEILING:
        return RATING_CEILING
    if value < RATING_FLOOR:
        return RATING_FLOOR
    return value


@njit(cache=True, parallel=True)
def advance_fx(day, seed, replication0, fx_base, market, market_currency, currency_active, fx_walk, usd_rate):
    """Draw the day's FX shocks and set every market's USD rate.

    Parameters
    ----------
    fx_base : float64 (M,)
        Today's base rate (the scenario's rate, or the given series) [USD per unit].
    market : float64 (M, N_MARKET_COLUMNS), column MK_FX_VOLATILITY
    market_currency : int64 (M,), currency index of each market
    currency_active : bool (C,), draw shocks for this currency
    fx_walk : float64 (B, C), cumulative N(0, 1) shocks, updated
    usd_rate : float64 (B, M), written
    """
    n_batch, n_markets = usd_rate.shape
    for b in prange(n_batch):
        replication = replication0 + b
        for c in range(fx_walk.shape[1]):
            if currency_active[c]:
                fx_walk[b, c] += rng.standard_normal(
                    rng.stream_key(seed, rng.FX, replication, day, c, rng.NO_SELLER)
                )
        for m in range(n_markets):
            usd_rate[b, m] = fx_base[m] * math.exp(market[m, MK_FX_VOLATILITY] * fx_walk[b, market_currency[m]])


@njit(cache=True, parallel=True)
def charge_capabilities(period, alive, listed, levers, seller_layer, one_off_cost, cash, out_sm, out_s):
    """Pay the day's capability costs of every live seller [USD].

    ``localisation * loc_cost_day + compliance * compliance_cost_day`` for each listed
    market (booked per market in O_CAPABILITY_COSTS), plus the analytics cost of the
    CM2/LTV guardrail and any one-off cost due (then cleared). Everything is paid from
    cash and booked in OS_COSTS and OS_CAPABILITY_COSTS.

    Parameters
    ----------
    levers : float64 (B, S, N_LEVERS); seller_layer : float64 (S, N_SELLER_LAYER)
    one_off_cost : float64 (B, S), cleared once paid
    """
    n_batch, n_sellers, n_markets = listed.shape
    for b in prange(n_batch):
        for s in range(n_sellers):
            if not alive[b, s]:
                continue
            row = seller_layer[s]
            per_market = (
                levers[b, s, LV_LOCALISATION] * row[SL_LOC_COST_DAY]
                + levers[b, s, LV_COMPLIANCE] * row[SL_COMPLIANCE_COST_DAY]
            )
            total = row[SL_ANALYTICS_COST_DAY] + one_off_cost[b, s]
            one_off_cost[b, s] = 0.0
            if per_market > 0.0:
                for m in range(n_markets):
                    if listed[b, s, m]:
                        out_sm[b, period, s, m, O_CAPABILITY_COSTS] += per_market
                        total += per_market
            if total > 0.0:
                cash[b, s] -= total
                out_s[b, period, s, OS_COSTS] += total
                out_s[b, period, s, OS_CAPABILITY_COSTS] += total
